// Batch normalization as one fused op, knowing nothing of layers: the training forward computes
// the batch statistics and normalizes in one parallel region; the backward is closed-form.
//
//   training:  y = gamma * (x - mean) / sqrt(var + eps) + beta, mean/var of this batch
//   inference: the same with given (moving) mean and variance
//   backward (training):  dbeta = sum(dy), dgamma = sum(dy * xhat),
//                         dx = gamma / sigma * (dy - mean(dy) - xhat * mean(dy * xhat))
//   backward (inference): dx = dy * gamma / sqrt(var + eps)
//
// The normalized ("channel") axes become one index c; statistics run over every other axis.
// Note [Batch norm layouts]: a single channel axis (or several adjacent ones) splits x, as it lies
// in memory, into (outer, C, inner): inner == 1 is channel-last (each row holds all channels)
// and inner > 1 channel-first (each channel is a run of `inner` elements). The two need
// different loop orders. Non-adjacent axis lists and ghost batches are gathered into a
// channel-last copy first (rare paths).
//
// Note [Batch norm numerics]: statistics are computed per tile (up to 64 rows x 64 channels, or
// up to 1024 elements of one channel: part of a long run, or the whole runs of consecutive rows
// when they are short, e.g. 5 rows of 14x14) in T by two passes over the cache-resident tile
// (the tile mean, then shifted sums of x - tile mean and its square, which do not cancel), and
// the tiles are merged in double by Chan's pairwise formula, in a fixed order. A channel-last
// tile after a chunk's first takes one pass, shifted by the chunk's mean so far (rounded to T),
// which is as close to the data; on 12544x256 that took the statistics pass from 169-180 to
// 136-157 us. Against a long-double reference (12544x64 float inputs, worst channel) the variance's
// relative error stayed at 4e-13 for mean 1e3 / spread 1e-2, and 1.7e-10 / 3.5e-8 (two passes:
// 3.4e-12 / 1.7e-8) for a mean drifting along the rows and for tiles alternating between two
// means - below float32's epsilon. The variance is
// never E[x^2] - E[x]^2 in float, is biased (divides by n) and is clamped at 0. One read of x
// gives the statistics, so the forward reads x twice and writes y once.
// Why float within a tile is enough: x - tile mean is exact in float (Sterbenz: both are close),
// so only the short in-tile sums round, on values of the spread's size, not the offset's. Measured
// against a long-double two-pass reference on the same float inputs (worst channel): mean 1e3,
// spread 1e-2 (4096x256 channel-last and 32x64x3136 channel-first): mean error 2e-11 of the
// spread, variance relative error 1e-12 / 6e-9; 1e6 elements per channel (spread 10 and 1, offset
// 5 and 1e3, both layouts) and 1.6e7 in one channel: mean error <= 1e-9 of the spread, variance
// relative error <= 3e-8 - below float32's epsilon (6e-8), so accumulating the tiles in double
// would change nothing a float result can show, and would halve the vector width of the pass.
// What did show was the output: y = (x - mean) a + b with the mean rounded to float lost that
// rounding (up to 3e-5 at 1e3, times 1/spread). So the passes use the rounded mean m_T and fold
// the remainder into per-channel constants computed in double - the offset b - (mean - m_T) a in
// the forward, sum(dy (x - m_T)) - (mean - m_T) sum(dy) and the constant of dx in the backward -
// at no cost per element. With that the output error (same cases) fell from 9.2e-4 to 9.8e-8 at
// spread 1e-2 and from 3.1e-5 to 4.8e-7 at spread 1: float32's own rounding of the outputs.
// Note [Synchronized batch norm]: with several ranks (framework/collective.hpp) the training
// statistics are those of the global batch. Each rank computes its per-channel (n, mean, M2) as
// one process does; then one allreduce of (n mean, n) gives the global count and mean, and a second
// of M2_r + n_r (mean_r - mean)^2 the global M2 (Chan's merge written as a sum: every term is
// non-negative and taken about the rank's own mean, so a large mean loses nothing; a single sum of
// squares would cancel). The backward allreduces the per-channel sums of dy and dy (x - mean) with
// the count, in one call; dgamma and dbeta stay local (the gradient allreduce adds them). Masks are
// sums already (sum(w x), sum(w), then the centred sums): each pass is allreduced. A rank with no
// sample contributes zeros and still makes every call. Ghost batches: Note [Synchronized ghost
// batches].
// Note [Synchronized ghost batches]: tf.keras reshapes a batch of B samples to (v, B / v, ...) for
// virtual_batch_size v, so sample i is in ghost batch i mod (B / v), each ghost batch normalized
// with its own statistics, and the moving statistics take their average. Synchronized, the rule is
// that N ranks give what one process gives on the global batch, the ranks' batches concatenated
// in rank order (fit's contiguous shares, Note [Data-parallel training]): v divides the global
// batch size B (ValueError naming the global size otherwise, raised alike on every rank), and
// rank r's sample j is global sample o_r + j, in ghost batch (o_r + j) mod (B / v). The forward
// learns o_r and B from one allreduce of the ranks' batch sizes; then each ghost batch is one
// synchronized problem with the kernels' own calls (2 per ghost batch in the forward, 1 in the
// backward, C values each: more latency than one merged call would cost, but the kernels stay
// as they are; this is a rare path). A rank
// holding no sample of a ghost batch contributes zeros. Masks count globally within each ghost
// batch, and renorm and the moving statistics use the average of the global ghost statistics,
// which every rank holds alike. One process takes the same path with o = 0 and no call.
// Note [Batch norm determinism]: rows are cut into chunks whose boundaries depend only on the
// problem size; each chunk reduces into its own slot, and slots are merged in chunk order. The
// thread count decides only who computes a chunk, so results are bit-identical for any
// OMP_NUM_THREADS (see also Note [Deterministic reductions] in parallel.hpp).
#pragma once

