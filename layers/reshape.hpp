// Reshape: Keras's keras.layers.Reshape to (batch, *target_shape); the batch dimension is kept
// and one entry of target_shape may be -1 (inferred from the input's size).
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

template<class T>
/// keras.layers.Reshape: (batch, ...) -> (batch, *target_shape), one entry of target_shape may be -1.
class Reshape : public Layer<T>
{
public:
    /// requires: target_shape entries positive, at most one -1 (ValueError otherwise).
    explicit Reshape(const dims_t& target_shape, const std::string& name = "", bool trainable = true);

    /// Builds the layer from a Keras config ("target_shape" as a list, "name", "trainable").
    static std::shared_ptr<Reshape> from_config(const json& config);
    json get_config() const override;
    /// ensures: (batch, *target_shape) with -1 resolved when the input's other dimensions are
    ///          known; ShapeError naming the layer when the sizes cannot match.
    dims_t compute_output_shape(const dims_t& input_shape) const override;

    /// The output shape without the batch axis, as given (-1 unresolved).
    const dims_t& target_shape() const { return m_target_shape; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Any input whose non-batch size fits target_shape (checked by compute_output_shape).
    void check_input(const shape_t& x) const override;

private:
    dims_t m_target_shape;
};

} // namespace xtape
