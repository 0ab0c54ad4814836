// Keras's convolution layers: Conv1D/2D/3D, Conv1DTranspose/Conv2DTranspose/Conv3DTranspose,
// DepthwiseConv1D/2D and SeparableConv1D/2D, all on the fused ops of framework/conv.hpp.
//
//   ConvLayerOptions<float> o;  o.filters = 32;  o.kernel_size = {3};  o.padding = "same";
//   auto c = std::make_shared<Conv2D<float>>(o);            // name "conv2d", "conv2d_1", ...
//   auto c2 = std::make_shared<Conv2D<float>>(64, std::vector<std::size_t>{3, 3}, "same", "relu");
//
// Weights, in Keras's order and shapes (kernels as Keras stores them, whatever the data format):
//   Conv:       kernel (k..., in / groups, filters), bias (filters)
//   Transpose:  kernel (k..., filters, in), bias (filters)
//   Depthwise:  depthwise_kernel (k..., in, depth_multiplier), bias (in * depth_multiplier)
//   Separable:  depthwise_kernel (k..., in, depth_multiplier), pointwise_kernel (1..., in * depth_multiplier,
//               filters), bias (filters)
// Configs: Keras 3's keys on write; on read also Keras 2's (same keys, no groups) and Keras 1's
// (Convolution1D/2D, Deconvolution2D: nb_filter, filter_length, nb_row, nb_col, subsample(_length),
// border_mode, dim_ordering "tf"/"th", init, W_/b_regularizer, W_/b_constraint, bias, atrous_rate,
// Deconvolution2D's output_shape). Kernels a Keras 1 file stores in another layout are converted
// where the file is read (saving/).
#pragma once

#include "framework/conv.hpp"
#include "framework/initializer.hpp"
#include "framework/layer.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

/// Every argument of Keras's convolution layers; each layer reads those it has. For depthwise and
/// separable layers the kernel_* fields are the depthwise_* arguments.
template <class T>
struct ConvLayerOptions {
    long filters = 0;                      ///< not used by depthwise layers
    std::vector<std::size_t> kernel_size;  ///< one value (all dimensions) or one per dimension
    std::vector<std::size_t> strides{ 1 };
    std::string padding = "valid";         ///< "valid", "same", "causal" (Conv1D only)
    std::string data_format = "channels_last";
    std::vector<std::size_t> dilation_rate{ 1 };
    std::size_t groups = 1;                ///< Conv only
    long depth_multiplier = 1;             ///< depthwise and separable
    std::vector<long> output_padding;      ///< transposed; empty = None
    /// Keras 1 Deconvolution2D only: the spatial sizes of its `output_shape` argument. The layer
    /// turns them into output_padding when it is built (Note [Deconvolution2D's output_shape]).
    std::vector<long> keras1_output_shape;
    std::string activation = "linear";
    bool use_bias = true;
    InitializerPtr<T> kernel_initializer;  ///< null: glorot_uniform
    InitializerPtr<T> pointwise_initializer;
    InitializerPtr<T> bias_initializer;    ///< null: zeros
    RegularizerPtr<T> kernel_regularizer, pointwise_regularizer, bias_regularizer, activity_regularizer;
    ConstraintPtr<T> kernel_constraint, pointwise_constraint, bias_constraint;
    std::string name;
    bool trainable = true;
};

/// Which family a convolution layer belongs to: its weights and op (see the top of this file).
enum class ConvKind { conv, transpose, depthwise, separable };

template <class T>
/// The convolution layers' common implementation (Keras's BaseConv, BaseConvTranspose, BaseDepthwiseConv, BaseSeparableConv); Conv2D etc. only name it.
class BaseConv : public Layer<T> {
public:
    /// requires: Keras's argument checks (ValueError with Keras's messages): filters > 0 (not for
    ///           depthwise), groups > 0 dividing filters, no 0 in kernel_size or strides, not both a
    ///           stride and a dilation above 1, padding causal only for 1-D Conv, a known
    ///           activation and data_format.
    BaseConv(std::string class_name, std::size_t rank, ConvKind kind, const ConvLayerOptions<T>& options);

