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

struct GlobalPoolingOptions {
    std::string data_format = "channels_last";
    bool keepdims = false;
    std::string name;
    bool trainable = true;
};

template <class T>
class GlobalPooling : public Layer<T> {
public:
    std::size_t spatial_axes() const { return m_spatial_axes; }
    bool is_max() const { return m_max; }
    const std::string& data_format() const { return m_data_format; }
    bool keepdims() const { return m_keepdims; }

    /// Keras's keys: data_format, keepdims.
    json get_config() const override;
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
class GlobalAveragePooling1D : public GlobalPooling<T> {
public:
    explicit GlobalAveragePooling1D(const GlobalPoolingOptions& options = {})
        : GlobalPooling<T>("GlobalAveragePooling1D", 1, false, options)
    {
    }
    static std::shared_ptr<GlobalAveragePooling1D> from_config(const json& config)
    {
        return std::make_shared<GlobalAveragePooling1D>(GlobalPooling<T>::options_from_config(config));
    }
};

template <class T>
class GlobalAveragePooling2D : public GlobalPooling<T> {
public:
    explicit GlobalAveragePooling2D(const GlobalPoolingOptions& options = {})
        : GlobalPooling<T>("GlobalAveragePooling2D", 2, false, options)
    {
    }
    static std::shared_ptr<GlobalAveragePooling2D> from_config(const json& config)
    {
        return std::make_shared<GlobalAveragePooling2D>(GlobalPooling<T>::options_from_config(config));
    }
};

template <class T>
class GlobalMaxPooling1D : public GlobalPooling<T> {
public:
    explicit GlobalMaxPooling1D(const GlobalPoolingOptions& options = {})
        : GlobalPooling<T>("GlobalMaxPooling1D", 1, true, options)
    {
    }
    static std::shared_ptr<GlobalMaxPooling1D> from_config(const json& config)
    {
        return std::make_shared<GlobalMaxPooling1D>(GlobalPooling<T>::options_from_config(config));
    }
};

template <class T>
class GlobalMaxPooling2D : public GlobalPooling<T> {
public:
    explicit GlobalMaxPooling2D(const GlobalPoolingOptions& options = {})
        : GlobalPooling<T>("GlobalMaxPooling2D", 2, true, options)
    {
    }
    static std::shared_ptr<GlobalMaxPooling2D> from_config(const json& config)
    {
        return std::make_shared<GlobalMaxPooling2D>(GlobalPooling<T>::options_from_config(config));
    }
};

} // namespace xtape
