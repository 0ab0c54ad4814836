// Keras's global pooling layers: GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D, on the fused
// ops of framework/pooling.hpp. (batch, *spatial, C) -> (batch, C), or with keepdims
// (batch, 1.., C); channels_first (batch, C, *spatial) -> (batch, C) or (batch, C, 1..).
//
// Masks (Keras 3): GlobalAveragePooling1D averages over the unmasked steps of a (batch, steps) mask
// (a sample with every step masked gives NaN, Keras's 0 / 0); the other three ignore a mask. None
// of them passes a mask on.
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

/// The global pooling layers' Keras arguments and defaults (channels_last, keepdims false).
struct GlobalPoolingOptions {
    std::string data_format = "channels_last";
    bool keepdims = false;
    std::string name;
    bool trainable = true;
};

template <class T>
/// The global pooling layers' common implementation: a mean or max over every spatial axis (see the top of this file).
class GlobalPooling : public Layer<T> {
public:
    /// The number of spatial axes pooled over: 1 or 2.
    std::size_t spatial_axes() const { return m_spatial_axes; }
    /// True for max pooling, false for average pooling.
    bool is_max() const { return m_max; }
    /// "channels_last" (default) or "channels_first".
    const std::string& data_format() const { return m_data_format; }
    /// Whether the pooled spatial axes stay as size 1 (Keras's keepdims, default false).
    bool keepdims() const { return m_keepdims; }

    /// Keras's keys: data_format, keepdims.
    json get_config() const override;
    /// (batch, C), or (batch, 1.., C) / (batch, C, 1..) with keepdims.
    dims_t compute_output_shape(const dims_t& input_shape) const override;
    /// No mask on the output (GlobalAveragePooling1D consumes its mask; Keras's compute_mask).
    Tensor<T> compute_mask(const Tensor<T>&, const Tensor<T>&) const override { return Tensor<T>(); }

protected:
    /// requires: data_format channels_last/channels_first (ValueError, Keras's message).
    GlobalPooling(const char* class_name, std::size_t spatial_axes, bool max, const GlobalPoolingOptions& options);
    /// Keras 2/3 (data_format, keepdims) and Keras 1 (dim_ordering) configs.
    static GlobalPoolingOptions options_from_config(const json& config);

    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank spatial_axes + 2 (ShapeError naming the layer).
    void check_input(const shape_t& x) const override;

private:
    std::size_t m_spatial_axes;
    bool m_max;
    std::string m_data_format;
    bool m_keepdims;
};

template <class T>
/// keras.layers.GlobalAveragePooling1D: the mean over the steps of (batch, steps, C) -> (batch, C), unmasked steps only.
class GlobalAveragePooling1D : public GlobalPooling<T> {
public:
    /// A layer with `options` (data_format, keepdims, name); ValueError for an unknown data_format.
    explicit GlobalAveragePooling1D(const GlobalPoolingOptions& options = {})
        : GlobalPooling<T>("GlobalAveragePooling1D", 1, false, options)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's dim_ordering too).
    static std::shared_ptr<GlobalAveragePooling1D> from_config(const json& config)
    {
        return std::make_shared<GlobalAveragePooling1D>(GlobalPooling<T>::options_from_config(config));
    }
};

template <class T>
/// keras.layers.GlobalAveragePooling2D: the mean over rows and columns of (batch, rows, cols, C) -> (batch, C).
class GlobalAveragePooling2D : public GlobalPooling<T> {
public:
    /// A layer with `options` (data_format, keepdims, name); ValueError for an unknown data_format.
    explicit GlobalAveragePooling2D(const GlobalPoolingOptions& options = {})
        : GlobalPooling<T>("GlobalAveragePooling2D", 2, false, options)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's dim_ordering too).
    static std::shared_ptr<GlobalAveragePooling2D> from_config(const json& config)
    {
        return std::make_shared<GlobalAveragePooling2D>(GlobalPooling<T>::options_from_config(config));
    }
};

template <class T>
/// keras.layers.GlobalMaxPooling1D: the maximum over the steps of (batch, steps, C) -> (batch, C).
class GlobalMaxPooling1D : public GlobalPooling<T> {
public:
    /// A layer with `options` (data_format, keepdims, name); ValueError for an unknown data_format.
    explicit GlobalMaxPooling1D(const GlobalPoolingOptions& options = {})
        : GlobalPooling<T>("GlobalMaxPooling1D", 1, true, options)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's dim_ordering too).
    static std::shared_ptr<GlobalMaxPooling1D> from_config(const json& config)
    {
        return std::make_shared<GlobalMaxPooling1D>(GlobalPooling<T>::options_from_config(config));
    }
};

template <class T>
/// keras.layers.GlobalMaxPooling2D: the maximum over rows and columns of (batch, rows, cols, C) -> (batch, C).
class GlobalMaxPooling2D : public GlobalPooling<T> {
public:
    /// A layer with `options` (data_format, keepdims, name); ValueError for an unknown data_format.
    explicit GlobalMaxPooling2D(const GlobalPoolingOptions& options = {})
        : GlobalPooling<T>("GlobalMaxPooling2D", 2, true, options)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's dim_ordering too).
    static std::shared_ptr<GlobalMaxPooling2D> from_config(const json& config)
    {
        return std::make_shared<GlobalMaxPooling2D>(GlobalPooling<T>::options_from_config(config));
    }
};

} // namespace xtape
