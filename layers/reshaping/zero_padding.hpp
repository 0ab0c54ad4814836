// Keras's ZeroPadding1D and ZeroPadding2D: zeros added before and after the spatial axes of
// (batch, steps, C) / (batch, h, w, C), or (batch, C, steps) / (batch, C, h, w) with
// data_format "channels_first", through the zero_pad op (framework/resampling.hpp). Any spatial
// size of the right rank is accepted; no mask passes on (Keras 3: these layers do not support masking).
#pragma once

#include "framework/layer.hpp"
#include "framework/resampling.hpp"

#include <memory>
#include <string>

namespace xtape {

template <class T>
/// The zero-padding layers' common implementation: zeros added (before, after) on each spatial axis.
class ZeroPadding : public Layer<T> {
public:
    /// (before, after) per spatial axis.
    const pad_widths_t& padding() const { return m_padding; }
    /// "channels_last" (default) or "channels_first".
    const std::string& data_format() const { return m_data_format; }

    /// Keras 3's keys: padding ([a, b] in 1-D, [[top, bottom], [left, right]] in 2-D), data_format.
    json get_config() const override;
    /// Each spatial size plus its before and after widths (None stays None).
    dims_t compute_output_shape(const dims_t& input_shape) const override;

protected:
    /// requires: one pair per spatial axis (1 or 2), data_format channels_last/channels_first (ValueError).
    ZeroPadding(const char* class_name, const pad_widths_t& padding, const std::string& data_format,
                const std::string& name, bool trainable);
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank spatial axes + 2, any sizes (compute_output_shape's ShapeError).
    void check_input(const shape_t& x) const override;
    /// The widths for every axis of an input of that rank.
    pad_widths_t all_axes(std::size_t rank) const;

private:
    pad_widths_t m_padding;
    std::string m_data_format;
};

template <class T>
/// keras.layers.ZeroPadding1D(padding = (1, 1)): zeros before and after the steps of (batch, steps, C).
class ZeroPadding1D : public ZeroPadding<T> {
public:
    /// ZeroPadding1D(padding = (1, 1), data_format = "channels_last").
    explicit ZeroPadding1D(std::pair<std::size_t, std::size_t> padding = { 1, 1 },
                           const std::string& data_format = "channels_last", const std::string& name = "",
                           bool trainable = true)
        : ZeroPadding<T>("ZeroPadding1D", { padding }, data_format, name, trainable)
    {
    }
    /// Keras 3/2 (padding: int or pair; data_format) and Keras 1 (a {"left_pad", "right_pad"} dictionary).
    static std::shared_ptr<ZeroPadding1D> from_config(const json& config);
};

template <class T>
/// keras.layers.ZeroPadding2D(padding = ((1, 1), (1, 1))): zeros around the rows and columns of images.
class ZeroPadding2D : public ZeroPadding<T> {
public:
    /// padding: ((top, bottom), (left, right)).
    explicit ZeroPadding2D(const pad_widths_t& padding = { { 1, 1 }, { 1, 1 } },
                           const std::string& data_format = "channels_last", const std::string& name = "",
                           bool trainable = true)
        : ZeroPadding<T>("ZeroPadding2D", padding, data_format, name, trainable)
    {
    }
    /// Keras 3/2 (an int, (h, w) or ((top, bottom), (left, right)); data_format) and Keras 1
    /// ((top, bottom, left, right), dictionaries, dim_ordering).
    static std::shared_ptr<ZeroPadding2D> from_config(const json& config);
};

} // namespace xtape
