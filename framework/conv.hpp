// Convolution as fused ops with closed-form backward: N-d (1, 2 or 3 spatial dimensions), strides,
// dilation, groups, padding valid / same / causal (1-D), channels_last and channels_first.
//
//   y[n, o, q] = b[o] + sum over taps t and input channels c of group(o):
//                       x[n, c, q * stride + t * dilation - pad_before] * w[t, c, o]
//   dx = the adjoint of that map applied to dy (col2im of dy W^T)
//   dw[t, c, o] = sum over n, q of x[n, c, q * stride + t * dilation - pad_before] * dy[n, o, q]
//   db[o] = sum over n, q of dy[n, o, q]
// Positions outside the input read zeros (the padding); written for one spatial dimension, the
// others are the same.
//
// Kernels are stored as Keras stores them: (k_1, ..., k_r, in_channels / groups, out_channels),
// whatever the data format. A depthwise kernel (k..., in_channels, depth_multiplier) is the same
// memory as a grouped kernel (k..., 1, in_channels * depth_multiplier) with groups = in_channels
// (output channel c * depth_multiplier + m belongs to group c), and a transposed convolution's
// kernel (k..., filters, in_channels) is the kernel of the forward convolution it is the adjoint of.
//
// Note [Convolution as gemm]: per block of samples (channels_last: several samples, so that the
// product has about 2048 rows; channels_first: one sample) the input is unrolled into a column
// matrix (im2col; a 1x1 convolution with stride 1 and no padding reads the input in place) whose
// product with the kernel, one OpenBLAS gemm per group, is the output block; channels_last gives
// rows of output positions (P, K) x (K, C_out), channels_first gives rows of output channels
// W^T (C_out, K) x (K, P), both already in the output's layout. Blocks run on the OpenMP team with
// single-threaded OpenBLAS (Note [OpenBLAS threads and kernels]); each thread keeps its column
// buffer between calls. The input gradient is the same product with W^T followed by col2im, which
// adds into dx (blocks own disjoint samples, so no two threads write the same element).
//
// Note [Convolution determinism]: the kernel and bias gradients sum over every sample. The blocks
// are cut into at most 8 chunks by the problem's shape alone; each chunk accumulates its own
// partial gradient (gemm with beta = 1 over its blocks in order), and the partials are added in
// chunk order in double. The thread count decides only who computes a chunk, so every result is
// bit-identical for any OMP_NUM_THREADS (Note [Deterministic reductions] in parallel.hpp).
#pragma once

#include "framework/tape.hpp"
#include "framework/tensor.hpp"

#include <array>
#include <string>
#include <vector>

namespace xtape {

/// Options of conv, depthwise_conv and conv_transpose. A list of one value applies to every
/// spatial dimension; an empty list means 1.
struct ConvOptions {
    std::vector<std::size_t> strides;
    std::vector<std::size_t> dilation_rate;
    std::string padding = "valid"; ///< "valid", "same", or "causal" (1-D convolutions only)
    bool channels_first = false;   ///< x is (N, C, spatial...) instead of (N, spatial..., C)
    std::size_t groups = 1;        ///< conv only: in and out channels split into this many groups
    /// conv_transpose only: Keras's output_padding per dimension; empty means None (Keras's
    /// default output length). Each value must be < its stride.
    std::vector<long> output_padding;
};

namespace convolution {

/// One convolution problem: the forward maps x (in) to y (out). The r spatial dimensions sit last
/// in the arrays (a 2-D problem uses [1] and [2]), so the innermost loops run along the rows of the
/// data; unused leading dimensions have extent 1, kernel 1, stride 1, dilation 1 and no padding.
struct Geometry {
    std::size_t rank = 2; ///< spatial dimensions
    std::size_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
    std::array<std::size_t, 3> in{ 1, 1, 1 }, out{ 1, 1, 1 }, kernel{ 1, 1, 1 }, stride{ 1, 1, 1 },
        dilation{ 1, 1, 1 };
    std::array<long, 3> pad{ 0, 0, 0 }; ///< zeros before the first input position
    bool channels_first = false;

