// Softmax: Keras's keras.layers.Softmax over one axis (default -1) or several axes.
// With a mask (1 keep, 0 masked; the input's shape or broadcastable to it), masked positions
// get -1e9 added before normalizing, so they receive (almost) zero probability, as in Keras.
#pragma once

#include "framework/layer.hpp"
#include "framework/ops.hpp"

#include <memory>
#include <string>

namespace xtape {

template<class T>
/// keras.layers.Softmax: normalizes exp(x) over `axis` (default -1) or several axes; masked positions get (almost) zero.
class Softmax : public Layer<T>
{
public:
    /// Softmax over one axis (negative counts from the end; -1: the last axis).
    explicit Softmax(int axis = -1, const std::string& name = "", bool trainable = true);
    /// requires: at least one axis. Several axes normalize over all of them together.
    explicit Softmax(const axes_t& axes, const std::string& name = "", bool trainable = true);

    /// "axis" as an integer or a list of integers (tf.keras and Keras 3 write both).
    static std::shared_ptr<Softmax> from_config(const json& config);
    json get_config() const override;

    /// The axes normalized over, as given (negative values count from the end).
    const axes_t& axes() const { return m_axes; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Any shape in which every axis exists (ShapeError naming the layer, the axis and the shape otherwise).
    void check_input(const shape_t& x) const override;

private:
    axes_t m_axes;
    bool m_axis_is_list;
};

} // namespace xtape
