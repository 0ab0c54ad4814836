// Pooling as fused ops, knowing nothing of layers: windowed max and average pooling over one or
// two spatial axes, and global pooling over all of them, each with its closed-form backward
// beside the forward in pooling.cpp.
//
//   windowed:  y[o] = max / mean of x over the window of o (the cells inside the input only)
//   backward:  max: dx[first argmax of the window] += dy[o] (TensorFlow's CPU kernel sends the
//              gradient to the first maximum in row-major window order; so does xtape)
//              average: dx[cell] += dy[o] / (cells of the window inside the input)
//
// Note [Pooling padding]: "same" padding is TensorFlow's: out = ceil(in / stride), the padding
// total max((out - 1) * stride + pool - in, 0) is split with the smaller half before. Padded cells
// never take part: max ignores them (as if -inf) and average divides by the number of cells of
// the window that lie inside the input (tf.nn.avg_pool, and so Keras, does not count padding).
// With that padding every window holds at least one input cell.
//
// Note [Pooling layouts]: channels_last (batch, *spatial, C) pools rows of C contiguous values,
// so the inner loop runs over channels; channels_first (batch, C, *spatial) pools one contiguous
// plane per (sample, channel). One spatial axis is the two-axis case with height 1. Work is split
// over output rows (forward) and over samples or planes (backward, whose windows may overlap
// when strides < pool_size), and every output and every input gradient is computed by one thread
// in a fixed order, so results do not depend on the thread count.
#pragma once

#include "framework/tape.hpp"
#include "framework/tensor.hpp"

#include <cstddef>
#include <vector>

namespace xtape {

/// How a windowed pooling op reads its input.
struct PoolSpec {
    std::vector<std::size_t> pool_size; ///< one per spatial axis (1 or 2 axes), each >= 1
    std::vector<std::size_t> strides;   ///< one per spatial axis, each >= 1
    bool same_padding = false;          ///< Note [Pooling padding]; false: "valid" (no padding)
    bool channels_first = false;        ///< (batch, C, *spatial) instead of (batch, *spatial, C)
};

/// The output size of one spatial axis of length `in` (Note [Pooling padding]); 0 when "valid"
/// padding leaves no complete window.
std::size_t pool_output_length(std::size_t in, std::size_t pool, std::size_t stride, bool same_padding);

/// Windowed max pooling.
/// requires: x of rank spec.pool_size.size() + 2 with 1 or 2 spatial axes; strides of the same
///           length; every pool and stride >= 1; with "valid" padding each spatial axis at least
///           its pool size (ShapeError / ValueError naming "max_pool", the shape and the spec).
/// ensures:  y of shape (batch, *out, C) or (batch, C, *out); a tape that tracks x records the
///           backward to the first maximum of each window.
template <class T>
Tensor<T> max_pool(const Tensor<T>& x, const PoolSpec& spec);

/// Windowed average pooling over the cells inside the input (same contract as max_pool).
template <class T>
Tensor<T> average_pool(const Tensor<T>& x, const PoolSpec& spec);

/// Global average pooling over every spatial axis.
/// requires: x of rank >= 3; mask empty or of shape (batch, steps) for rank 3 (1 spatial axis),
///           nonzero = keep (ShapeError otherwise).
/// ensures:  shape (batch, C), or with keepdims (batch, 1.., C) / (batch, C, 1..); sums are
///           accumulated in double. With a mask: the sum over unmasked steps divided by their
///           count (Keras 3's GlobalAveragePooling1D), so a sample with no unmasked step gives NaN
///           as in Keras.
template <class T>
Tensor<T> global_average_pool(const Tensor<T>& x, bool channels_first, bool keepdims,
                              const Tensor<T>& mask = Tensor<T>());

/// Global max pooling over every spatial axis; the gradient goes to the first maximum.
template <class T>
Tensor<T> global_max_pool(const Tensor<T>& x, bool channels_first, bool keepdims);

} // namespace xtape
