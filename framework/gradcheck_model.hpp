// Gradient check of a whole compiled model, as `xtape gradcheck` runs it and users run it on their
// own models:
//
//   model->compile(...);                                   // the loss to differentiate
//   ModelGradcheckResult r = gradcheck_model(*model, xs, ys);
//   std::cout << r.report();                               // one line per trainable weight
//
// The loss is the compiled loss (plus the model's added losses) on (xs, ys) in training mode, in
// double, with respect to every trainable weight. Note [Stateful layers in a gradient check] in
// gradcheck_model.cpp says why every evaluation first restores the non-trainable weights and
// reseeds every layer.
#pragma once

#include "framework/gradcheck.hpp"
#include "framework/model.hpp"

#include <cstdint>

namespace xtape {

/// gradcheck_model's result: GradcheckResult's per-weight errors plus the loss and the error floor used.
struct ModelGradcheckResult : GradcheckResult {
    double loss = 0;                ///< the loss at the current weights
    double min_abs_error = 0;       ///< the floor actually used (see rounding_floor)
};

/// requires: a compiled model with trainable weights (ValueError naming the model otherwise), one
///           tensor per input and per output, and a finite loss at the current weights (ValueError).
/// ensures:  every trainable weight checked (or max_elements of each); the weights, the
///           non-trainable weights included, hold their values from before the call.
/// With `rounding_floor`, options.min_abs_error is raised to what float64 rounding of the loss
/// can resolve: 32 ulp(loss) / (2 eps) (measured on ad01: up to 3 ulp accumulate through layers).
ModelGradcheckResult gradcheck_model(Model<double>& model, const std::vector<Tensor<double>>& xs,
                                     const std::vector<Tensor<double>>& ys, GradcheckOptions options = {},
                                     std::uint64_t seed = 1234, bool rounding_floor = true);

} // namespace xtape
