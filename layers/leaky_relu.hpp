// LeakyReLU: Keras's keras.layers.LeakyReLU, f(x) = x for x >= 0, negative_slope * x otherwise.
// The layer's default slope is 0.3 (the activation function's is 0.2, as in Keras).
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

template<class T>
/// keras.layers.LeakyReLU: x for x >= 0, negative_slope * x otherwise (default slope 0.3).
class LeakyReLU : public Layer<T>
{
public:
    /// requires: negative_slope >= 0 (ValueError otherwise).
    explicit LeakyReLU(double negative_slope = 0.3, const std::string& name = "", bool trainable = true);

    /// Reads Keras 3's "negative_slope" and Keras 1/2's "alpha".
    static std::shared_ptr<LeakyReLU> from_config(const json& config);
    json get_config() const override;

    /// The slope for negative inputs (Keras 3's negative_slope, Keras 2's alpha).
    double negative_slope() const { return m_negative_slope; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Any shape: the function is elementwise.
    void check_input(const shape_t&) const override {}

private:
    double m_negative_slope;
};

} // namespace xtape
