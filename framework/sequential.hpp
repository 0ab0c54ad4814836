// Sequential: a chain of layers, as Keras's keras.Sequential.
//
//   Sequential<float> m;                        // name "sequential", "sequential_1", ...
//   m.add(input_layer);                         // optional: an InputLayer fixes the input shape
//   m.add(dense); m.add(dense_2);               // built as soon as the input shape is known
//   m.build({ -1, 784 });                       // or build explicitly (-1 is None)
//
// Models from Keras JSON: model_from_config (framework/model.hpp) reads Sequential and
// Functional configs, nested ones included.
#pragma once

#include "framework/graph/functional.hpp"
#include "framework/model.hpp"

#include <optional>

namespace xtape {

/// A chain of layers, as keras.Sequential (see the top of this file).
template <class T>
class Sequential : public Model<T> {
public:
    /// An empty model; layers come with add().
    explicit Sequential(std::string name = "", bool trainable = true);
    /// The model of `layers`, added in order.
    explicit Sequential(const std::vector<LayerPtr<T>>& layers, std::string name = "");

    /// Adds a layer on top.
    /// requires: a name no other layer of the model has (ValueError); an InputLayer (class
    ///           name "InputLayer") only as the first layer (ValueError). An InputLayer, or a
    ///           first layer whose config declares an input shape (batch_shape,
    ///           batch_input_shape, input_shape, input_dim: Keras's input_shape= argument),
    ///           fixes the model's input shape.
    /// ensures:  when the input shape is known, the new layer is built at once (weights exist).
    void add(LayerPtr<T> layer);
    /// Fixes the input shape (batch axis included, -1 for None) as adding keras.Input(...) does;
    /// `name` is the InputLayer's name in configs ("input_layer", ... when empty).
    /// requires: no layer and no input yet (ValueError).
    void add_input(const dims_t& batch_shape, const std::string& name = "");
    /// Removes and returns the last layer (ValueError when there is none).
    LayerPtr<T> pop();
    std::vector<LayerPtr<T>> layers() const override { return m_layers; }

    /// Builds every layer for `input_shape` (batch axis included, -1 for None).
    /// requires: at least one layer; the shape of the InputLayer if there is one (ValueError).
    void build(const dims_t& input_shape) override;
    /// The input shape (batch axis included) if known: from an InputLayer, the first layer's
    /// config, or the first build.
    std::optional<dims_t> input_shape() const;

    /// {"name", "trainable", "dtype", "layers": [{"class_name", "config"}, ...], "build_input_shape"}
    /// with an InputLayer entry first when the input shape is known (Keras 3's H5 form).
    json get_config() const override;
    /// Accepts Keras 3's and tf.keras 2's Sequential configs (also the bare layer list of Keras 1).
    static std::shared_ptr<Sequential> from_config(const json& config, const LayerSpecFactory<T>& make_layer);

protected:
    /// The layers in turn, each one's output mask feeding the next.
    std::vector<Tensor<T>> call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                     const CallArgs& args) override;

private:
    void set_input(const dims_t& shape, const std::string& name);

    std::vector<LayerPtr<T>> m_layers;
    LayerPtr<T> m_input_layer; // an InputLayer object that was added, if any
    std::optional<dims_t> m_input_shape;
    std::string m_input_name;
    bool m_in_build = false;
};

} // namespace xtape
