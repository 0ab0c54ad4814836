// Keras's UpSampling1D and UpSampling2D. UpSampling1D repeats each step `size` times
// ((batch, steps, C) -> (batch, steps * size, C)); UpSampling2D repeats rows and columns
// ("nearest", on the repeat_elements op) or interpolates them ("bilinear", upsample_bilinear with
// tf.image.resize's half-pixel centres), channels_last or channels_first. No mask passes on
// (Keras 3: these layers do not support masking).
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

template <class T>
/// keras.layers.UpSampling1D(size = 2): each step repeated size times, (batch, steps, C) -> (batch, steps * size, C).
class UpSampling1D : public Layer<T> {
public:
    /// requires: size > 0 (ValueError, Keras's message).
    explicit UpSampling1D(long size = 2, const std::string& name = "", bool trainable = true);
    /// Keras 2/3 "size", Keras 1 "length".
    static std::shared_ptr<UpSampling1D> from_config(const json& config);
    json get_config() const override;
    /// (batch, steps * size, C); None stays None.
    dims_t compute_output_shape(const dims_t& input_shape) const override;
    /// The repeat count of each step.
    std::size_t size() const { return m_size; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank 3, any sizes (compute_output_shape's check).
    void check_input(const shape_t& x) const override;

private:
    std::size_t m_size;
};

template <class T>
/// keras.layers.UpSampling2D: rows and columns scaled by size, by repetition ("nearest") or bilinear interpolation.
class UpSampling2D : public Layer<T> {
public:
    /// requires: size one positive value or two; interpolation "nearest" or "bilinear" (any case;
    ///           Keras's other methods, bicubic and lanczos, give NotImplementedError).
    explicit UpSampling2D(const std::vector<long>& size = { 2, 2 }, const std::string& data_format = "channels_last",
                          const std::string& interpolation = "nearest", const std::string& name = "",
                          bool trainable = true);
    /// Keras 2/3 (size, data_format, interpolation; tf.keras before 2.2.3 has no interpolation)
    /// and Keras 1 (size, dim_ordering).
    static std::shared_ptr<UpSampling2D> from_config(const json& config);
    json get_config() const override;
    /// Rows and columns multiplied by size (None stays None), channels unchanged.
    dims_t compute_output_shape(const dims_t& input_shape) const override;
    /// The (rows, columns) scale factors.
    const std::vector<std::size_t>& size() const { return m_size; }
    /// "channels_last" (default) or "channels_first".
    const std::string& data_format() const { return m_data_format; }
    /// "nearest" (default) or "bilinear", lower case.
    const std::string& interpolation() const { return m_interpolation; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank 4, any sizes (compute_output_shape's check).
    void check_input(const shape_t& x) const override;

private:
    std::vector<std::size_t> m_size;
    std::string m_data_format;
    std::string m_interpolation;
};

} // namespace xtape
