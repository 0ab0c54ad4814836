// Keras's model_config JSON (the `model_config` root attribute of model.save files and the
// output of model.to_json()).
//
// load_model no longer uses parse_model_config: models are built by the one config parser,
// model_from_config (framework/model.hpp, Functional::from_config), which reads graphs of every
// shape. parse_model_config below, the older chain-only reader, is kept only until its tests
// (structure of real files whose layers xtape lacks) move to model_from_config; then it goes.
// to_tf_keras_model_config is what save_model writes with.
//
// Forms accepted (all seen in real files, see ../shared/keras-models/README.md):
//   {"class_name": "Sequential", "config": [layer, ...]}                       Keras 1, 2.0-2.1
//   {"class_name": "Sequential", "config": {"name": ..., "layers": [...]}}     Keras 2.2+, Keras 3
//   {"class_name": "Model" | "Functional", "config": {"name", "layers", "input_layers",
//    "output_layers"}}, each layer with "name" and "inbound_nodes" in Keras 1/2's list form
//   [[["dense", 0, 0, {}]]] or Keras 3's [{"args": [{"class_name": "__keras_tensor__",
//   "config": {"keras_history": ["dense", 0, 0]}}], "kwargs": {}}].
// A Functional graph must be a chain: one input, one output, every layer called once on the
// previous layer's output. Merges, branches, shared layers and nested models are refused with
// NotImplementedError naming the source and the layer.
#pragma once

#include "framework/config.hpp"
#include "framework/layer.hpp"

#include <optional>
#include <string>
#include <vector>

namespace xtape::keras_h5 {

/// One layer of the chain: its class name and its config (as stored; the layer registry reads
/// Keras 1, 2 and 3 keys).
struct LayerSpec {
    std::string class_name;
    std::string name; ///< config["name"] (or the functional layer's "name")
    json config;
};

struct ModelSpec {
    std::string class_name; ///< "Sequential", "Model" or "Functional" as stored
    std::string name;       ///< the model's name ("" when the config had none)
    bool functional = false;
    /// The batch input shape: from an InputLayer (batch_input_shape / batch_shape), else from the
    /// first layer's batch_input_shape / batch_shape / input_shape / input_dim, else from
    /// Sequential's build_input_shape. nullopt when the config declares none.
    std::optional<dims_t> input_shape;
    std::string input_name; ///< the InputLayer's name, "" when there was none
    /// The layers in call order, without the InputLayer.
    std::vector<LayerSpec> layers;
};

/// Parses a model config. `source` names the file (or "model_config") in error messages.
///   throws ValueError for malformed JSON structures, NotImplementedError for graphs that are not
///   linear chains and for nested models; both name `source` and the layer.
ModelSpec parse_model_config(const json& model_config, const std::string& source);

/// The same from JSON text (model.to_json()); ValueError naming `source` for invalid JSON.
ModelSpec parse_model_config(const std::string& json_text, const std::string& source);

/// A model config (as Model::get_config writes it, Keras 3's form) rewritten into the form
/// tf.keras 2.x writes and reads, which Keras 3 also reads:
///   - InputLayer "batch_shape" becomes "batch_input_shape" (Keras 3's InputLayer accepts both;
///     tf.keras 2.x only the latter), and Keras 3's "optional": false is dropped;
///   - Functional inbound_nodes [{"args": [__keras_tensor__], "kwargs": {}}] become tf.keras's
///     [[["prev", 0, 0, {}]]].
/// Everything else is kept. Nested models are converted recursively.
json to_tf_keras_model_config(const json& model_config);

} // namespace xtape::keras_h5
