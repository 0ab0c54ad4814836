// InputLayer: Keras's keras.layers.InputLayer, the declared input of a model. It is built at
// construction for its batch shape and passes its input through unchanged; calling it checks
// the input's rank and non-batch dimensions against that shape.
//
//   InputLayer<float> in(dims_t{784});              // batch shape (None, 784), name "input_layer"
//   auto in2 = InputLayer<float>::with_batch_shape({32, 28, 28});
//
// Input() is keras.Input: the symbolic tensor a functional model starts from (the InputLayer's
// output); in a Sequential's layer list it stands for its InputLayer.
//
//   Sequential<float> m({ Input<float>({ 784 }), std::make_shared<Dense<float>>(10) });
//   auto x = Input<float>({ 784 }, "pixels");
//   Functional<float> f(x, (*dense_2)((*dense_1)(x)));
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

template<class T>
/// keras.layers.InputLayer: the entry of a model, holding its input shape; passes its input through.
class InputLayer : public Layer<T>
{
public:
    /// `shape` excludes the batch dimension (none_dim marks unknown dimensions); `batch_size`
    /// none_dim leaves the batch dimension unknown.
    explicit InputLayer(const dims_t& shape, long batch_size = none_dim, const std::string& name = "");
    /// `batch_shape` includes the batch dimension.
    /// requires: rank >= 1.
    static std::shared_ptr<InputLayer> with_batch_shape(const dims_t& batch_shape,
                                                        const std::string& name = "");

    /// Keras 3's batch_shape, Keras 1/2's batch_input_shape, or shape/input_shape with batch_size.
    static std::shared_ptr<InputLayer> from_config(const json& config);
    /// Keras 3's keys: batch_shape, dtype, sparse, ragged, name, optional.
    json get_config() const override;

    /// The input shape, batch dimension included (none_dim: unknown).
    const dims_t& batch_shape() const { return this->build_input_shape(); }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
};

/// keras.Input(shape, batch_size, name, dtype): the symbolic output of a new InputLayer of
/// batch shape (batch_size, *shape) (batch_size none_dim: None).
/// requires: shape's dimensions positive or none_dim (ValueError); dtype empty or the name of T
///           ("float32" for float, "float64" for double; ValueError otherwise: the scalar type
///           of a model is its template argument).
template<class T = float>
KerasTensor<T> Input(const dims_t& shape,
                     long batch_size = none_dim,
                     const std::string& name = "",
                     const std::string& dtype = "");
/// keras.Input(shape, name=name).
template<class T = float>
KerasTensor<T> Input(const dims_t& shape, const std::string& name)
{
    return Input<T>(shape, none_dim, name);
}

} // namespace xtape
