// Layer normalization as one fused op, knowing nothing of layers: each row (one sample's
// normalized axes, contiguous in memory) is normalized by its own statistics.
//
//   y = gamma * (x - mean) / sqrt(var + eps) + beta      mean, var of the row (biased)
//   rms_scaling (Keras's deprecated flag, kept for its files): y = gamma * x / sqrt(var + eps),
//   no centring and no beta - Keras scales by the variance, not by the mean square.
//   backward, with h = dy * gamma, xhat = (x - mean) / sigma, sigma = sqrt(var + eps):
//     dx = (h - mean(h) - xhat * mean(h * xhat)) / sigma        (d mean / dx = 1/n, d var / dx = 2 xhat sigma / n)
//     rms_scaling: dx = (h - xhat * mean(h * x) / sigma) / sigma   (x is not centred, so no mean(h) term)
//     dgamma = sum over rows of dy * xhat (rms: dy * x / sigma), dbeta = sum over rows of dy.
//
// Note [Layer norm numerics]: a row is read three times, but it stays in L1 (up to 8 K floats), so
// memory sees one read of x and one write of y. Sums run in T over blocks of 1024 elements (four
// vector accumulators) and the blocks are added in double. The variance is the shifted two-pass
// form: the first pass gives the mean m, rounded to T, the second sums d = x - m and d^2, which
// do not cancel (x - m is exact in T when x is close to m, Sterbenz), var = (S(d^2) - S(d)^2/n)/n
// clamped at 0 - never E[x^2] - E[x]^2. The rounding of m to T is folded back as in batch norm:
// xhat = ((x - m) - delta) / sigma with delta = mean - m, so a mean of 1e4 with spread 1e-2 keeps
// float's precision of the spread (tested).
// Note [Layer norm determinism]: row statistics involve one row only; dgamma and dbeta sum over
// rows in chunks whose boundaries depend only on the shape, each chunk into its own partial sums
// (in T over tiles of 16 rows, then in double), merged in chunk order - the thread count decides
// only who computes a chunk, so results are bit-identical for any OMP_NUM_THREADS.
#pragma once

#include "framework/tape.hpp"
#include "framework/tensor.hpp"

#include <xsimd/memory/xsimd_aligned_allocator.hpp>

#include <memory>
#include <vector>

namespace xtape {

namespace ln {

template <class T>
struct OpState;

/// Scratch reused across calls so the steady state does not allocate (one per layer; not for
/// concurrent use by two threads).
template <class T>
struct Workspace {
    std::vector<double> part_g, part_b;                              ///< per-chunk dgamma / dbeta
    std::vector<T, xsimd::aligned_allocator<T, 64>> tile_g, tile_b; ///< per-chunk tiles in T
    std::vector<std::shared_ptr<OpState<T>>> op_states;              ///< recycled when no backward holds them
};

/// Forward over `rows` contiguous rows of `cols` elements.
/// requires: x, y hold rows * cols values (no aliasing); gamma, beta are cols values or null
///           (scale 1, offset 0; beta is ignored with rms_scaling); mean and inv_std hold rows doubles.
/// ensures:  y as in the header; mean[r], inv_std[r] = 1 / sqrt(var + eps) of row r.
template <class T>
void forward(std::size_t rows, std::size_t cols, const T* x, const T* gamma, const T* beta, double epsilon,
             bool rms_scaling, T* y, double* mean, double* inv_std);

/// Backward of forward from its saved statistics.
/// requires: dx null or rows * cols values; dgamma, dbeta null or cols values.
/// ensures:  dx = (or += when accumulate) the input gradient; dgamma += sum(dy * xhat), dbeta += sum(dy).
template <class T>
void backward(std::size_t rows, std::size_t cols, const T* x, const T* dy, const T* gamma, const double* mean,
              const double* inv_std, bool rms_scaling, T* dx, bool accumulate, T* dgamma, T* dbeta, Workspace<T>& ws);

} // namespace ln

/// How a tensor is normalized.
struct LayerNormSpec {
    std::vector<int> axes{ -1 }; ///< normalized axes, negative from the end, any order
    double epsilon = 1e-3;
    bool rms_scaling = false;
};

/// The layer normalization op, differentiable in x, gamma and beta.
/// requires: gamma and beta hold as many elements as the normalized axes together (any shape, e.g.
///           Keras's (d1, d2) for axis [1, 2]) or are empty (scale=false / center=false); axes in
///           range and distinct (ValueError naming the op, the shape and the axes).
/// ensures:  y of x's shape. Normalized axes that are the trailing ones run on the kernels in place;
///           other axis sets are transposed to the end and back (differentiable transposes).
template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, const LayerNormSpec& spec,
                     std::shared_ptr<ln::Workspace<T>> ws = nullptr);

} // namespace xtape
