// Models in Keras's HDF5 (.h5) format: load files written by Keras 1.x, Keras 2.x, tf.keras 2.x,
// Keras 3's legacy .h5 writer and xtape; save files with the layout tf.keras 2.x writes.
//
//   auto model = load_model<float>("ad01.h5");          // architecture, weights, compile state
//   model->fit(x, y, fo);
//   save_model(*model, "ad01_finetuned.h5");            // model.save("...h5")
//   save_weights(*model, "w.h5"); load_weights(*model, "w.h5");
//   auto m2 = model_from_json<float>(json_text); load_weights(*m2, "weights.h5");
//
// File layout written by save_model (what h5py shows for a tf.keras 2.x file):
//   /  attrs keras_version, backend, model_config (JSON), training_config (JSON, when compiled),
//            xtape_version
//   /model_weights  attrs layer_names, backend, keras_version
//   /model_weights/<layer>/<layer>/<weight>:0          (weight_names lists "<layer>/<weight>:0")
//   /optimizer_weights  attr weight_names; "<optimizer>/iteration:0", then the slots as
//            "<optimizer>/<layer>/<weight>/<slot>:0", in the optimizer's variables() order
// Every save writes a temporary file beside the target and renames it over the target only
// when complete (framework/io/atomic_file.hpp): a failed save leaves the previous file intact.
//
// Loading follows Keras's load_weights_from_hdf5_group: the layers of the model that have
// weights are matched, in order, with the layers of the file whose weight_names is not empty;
// each layer's datasets are found by the names in weight_names, in that order. Keras 1's
// running_std is loaded as the moving variance (Keras 1 stored the variance under that name).
// Errors are typed (IOError, ValueError, ShapeError, NotImplementedError, KeyError) and name the
// file and the layer: an unsupported layer class, a merge in a Functional graph, a missing
// weight, a count or shape mismatch, a truncated or non-HDF5 file.
#pragma once

#include "framework/model.hpp"

#include <functional>
#include <memory>
#include <string>

namespace xtape {

/// The keras_version string save_model writes. Readers (Keras, tf.keras, DL4J) use it only to
/// tell Keras 1 files apart; the files follow tf.keras 2.x's layout, so a 2.x version is written
/// and xtape's own version goes to the extra root attribute "xtape_version".
inline constexpr const char* keras_h5_written_keras_version = "2.15.0";
inline constexpr const char* keras_h5_written_backend = "tensorflow";

/// Loads a model saved by model.save / save_model.
///   requires: `path` holds a model_config attribute (a weights-only file gives ValueError
///             suggesting model_from_json + load_weights).
///   ensures:  the model is built for the file's input shape with the file's weights; when
///             `compile` and the file has a training_config, the model is compiled from it (a
///             training_config xtape cannot read is reported on stderr and the model is returned
///             uncompiled, as a loaded model is still useful for predict); the optimizer state in
///             /optimizer_weights is restored so that fit(initial_epoch=...) continues the run,
///             each slot found by its name (tf.keras 2.x and Keras 2.11+ names) or, when the
///             names cannot be read, by position as Keras does (a state that does not fit is
///             reported on stderr and skipped, as Keras does).
template <class T>
std::shared_ptr<Model<T>> load_model(const std::string& path, bool compile = true);

/// Saves architecture, weights, compile state and (when `include_optimizer`) optimizer state.
/// requires: the model is built (ValueError otherwise: Keras needs the weights' shapes).
/// Several processes (mpirun): every rank calls it; rank 0 alone writes and the others return once
/// the file is complete (Note [Saving on rank 0] in framework/collective.hpp). The same for
/// save_weights and the .keras / .weights.h5 forms.
template <class T>
void save_model(const Model<T>& model, const std::string& path, bool include_optimizer = true);

/// Keras's weights-only layout: layer_names, backend, keras_version on the root.
template <class T>
void save_weights(const Model<T>& model, const std::string& path);

/// Loads weights from a save_weights file or a model.save file (its /model_weights).
///   by_name false: Keras's topological matching described above.
///   by_name true:  each layer of the model takes the weights of the file's layer of the same
///                  name; layers missing from the file keep their weights. A count or shape
///                  mismatch is an error unless `skip_mismatch`, which skips that layer (with a
///                  warning on stderr).
/// All checks happen before any weight changes: on error the model is untouched.
template <class T>
void load_weights(Model<T>& model, const std::string& path, bool by_name = false, bool skip_mismatch = false);

/// A model from model.to_json() text or any model_config (Keras 1/2/3 forms); not compiled,
/// built when the config declares an input shape. `source` names it in error messages.
template <class T>
std::shared_ptr<Model<T>> model_from_json(const std::string& json_text, const std::string& source = "model_config");

/// model.to_json(): {"class_name", "config", "keras_version", "backend"} in the form save_model
/// stores as model_config.
template <class T>
std::string model_to_json_string(const Model<T>& model);

/// The training_config save_model stores for a compiled model: {"loss", "metrics",
/// "weighted_metrics", "loss_weights", "optimizer_config"}; null json when not compiled.
/// The metrics are those given to compile(), before they are resolved: a name or config as
/// given, a metric instance as {class_name, config}; a model saved right after compile() keeps
/// them.
template <class T>
json training_config_of(const Model<T>& model);

/// Compiles `model` from a Keras training_config (any version: "lr" or "learning_rate",
/// "Custom>Adam", loss as a name or a dict, metrics as names, dicts or nested lists).
/// `keras_version`: the file's, for the optimizer defaults of that version (empty: Keras 3's).
template <class T>
void compile_from_training_config(Model<T>& model, const json& training_config, const std::string& keras_version = "");

/// The metrics a training_config names, flattened (Keras 2 nested per-output lists, tf.keras
/// MeanMetricWrapper dicts become the name the user gave), ready for compile().
std::vector<json> metrics_from_training_config(const json& training_config);

namespace keras_h5 {
/// Parses a model or training config, refusing documents nested deeper than any Keras config
/// (ValueError naming `what`, e.g. "f.h5: the 'model_config' attribute", for bad JSON too).
json parse_config(const std::string& text, const std::string& what);
/// model_from_json for a parsed config: the one config parser with the layer registry.
template <class T>
std::shared_ptr<Model<T>> model_from_config_json(const json& model_config, const std::string& source);

/// The key by which a saved optimizer variable is matched: "iteration" for the step counter,
/// "<slot kind>|<layer>/<weight>" for a slot named in tf.keras 2.x's form
/// ("training/Adam/dense/kernel/m:0"), Keras 2.11+'s ("Adam/m/dense/kernel:0") or xtape's
/// ("adam/dense/kernel/momentum:0"), with the slot kind in xtape's words (m -> momentum, v ->
/// velocity, rms -> velocity, mg -> average_gradient, ...); "" for a name that says neither.
std::string optimizer_state_key(const std::string& stored_name);
} // namespace keras_h5

namespace keras_h5::testing {
/// Test hook: save_model and save_weights call it with "model_weights" after writing the
/// weights (and with "optimizer_weights" after the optimizer state). A hook that throws
/// simulates a failure in the middle of a save. An empty function removes the hook.
void set_save_fault_hook(std::function<void(const std::string& stage)> hook);
} // namespace keras_h5::testing

} // namespace xtape