    /// Keras 3/2 keys and Keras 1's names (see the file comment).
    static std::shared_ptr<BaseConv> from_config(const std::string& class_name, std::size_t rank, ConvKind kind,
                                                 const json& config);
    json get_config() const override;
    /// Keras's conv output shape: each spatial size from kernel_size, strides, dilation_rate and padding (None stays None); channels become filters (in * depth_multiplier for depthwise).
    dims_t compute_output_shape(const dims_t& input_shape) const override;

    /// The number of spatial dimensions: 1, 2 or 3.
    std::size_t rank() const { return m_rank; }
    /// Plain, transposed, depthwise or separable.
    ConvKind kind() const { return m_kind; }
    /// Whether data_format is "channels_first" (channels on axis 1 rather than last).
    bool channels_first() const { return m_options.data_format == "channels_first"; }
    /// The arguments the layer was constructed with (kernel_size etc. as given).
    const ConvLayerOptions<T>& options() const { return m_options; }
    /// The kernel (depthwise kernel for depthwise and separable layers). requires: built.
    const Variable<T>& kernel() const;
    /// requires: built and a separable layer.
    const Variable<T>& pointwise_kernel() const;
    /// requires: built and use_bias.
    const Variable<T>& bias() const;

protected:
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Keras's InputSpec(min_ndim=rank + 2, axes={channel_axis: channels}): rank + 2 dims, the built channels.
    void check_input(const shape_t& x) const override;

private:
    ConvOptions op_options() const;
    /// The output_padding that gives Keras 1's output_shape for an input of shape s.
    std::vector<long> keras1_output_padding(const dims_t& s) const;
    std::size_t channel_axis(std::size_t ndim) const { return channels_first() ? 1 : ndim - 1; }
    std::string input_error(const std::string& what) const;

    std::size_t m_rank;
    ConvKind m_kind;
    ConvLayerOptions<T> m_options;
    std::size_t m_in_channels = 0;
    Variable<T> m_kernel, m_pointwise, m_bias;
};

#define XTAPE_CONV_LAYER(Name, Rank, Kind)                                                                    \
    template <class T>                                                                                        \
    class Name : public BaseConv<T> {                                                                         \
    public:                                                                                                   \
        explicit Name(const ConvLayerOptions<T>& options)                                                     \
            : BaseConv<T>(#Name, Rank, Kind, options)                                                         \
        {                                                                                                     \
        }                                                                                                     \
        /* filters is the depth multiplier for a depthwise layer */                                           \
        Name(long filters, std::vector<std::size_t> kernel_size, const std::string& padding = "valid",         \
             const std::string& activation = "linear", const std::string& name = "")                         \
            : BaseConv<T>(#Name, Rank, Kind, [&] {                                                            \
                ConvLayerOptions<T> o;                                                                        \
                (Kind == ConvKind::depthwise ? o.depth_multiplier : o.filters) = filters;                    \
                o.kernel_size = std::move(kernel_size);                                                       \
                o.padding = padding;                                                                          \
                o.activation = activation;                                                                    \
                o.name = name;                                                                                \
                return o;                                                                                     \
            }())                                                                                              \
        {                                                                                                     \
        }                                                                                                     \
    };

