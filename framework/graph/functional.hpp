// Functional: keras.Model(inputs, outputs) - a model that is a graph of layer calls - and its
// config in Keras's functional form.
//
//   auto a = Input<float>({ 8 }, "a"), b = Input<float>({ 8 }, "b");
//   auto h = (*encoder)(a), k = (*encoder)(b);              // a shared layer: two nodes
//   auto y = (*std::make_shared<Concatenate<float>>())({ h, k });
//   Functional<float> model({ a, b }, { y }, "two_tower");   // or Model<float>(...)
//   auto out = model({ xa, xb });                             // runs the graph
//   auto z = model(Input<float>({ 8 }, "c"));                  // ... or nests in another graph
//
// get_config writes Keras 3's form: {"name", "trainable", "layers": [{"module", "class_name",
// "config", "registered_name", "name", "inbound_nodes": [{"args": [...], "kwargs": {...}}]}],
// "input_layers", "output_layers"}; node indices count only the nodes of this model (Keras's
// reindexing), call arguments are the node's kwargs ({"training": false}).
// from_config reads that form and tf.keras 1/2's ("inbound_nodes": [[["dense", 0, 0, {}]]]),
// replaying the nodes in Keras's order (a node waits until the nodes it reads exist).
#pragma once

#include "framework/model.hpp"

namespace xtape {

template <class T>
/// keras.Model(inputs, outputs) under Keras's class name "Functional": a model that runs the graph between symbolic tensors.
class Functional : public Model<T> {
public:
    using Model<T>::Model;
    /// A chain: `input` (keras.Input) through each layer in turn (a shortcut for building
    /// the graph by hand). requires: at least one layer, none null (ValueError).
    Functional(const KerasTensor<T>& input, const std::vector<LayerPtr<T>>& layers, std::string name = "");
    /// The same with an InputLayer (ValueError for another layer or null).
    Functional(const LayerPtr<T>& input, const std::vector<LayerPtr<T>>& layers, std::string name = "");

    /// Reads Keras 3's and tf.keras 1/2's functional configs; nested Sequential/Functional
    /// specs become models. Errors (ValueError) name the layer: unknown inbound layers, node
    /// indices that never come to exist, call arguments other than training (and a null mask).
    static std::shared_ptr<Functional> from_config(const json& config, const LayerSpecFactory<T>& make_layer);
};

/// Keras 3's functional config of a model with a graph (see above).
template <class T>
json functional_config(const Model<T>& model);

} // namespace xtape