#include "framework/collective.hpp"
#include "framework/tape.hpp"
#include "framework/tensor.hpp"

#include <xsimd/memory/xsimd_aligned_allocator.hpp>

#include <limits>
#include <memory>
#include <optional>
#include <vector>

namespace xtape {

// ---- kernel level: raw pointers over one (outer, C, inner) problem -----------------------------
namespace bn {

/// x as (outer, C, inner) in memory: inner == 1 is channel-last, inner > 1 channel-first (Note [Batch norm layouts]).
struct Layout {
    std::size_t outer = 1, channels = 1, inner = 1;
    /// The number of elements of x.
    std::size_t size() const { return outer * channels * inner; }
};

/// Batch renormalization's correction (Ioffe 2017, as tf.keras and Keras 3 compute it):
/// r = clip(sqrt(var + eps) / s, rmin, rmax), d = clip((mean - renorm_mean) / s, -dmax, dmax),
/// s = max(renorm_stddev, sqrt(eps)); (r, d) are constants for the backward.
struct Renorm {
    const double* mean = nullptr;   ///< renorm_mean, C values
    const double* stddev = nullptr; ///< renorm_stddev, C values
    double rmin = 0.0;
    double rmax = std::numeric_limits<double>::infinity();
    double dmax = std::numeric_limits<double>::infinity();
};

/// Per-channel results of a training forward, in caller-owned arrays of C doubles.
/// r and d may be null when no renorm is used (they are then 1 and 0).
struct ChannelStats {
    double* mean = nullptr;
    double* variance = nullptr; ///< biased, clamped at 0
    double* inv_std = nullptr;  ///< 1 / sqrt(variance + eps)
    double* r = nullptr;
    double* d = nullptr;
};

/// What one call of the tensor-level op keeps for its backward (batch_norm.cpp, Note [Batch norm
/// op allocations]).
template <class T>
struct OpState;

/// Scratch reused across calls so the steady state does not allocate. One per layer (or per
/// caller); not for concurrent use by two threads.
template <class T>
struct Workspace {
    template <class U>
    /// A vector aligned to 64 bytes for the vectorized passes.
    using aligned_vector = std::vector<U, xsimd::aligned_allocator<U, 64>>;
    std::vector<double> part_a, part_b;                 ///< per-chunk, per-channel partial sums
    aligned_vector<T> coef_m, coef_a, coef_b, coef_c;   ///< per-channel coefficients of a pass
    std::vector<double> chan_a, chan_b, chan_c, chan_d; ///< per-channel double scratch
    aligned_vector<T> gx, gy, gdy, gdx, gw, gt;         ///< gathered copies (rare layouts, masks)
    std::vector<std::shared_ptr<OpState<T>>> op_states; ///< recycled once no recorded backward holds them
    std::vector<double> sync;                           ///< what a synchronized op sends to other ranks
};

/// Training forward over one problem.
/// requires: x and y hold l.size() elements (they may not alias; y null computes the statistics
///           only); gamma, beta are C values or null (scale 1, offset 0); out's arrays hold C
///           doubles (r, d may be null).
/// ensures:  y = gamma_eff * (x - mean) * inv_std + beta_eff with gamma_eff = gamma * r and
///           beta_eff = beta + gamma * d (renorm) or gamma and beta; out holds the statistics.
///           With `sync` (Note [Synchronized batch norm]) the statistics are those of the union of
///           every rank's x; every rank must call with the same channel count.
template <class T>
void forward_training(const Layout& l, const T* x, const T* gamma, const T* beta, double epsilon,
                      const Renorm* renorm, T* y, const ChannelStats& out, Workspace<T>& ws,
                      const Collective* sync = nullptr);

/// Inference forward: y = gamma * (x - mean) / sqrt(var + eps) + beta with the given statistics.
template <class T>
void forward_inference(const Layout& l, const T* x, const T* gamma, const T* beta, const double* mean,
                       const double* inv_std, T* y, Workspace<T>& ws);

/// Backward of either forward, from the statistics the forward used (mean, inv_std per channel;
/// r, d null unless renorm). `training` selects the closed form that differentiates through the
/// batch statistics; inference treats them as constants.
/// requires: dx null or l.size() values; dgamma/dbeta null or C values.
/// ensures:  dx = (or += when accumulate) the input gradient; dgamma += sum(dy * (xhat*r + d)),
///           dbeta += sum(dy) (always accumulated, as the tape expects). With `sync` (training
///           only) dx differentiates through the global statistics (sums of dy and dy xhat over
///           every rank), while dgamma and dbeta stay this rank's share, which the data-parallel
///           gradient sum adds up.
template <class T>
void backward(const Layout& l, const T* x, const T* dy, const T* gamma, const double* mean, const double* inv_std,
              const double* r, const double* d, bool training, T* dx, bool accumulate, T* dgamma, T* dbeta,
              Workspace<T>& ws, const Collective* sync = nullptr);

/// Keras 3's masked moments: weights w (w[f / wdiv] for element f), per channel
/// mean = sum(w x) / (sum(w) + e), var = sum(w (w x - mean)^2) / (sum(w) + e), e = 1e-7.
/// Also returns q = sum(w (w x - mean)) and the denominator, which the backward needs.
template <class T>
void masked_moments(const Layout& l, const T* x, const T* w, std::size_t wdiv, double* mean, double* variance,
                    double* q, double* denom, Workspace<T>& ws, const Collective* sync = nullptr);

/// Backward of a masked training forward (statistics from masked_moments).
template <class T>
void masked_backward(const Layout& l, const T* x, const T* dy, const T* w, std::size_t wdiv, const T* gamma,
                     const double* mean, const double* inv_std, const double* q, const double* denom,
                     const double* r, const double* d, T* dx, bool accumulate, T* dgamma, T* dbeta,
                     Workspace<T>& ws, const Collective* sync = nullptr);

/// Keras's backend epsilon, added to the sum of mask weights.
inline constexpr double mask_epsilon = 1e-7;

} // namespace bn

// ---- tensor level: the differentiable op --------------------------------------------------------

/// How a tensor is normalized.
struct BatchNormSpec {
    std::vector<int> axes{ -1 };        ///< normalized axes, negative from the end; several: their product
    double epsilon = 1e-3;
    std::size_t virtual_batch_size = 0; ///< 0: none; else tf.keras's ghost batches (see batch_norm_train)
    /// Keras's synchronized: training statistics over every rank's batch when several processes
    /// run (Note [Synchronized batch norm]); no effect in one process.
    bool synchronized = false;
};

/// Renorm's running state and clipping for batch_norm_train (C values each).
template <class T>
struct BatchRenorm {
    array_t<T> mean;
    array_t<T> stddev;
    std::optional<double> rmin, rmax, dmax;
};

/// What a training forward reports per channel (shape (C,)): the statistics for the moving
/// averages (with ghost batches: averaged over the virtual batches, as tf.keras does) and, with
/// renorm, the r and d it applied (shape (0,) without renorm). A caller that passes the same
/// object every call gets its arrays reused.
template <class T>
struct BatchNormStats {
    array_t<T> mean, variance, r, d;
};

namespace detail {
/// Keeps a parameter out of template deduction, so callers may pass nullptr.
template <class U>
struct nondeduced {
    using type = U;
};
} // namespace detail

/// The channel count C of x for `spec` (the product of the normalized axes' sizes). Throws
/// ValueError for an axis out of range or repeated, naming the shape and the axes.
std::size_t batch_norm_channels(const shape_t& x, const std::vector<int>& axes);

/// Training forward of the fused op.
/// requires: gamma and beta hold C elements (any shape, e.g. (C,) or tf.keras's (1, 1, C)) or are
///           empty (scale=false / center=false); mask is empty or of rank x.rank - 1, broadcast
///           against x as Keras 3 does (expand_dims(mask, -1)); with virtual_batch_size v, v divides
///           the batch x.shape[0], axis 0 is not normalized, and sample i belongs to ghost batch
///           i mod (batch / v) (tf.keras reshapes the batch into (v, batch / v)); synchronized
///           across ranks, the batch is the global one (Note [Synchronized ghost batches]).
/// ensures:  the normalized tensor; stats (if non-null) holds the batch statistics; a tape that
///           tracks x, gamma or beta records the closed-form backward (renorm's r, d constant).
template <class T>
Tensor<T> batch_norm_train(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                           const BatchNormSpec& spec,
                           typename detail::nondeduced<BatchNormStats<T>>::type* stats = nullptr,
                           const Tensor<T>& mask = Tensor<T>(),
                           const typename detail::nondeduced<BatchRenorm<T>>::type* renorm = nullptr,
                           std::shared_ptr<bn::Workspace<T>> ws = nullptr);

/// Inference forward with given statistics (C values each, any shape); differentiable in x,
/// gamma and beta. The statistics are constants.
template <class T>
Tensor<T> batch_norm_inference(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                               const array_t<T>& mean, const array_t<T>& variance, const BatchNormSpec& spec,
                               std::shared_ptr<bn::Workspace<T>> ws = nullptr);

} // namespace xtape