    /// Spatial positions of one input channel of one sample.
    std::size_t in_points() const { return in[0] * in[1] * in[2]; }
    /// Spatial positions of one output channel of one sample.
    std::size_t out_points() const { return out[0] * out[1] * out[2]; }
    /// Kernel positions (the product of the kernel's spatial sizes).
    std::size_t taps() const { return kernel[0] * kernel[1] * kernel[2]; }
    /// Input channels of one group.
    std::size_t in_per_group() const { return in_channels / groups; }
    /// Output channels of one group.
    std::size_t out_per_group() const { return out_channels / groups; }
    /// Rows of one group's column matrix: taps x input channels of the group.
    std::size_t col_depth() const { return taps() * in_per_group(); }
    /// Multiply-adds of the forward.
    double macs() const
    {
        return double(batch) * double(out_points()) * double(out_channels) * double(col_depth());
    }
    /// A 1x1 kernel with stride 1 and no padding: the input is its own column matrix.
    bool pointwise() const;
    /// The input's array shape: (N, spatial..., C_in), or (N, C_in, spatial...) channels_first.
    shape_t x_shape() const;
    /// The output's array shape: (N, spatial..., C_out), or (N, C_out, spatial...) channels_first.
    shape_t y_shape() const;
    /// The kernel's array shape as Keras stores it: (k..., C_in / groups, C_out).
    shape_t kernel_shape() const;
};

/// The geometry of conv(x, kernel) with these options.
/// requires: x of rank r + 2 and kernel of rank r + 2 with r in 1..3; kernel (k..., C_in / groups,
///           C_out) with C_in and C_out divisible by groups; padding "causal" only for r == 1; the
///           output non-empty. Throws ShapeError / ValueError naming `op` and the values otherwise.
Geometry conv_geometry(const shape_t& x, const shape_t& kernel, const ConvOptions& options,
                       const std::string& op = "conv");

/// The geometry of the convolution whose input gradient conv_transpose(x, kernel) computes:
/// its input is the transposed output, its output has x's spatial shape.
/// requires: kernel (k..., filters, C_in of x), groups == 1, output_padding < strides.
Geometry conv_transpose_geometry(const shape_t& x, const shape_t& kernel, const ConvOptions& options,
                                 const std::string& op = "conv_transpose");

/// y = conv(x, w) (+ b). `accumulate` adds into y instead (then b must be null).
/// requires: x, w, y contiguous with g's x, kernel and y shapes; b null or out_channels values.
template <class T>
void forward(const Geometry& g, const T* x, const T* w, const T* b, T* y, bool accumulate = false);

/// dx += the adjoint of conv(., w) applied to dy.
template <class T>
void backward_input(const Geometry& g, const T* dy, const T* w, T* dx);

/// dw += sum over samples of the kernel gradient (Note [Convolution determinism]).
template <class T>
void backward_kernel(const Geometry& g, const T* x, const T* dy, T* dw);

/// db[c] += sum of a (N, P, C) or (N, C, P) array over all but the channel axis, deterministic.
template <class T>
void add_channel_sums(const T* dy, std::size_t n, std::size_t points, std::size_t channels, bool channels_first,
                      T* db);

} // namespace convolution

/// Convolution of x (N, spatial..., C_in) (or (N, C_in, spatial...)) with kernel
/// (k..., C_in / groups, C_out) plus bias (C_out) or an empty bias. One taped op; backward
/// computes only the gradients asked for.
template <class T>
Tensor<T> conv(const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& bias, const ConvOptions& options = {});

/// Depthwise convolution: kernel (k..., C_in, depth_multiplier), output channel c * m + j from
/// input channel c. Any `groups` in options is ignored (it is C_in).
template <class T>
Tensor<T> depthwise_conv(const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& bias,
                         const ConvOptions& options = {});

/// Transposed convolution (Keras's Conv*Transpose): the adjoint of conv with kernel
/// (k..., filters, C_in), plus bias (filters). Output length per dimension is Keras's
/// (compute_conv_transpose_output_length); padding "valid" or "same".
template <class T>
Tensor<T> conv_transpose(const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& bias,
                         const ConvOptions& options = {});

} // namespace xtape
