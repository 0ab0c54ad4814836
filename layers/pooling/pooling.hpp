// Keras's windowed pooling layers: MaxPooling1D/2D and AveragePooling1D/2D, on the fused ops of
// framework/pooling.hpp (TensorFlow's "same" padding; average pooling divides by the cells inside
// the input; the max gradient goes to the first maximum).
//
//   MaxPooling2D<float> pool;                                            // 2x2, strides 2, valid
//   AveragePooling1D<float> avg(PoolingOptions{ { 3 }, { 1 }, "same" });
//
// Inputs are (batch, *spatial, channels) or, with data_format "channels_first", (batch, channels,
// *spatial); any spatial size is accepted (Keras's InputSpec fixes only the rank). The output has
// no mask (Keras 3: these layers do not support masking, so a mask stops here).
#pragma once

#include "framework/layer.hpp"
#include "framework/pooling.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

/// Keras's arguments of the windowed pooling layers.
struct PoolingOptions {
    std::vector<long> pool_size;   ///< one value for every spatial axis, or one per axis; empty: 2
    std::vector<long> strides;     ///< the same; empty: pool_size (Keras's strides=None)
    std::string padding = "valid"; ///< "valid" or "same", any case
    std::string data_format = "channels_last";
    std::string name;
    bool trainable = true;
};

template <class T>
/// The windowed pooling layers' common implementation: a max or mean over each pool_size window moved by strides.
class Pooling : public Layer<T> {
public:
    /// The number of spatial axes: 1 or 2.
    std::size_t spatial_axes() const { return m_spec.pool_size.size(); }
    /// True for max pooling, false for average pooling.
    bool is_max() const { return m_max; }
    /// The window size, one value per spatial axis (default 2).
    const std::vector<std::size_t>& pool_size() const { return m_spec.pool_size; }
    /// The window step, one value per spatial axis (default pool_size).
    const std::vector<std::size_t>& strides() const { return m_spec.strides; }
    /// "valid" (complete windows only) or "same" (output size ceil(size / stride)), lower case.
    const std::string& padding() const { return m_padding; }
    /// "channels_last" (default) or "channels_first".
    const std::string& data_format() const { return m_data_format; }

    /// Keras's keys: pool_size, padding, strides, data_format (lists, as Keras 3 writes them).
    json get_config() const override;
    /// ensures: Keras's compute_pooling_output_shape (None spatial dimensions stay None); ShapeError
    ///          naming the layer when "valid" padding leaves no complete window.
    dims_t compute_output_shape(const dims_t& input_shape) const override;

protected:
    /// requires: positive pool_size and strides of one value or spatial_axes values, padding
    ///           valid/same, data_format channels_last/channels_first (ValueError, Keras's message).
    Pooling(const char* class_name, std::size_t spatial_axes, bool max, const PoolingOptions& options);
    /// Keras 3 and 2 (pool_size, strides, padding, data_format) and Keras 1 (pool_length, stride,
    /// border_mode, dim_ordering) configs.
    static PoolingOptions options_from_config(const json& config, std::size_t spatial_axes);

    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank spatial_axes + 2 and a spatial size large enough for the pool (ShapeError naming the layer).
    void check_input(const shape_t& x) const override;

private:
    bool m_max;
    PoolSpec m_spec;
    std::string m_padding;
    std::string m_data_format;
};

template <class T>
/// keras.layers.MaxPooling1D: the maximum over windows of steps.
class MaxPooling1D : public Pooling<T> {
public:
    /// A layer with `options` (pool_size, strides, padding, data_format); ValueError for invalid ones, Keras's message.
    explicit MaxPooling1D(const PoolingOptions& options = {})
        : Pooling<T>("MaxPooling1D", 1, true, options)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's pool_length, stride, border_mode too).
    static std::shared_ptr<MaxPooling1D> from_config(const json& config)
    {
        return std::make_shared<MaxPooling1D>(Pooling<T>::options_from_config(config, 1));
    }
};

template <class T>
/// keras.layers.MaxPooling2D: the maximum over 2-D windows (default 2x2, strides 2).
class MaxPooling2D : public Pooling<T> {
public:
    /// A layer with `options` (pool_size, strides, padding, data_format); ValueError for invalid ones, Keras's message.
    explicit MaxPooling2D(const PoolingOptions& options = {})
        : Pooling<T>("MaxPooling2D", 2, true, options)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's pool_length, stride, border_mode too).
    static std::shared_ptr<MaxPooling2D> from_config(const json& config)
    {
        return std::make_shared<MaxPooling2D>(Pooling<T>::options_from_config(config, 2));
    }
};

template <class T>
/// keras.layers.AveragePooling1D: the mean over windows of steps.
class AveragePooling1D : public Pooling<T> {
public:
    /// A layer with `options` (pool_size, strides, padding, data_format); ValueError for invalid ones, Keras's message.
    explicit AveragePooling1D(const PoolingOptions& options = {})
        : Pooling<T>("AveragePooling1D", 1, false, options)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's pool_length, stride, border_mode too).
    static std::shared_ptr<AveragePooling1D> from_config(const json& config)
    {
        return std::make_shared<AveragePooling1D>(Pooling<T>::options_from_config(config, 1));
    }
};

template <class T>
/// keras.layers.AveragePooling2D: the mean over 2-D windows (default 2x2, strides 2).
class AveragePooling2D : public Pooling<T> {
public:
    /// A layer with `options` (pool_size, strides, padding, data_format); ValueError for invalid ones, Keras's message.
    explicit AveragePooling2D(const PoolingOptions& options = {})
        : Pooling<T>("AveragePooling2D", 2, false, options)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's pool_length, stride, border_mode too).
    static std::shared_ptr<AveragePooling2D> from_config(const json& config)
    {
        return std::make_shared<AveragePooling2D>(Pooling<T>::options_from_config(config, 2));
    }
};

} // namespace xtape