/// keras.layers.Conv1D: (batch, steps, channels) -> (batch, new_steps, filters); padding "causal" allowed.
XTAPE_CONV_LAYER(Conv1D, 1, ConvKind::conv)
/// keras.layers.Conv2D: (batch, rows, cols, channels) -> (batch, new_rows, new_cols, filters), optionally grouped.
XTAPE_CONV_LAYER(Conv2D, 2, ConvKind::conv)
/// keras.layers.Conv3D: 3-D convolution over (batch, d1, d2, d3, channels).
XTAPE_CONV_LAYER(Conv3D, 3, ConvKind::conv)
/// keras.layers.Conv1DTranspose: the transpose (adjoint) of Conv1D, which upsamples steps by strides.
XTAPE_CONV_LAYER(Conv1DTranspose, 1, ConvKind::transpose)
/// keras.layers.Conv2DTranspose: the transpose (adjoint) of Conv2D, which upsamples by strides; output_padding as in Keras.
XTAPE_CONV_LAYER(Conv2DTranspose, 2, ConvKind::transpose)
/// keras.layers.Conv3DTranspose: the transpose (adjoint) of Conv3D, which upsamples by strides.
XTAPE_CONV_LAYER(Conv3DTranspose, 3, ConvKind::transpose)
/// keras.layers.DepthwiseConv1D: each channel convolved alone into depth_multiplier outputs.
XTAPE_CONV_LAYER(DepthwiseConv1D, 1, ConvKind::depthwise)
/// keras.layers.DepthwiseConv2D: each channel convolved alone into depth_multiplier outputs.
XTAPE_CONV_LAYER(DepthwiseConv2D, 2, ConvKind::depthwise)
/// keras.layers.SeparableConv1D: a depthwise convolution followed by a 1-wide pointwise one to filters.
XTAPE_CONV_LAYER(SeparableConv1D, 1, ConvKind::separable)
/// keras.layers.SeparableConv2D: a depthwise convolution followed by a 1x1 pointwise one to filters.
XTAPE_CONV_LAYER(SeparableConv2D, 2, ConvKind::separable)
// The constructors the convolution macro declares (Doxygen reads no comment inside a macro):
/// \fn xtape::Conv1D::Conv1D(const ConvLayerOptions<T>& options)
/// A Conv1D with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::Conv1D::Conv1D(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// Conv1D(filters, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::Conv2D::Conv2D(const ConvLayerOptions<T>& options)
/// A Conv2D with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::Conv2D::Conv2D(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// Conv2D(filters, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::Conv3D::Conv3D(const ConvLayerOptions<T>& options)
/// A Conv3D with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::Conv3D::Conv3D(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// Conv3D(filters, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::Conv1DTranspose::Conv1DTranspose(const ConvLayerOptions<T>& options)
/// A Conv1DTranspose with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::Conv1DTranspose::Conv1DTranspose(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// Conv1DTranspose(filters, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::Conv2DTranspose::Conv2DTranspose(const ConvLayerOptions<T>& options)
/// A Conv2DTranspose with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::Conv2DTranspose::Conv2DTranspose(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// Conv2DTranspose(filters, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::Conv3DTranspose::Conv3DTranspose(const ConvLayerOptions<T>& options)
/// A Conv3DTranspose with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::Conv3DTranspose::Conv3DTranspose(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// Conv3DTranspose(filters, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::DepthwiseConv1D::DepthwiseConv1D(const ConvLayerOptions<T>& options)
/// A DepthwiseConv1D with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::DepthwiseConv1D::DepthwiseConv1D(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// DepthwiseConv1D(depth_multiplier, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::DepthwiseConv2D::DepthwiseConv2D(const ConvLayerOptions<T>& options)
/// A DepthwiseConv2D with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::DepthwiseConv2D::DepthwiseConv2D(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// DepthwiseConv2D(depth_multiplier, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::SeparableConv1D::SeparableConv1D(const ConvLayerOptions<T>& options)
/// A SeparableConv1D with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::SeparableConv1D::SeparableConv1D(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// SeparableConv1D(filters, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
/// \fn xtape::SeparableConv2D::SeparableConv2D(const ConvLayerOptions<T>& options)
/// A SeparableConv2D with every Keras argument in `options`; ValueError for invalid ones (BaseConv's requirements).
/// \fn xtape::SeparableConv2D::SeparableConv2D(long filters, std::vector<std::size_t> kernel_size, const std::string& padding, const std::string& activation, const std::string& name)
/// SeparableConv2D(filters, kernel_size, padding = "valid", activation = "linear", name = ""), the other arguments at Keras's defaults.
#undef XTAPE_CONV_LAYER

} // namespace xtape
