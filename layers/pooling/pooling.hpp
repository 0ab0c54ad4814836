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
class Pooling : public Layer<T> {
public:
    std::size_t spatial_axes() const { return m_spec.pool_size.size(); }
    bool is_max() const { return m_max; }
    const std::vector<std::size_t>& pool_size() const { return m_spec.pool_size; }
    const std::vector<std::size_t>& strides() const { return m_spec.strides; }
    const std::string& padding() const { return m_padding; }
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
class MaxPooling1D : public Pooling<T> {
public:
    explicit MaxPooling1D(const PoolingOptions& options = {})
        : Pooling<T>("MaxPooling1D", 1, true, options)
    {
    }
    static std::shared_ptr<MaxPooling1D> from_config(const json& config)
    {
        return std::make_shared<MaxPooling1D>(Pooling<T>::options_from_config(config, 1));
    }
};

template <class T>
class MaxPooling2D : public Pooling<T> {
public:
    explicit MaxPooling2D(const PoolingOptions& options = {})
        : Pooling<T>("MaxPooling2D", 2, true, options)
    {
    }
    static std::shared_ptr<MaxPooling2D> from_config(const json& config)
    {
        return std::make_shared<MaxPooling2D>(Pooling<T>::options_from_config(config, 2));
    }
};

template <class T>
class AveragePooling1D : public Pooling<T> {
public:
    explicit AveragePooling1D(const PoolingOptions& options = {})
        : Pooling<T>("AveragePooling1D", 1, false, options)
    {
    }
    static std::shared_ptr<AveragePooling1D> from_config(const json& config)
    {
        return std::make_shared<AveragePooling1D>(Pooling<T>::options_from_config(config, 1));
    }
};

template <class T>
class AveragePooling2D : public Pooling<T> {
public:
    explicit AveragePooling2D(const PoolingOptions& options = {})
        : Pooling<T>("AveragePooling2D", 2, false, options)
    {
    }
    static std::shared_ptr<AveragePooling2D> from_config(const json& config)
    {
        return std::make_shared<AveragePooling2D>(Pooling<T>::options_from_config(config, 2));
    }
};

} // namespace xtape
