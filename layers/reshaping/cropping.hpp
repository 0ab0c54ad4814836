// Keras's Cropping1D and Cropping2D: elements removed before and after the spatial axes of
// (batch, steps, C) (Cropping1D has no data_format in Keras) and (batch, h, w, C) or, with
// data_format "channels_first", (batch, C, h, w), through the crop op (framework/resampling.hpp).
// No mask passes on (Keras 3: these layers do not support masking).
#pragma once

#include "framework/layer.hpp"
#include "framework/resampling.hpp"

#include <memory>
#include <string>

namespace xtape {

template <class T>
/// The cropping layers' common implementation: removes (before, after) elements on each spatial axis.
class Cropping : public Layer<T> {
public:
    /// (before, after) per spatial axis.
    const pad_widths_t& cropping() const { return m_cropping; }
    /// "channels_last" (default) or "channels_first" (Cropping1D: always channels_last).
    const std::string& data_format() const { return m_data_format; }

    /// Keras 3's keys: cropping ([a, b] in 1-D, [[top, bottom], [left, right]] in 2-D), data_format (2-D).
    json get_config() const override;
    /// ensures: ShapeError naming the layer when a cropping is not smaller than its axis (Keras's message).
    dims_t compute_output_shape(const dims_t& input_shape) const override;

protected:
    /// For subclasses: one (before, after) pair per spatial axis (ValueError otherwise) and a known data_format.
    Cropping(const char* class_name, const pad_widths_t& cropping, const std::string& data_format,
             const std::string& name, bool trainable);
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank spatial axes + 2 and every cropped axis longer than its crop (compute_output_shape's ShapeError).
    void check_input(const shape_t& x) const override;
    /// The crop widths for every axis of an input of that rank ((0, 0) on the batch and channel axes).
    pad_widths_t all_axes(std::size_t rank) const;

private:
    pad_widths_t m_cropping;
    std::string m_data_format;
};

template <class T>
/// keras.layers.Cropping1D: (batch, steps, C) -> (batch, steps - before - after, C).
class Cropping1D : public Cropping<T> {
public:
    /// Cropping1D(cropping = (1, 1)): steps removed at the start and at the end.
    explicit Cropping1D(std::pair<std::size_t, std::size_t> cropping = { 1, 1 }, const std::string& name = "",
                        bool trainable = true)
        : Cropping<T>("Cropping1D", { cropping }, "channels_last", name, trainable)
    {
    }
    /// Keras 1/2/3: cropping as an int or a pair.
    static std::shared_ptr<Cropping1D> from_config(const json& config);
};

template <class T>
/// keras.layers.Cropping2D: rows and columns removed at the edges of images.
class Cropping2D : public Cropping<T> {
public:
    /// cropping: ((top, bottom), (left, right)).
    explicit Cropping2D(const pad_widths_t& cropping = { { 0, 0 }, { 0, 0 } },
                        const std::string& data_format = "channels_last", const std::string& name = "",
                        bool trainable = true)
        : Cropping<T>("Cropping2D", cropping, data_format, name, trainable)
    {
    }
    /// Keras 1/2/3: an int, (h, w) or ((top, bottom), (left, right)); data_format or dim_ordering.
    static std::shared_ptr<Cropping2D> from_config(const json& config);
};

} // namespace xtape
