// Sequential and Functional models: a chain of layers, as Keras's keras.Sequential and
// keras.Model(inputs, outputs) for single-input, single-output chains.
//
//   Sequential<float> m;                        // name "sequential", "sequential_1", ...
//   m.add(input_layer);                         // optional: an InputLayer fixes the input shape
//   m.add(dense); m.add(dense_2);               // built as soon as the input shape is known
//   m.build({ -1, 784 });                       // or build explicitly (-1 is None)
//
// Models from Keras JSON: framework/ knows no particular layer, so from_config() takes a
// LayerFactory that turns a layer spec {"class_name", "config", ...} into a layer; the
// layers/ registry provides one (layer_from_config<T>), and the HDF5 loader in saving/
// passes it. Nested Sequential/Functional specs are built here, recursively.
#pragma once

#include "framework/model.hpp"

#include <functional>
#include <optional>

namespace xtape {

/// Makes a layer from its Keras spec {"class_name": ..., "config": {...}}; e.g.
/// [](const json& s) { return layer_from_config<float>(s); } with layers/registry.hpp.
template <class T>
using LayerSpecFactory = std::function<LayerPtr<T>(const json& layer_spec)>;

template <class T>
class Sequential : public Model<T> {
public:
    explicit Sequential(std::string name = "", bool trainable = true);
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

private:
    void set_input(const dims_t& shape, const std::string& name);

    std::vector<LayerPtr<T>> m_layers;
    LayerPtr<T> m_input_layer; // an InputLayer object that was added, if any
    std::optional<dims_t> m_input_shape;
    std::string m_input_name;
    bool m_in_build = false;
};

/// A functional model that is a chain: input -> layers[0] -> ... -> layers.back() -> output.
template <class T>
class Functional : public Model<T> {
public:
    /// Built at once for `input_shape` (batch axis included, -1 for None).
    Functional(const dims_t& input_shape, std::vector<LayerPtr<T>> layers, std::string name = "",
               std::string input_name = "");
    /// keras.Model(inputs=keras.Input(...), outputs=...) for a chain: `input` is an InputLayer
    /// (Input() of layers/input_layer.hpp); its batch_shape and name become the model's.
    /// requires: a layer of class name "InputLayer" whose config declares a batch shape (ValueError).
    Functional(const LayerPtr<T>& input, std::vector<LayerPtr<T>> layers, std::string name = "");
    std::vector<LayerPtr<T>> layers() const override { return m_layers; }
    const dims_t& input_shape() const { return m_input_shape; }

    /// Keras 3's Functional config: layers with "name" and "inbound_nodes" ({"args":
    /// [__keras_tensor__ ...], "kwargs": {}}), "input_layers", "output_layers".
    json get_config() const override;
    /// Reads Keras 3's and tf.keras 2's (nested-list inbound_nodes) configs of chains.
    /// Throws NotImplementedError naming the layer for anything else: merges (a layer with
    /// several inputs), branches (an output used twice), shared layers, several inputs/outputs.
    static std::shared_ptr<Functional> from_config(const json& config, const LayerSpecFactory<T>& make_layer);

protected:
    bool summary_shows_input_layer() const override { return true; }
    std::string input_layer_name() const override { return m_input_name; }

private:
    dims_t m_input_shape;
    std::vector<LayerPtr<T>> m_layers;
    std::string m_input_name;
};

/// A model from {"class_name": "Sequential" | "Functional" | "Model", "config": {...}}
/// (KeyError for other class names).
template <class T>
std::shared_ptr<Model<T>> model_from_config(const json& spec, const LayerSpecFactory<T>& make_layer);

/// {"class_name": model.class_name(), "config": model.get_config()}.
template <class T>
json model_to_json(const Model<T>& model);

} // namespace xtape
