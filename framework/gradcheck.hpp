// Gradient checking by central differences in double, the way Deeplearning4j's
// GradientCheckUtil judges it: for each element, relative error |a - n| / max(|a|, |n|),
// ignored when |a - n| < min_abs_error.
//
// requires: f computes its result from the given tensors only through xtape ops (so the tape
//           sees every dependency) and is deterministic (no dropout noise between calls).
// ensures:  every element of every checked tensor is perturbed by +-eps (or, with max_elements,
//           a seeded random subset of that many elements per tensor); the report holds the worst
//           element per tensor; the tensors hold their original values afterwards.
#pragma once

#include "framework/tensor.hpp"

#include <functional>
#include <string>
#include <vector>

namespace xtape {

/// The tolerances and sampling of gradcheck (central differences in double).
struct GradcheckOptions {
    double eps = 1e-6;
    double max_rel_error = 1e-5;
    double min_abs_error = 1e-8;
    /// Non-scalar outputs are contracted with fixed pseudo-random weights (from this seed), which
    /// checks a random direction of the full Jacobian instead of only the sum of outputs.
    unsigned seed = 12345;
    /// 0: check every element. Otherwise a tensor with more elements is checked on this many
    /// distinct elements drawn from `seed` (two function calls per element, so a whole model's
    /// weights would cost two forward passes per weight element).
    std::size_t max_elements = 0;
};

/// The check of one tensor: how many elements were compared, failed or ignored, and the worst.
struct GradcheckEntry {
    std::string name;
    shape_t shape;
    std::size_t checked = 0;   ///< elements compared (all of them unless max_elements)
    std::size_t failed = 0;    ///< elements over max_rel_error (and over min_abs_error)
    std::size_t ignored = 0;   ///< elements whose difference is below min_abs_error
    double max_rel_error = 0;  ///< the worst relative error among elements not ignored
    std::size_t worst_index = 0;
    double analytic = 0, numeric = 0; ///< the two gradients at worst_index
};

/// The outcome of gradcheck: one entry per tensor.
struct GradcheckResult {
    bool passed = true;
    std::vector<GradcheckEntry> entries;
    /// One line per tensor: name, shape, worst relative error, analytic vs numeric.
    std::string report() const;
};

/// Checks d f / d params, where f reads `params` (e.g. a model's variables in a closure).
GradcheckResult gradcheck(const std::function<Tensor<double>()>& f, const std::vector<Tensor<double>>& params,
                          const std::vector<std::string>& names = {}, const GradcheckOptions& options = {});

/// Checks an op: f receives `inputs` and returns its output.
GradcheckResult gradcheck(const std::function<Tensor<double>(const std::vector<Tensor<double>>&)>& f,
                          const std::vector<Tensor<double>>& inputs, const GradcheckOptions& options = {});

} // namespace xtape
