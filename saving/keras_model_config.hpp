// Keras's model_config JSON (the `model_config` root attribute of model.save files and the
// output of model.to_json()) in the form tf.keras 2 writes. Models are read by the one config
// parser, model_from_config (framework/model.hpp; Functional::from_config for graphs), which
// load_model uses with the layer registry.
#pragma once

#include "framework/config.hpp"
#include "framework/layer.hpp"

namespace xtape::keras_h5 {

/// A model config (as Model::get_config writes it, Keras 3's form) rewritten into the form
/// tf.keras 2.x writes and reads, which Keras 3 also reads:
///   - InputLayer "batch_shape" becomes "batch_input_shape" (Keras 3's InputLayer accepts both;
///     tf.keras 2.x only the latter), and Keras 3's "optional": false is dropped;
///   - Functional inbound_nodes [{"args": [__keras_tensor__], "kwargs": {}}] become tf.keras's
///     [[["prev", 0, 0, {}]]].
/// Everything else is kept. Nested models are converted recursively.
json to_tf_keras_model_config(const json& model_config);

} // namespace xtape::keras_h5
