// Keras 3's native formats: `.keras` zip archives and `.weights.h5` object-path weight stores.
//
//   auto model = load_model<float>("m.keras");   // dispatched here by the file's first bytes
//   save_model(*model, "out.keras");             // dispatched here by the extension, as Keras 3
//   save_weights(*model, "w.weights.h5");        // Keras 3's layout, not tf.keras's
//
// An archive (saving_lib.py) holds three entries:
//   metadata.json     {"keras_version": "3.10.0", "date_saved": "2026-12-03@15:00:00"}
//   config.json       the model serialized Keras 3's way: {module, class_name, config,
//                     registered_name, build_config, compile_config}
//   model.weights.h5  the weight store below
// The weight store (also the whole of a .weights.h5 file):
//   /vars                              the model's own variables (none), attr name
//   /layers/<object path>/vars/<i>     a layer's own variables in creation order (trainable,
//                                      then non-trainable), attr name = the layer's name
//   /layers/<path>/layers/<path>/...   layers of a nested model; TimeDistributed's inner layer
//                                      at <path>/layer
//   /optimizer/vars/<i>                the optimizer's variables (Note [Keras 3 optimizer order])
// <object path> is NOT the layer's name: it is the snake_case class name plus a counter per class
// in the order of model.layers (dense, dense_1, conv2d, ...), Keras's _save_container_state.
// model.layers is Sequential's without its InputLayer, a Functional's with its InputLayers.
//
// Loading reads config.json with the one model-config parser (model_from_json), then each
// layer's variables from its object path; every check happens before any weight changes.
// Weights stored as another type than T (float64 archives, Normalization's int64 count) are
// converted to T as numpy's astype does (float64 -> float32 rounds to nearest).
#pragma once

#include "framework/io/hdf5.hpp"
#include "framework/model.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace xtape::keras3 {

/// The Keras version whose format the archives xtape writes follow (metadata.json).
inline constexpr const char* written_keras_version = "3.10.0";

/// True when `path` ends in ".keras" (save_model writes an archive there, as Keras 3 does).
bool is_archive_path(const std::string& path);
/// True when `path` ends in ".weights.h5" (save_weights writes Keras 3's layout there).
bool is_weights_store_path(const std::string& path);
/// True when an HDF5 root is a Keras 3 weight store (a "layers" or "vars" group and no
/// tf.keras "layer_names" attribute).
bool is_weights_store(const io::H5Group& root);

/// A layer and its Keras 3 object path ("layers/dense_1", "layers/sequential/layers/dense").
template <class T>
struct ObjectPath {
    LayerPtr<T> layer;
    std::string path;
};
/// Every layer of `model` (nested ones included) with its object path, in Keras's walk order.
template <class T>
std::vector<ObjectPath<T>> object_paths(const Model<T>& model);

/// Every dataset of a Keras 3 weight store as (path, value) pairs, "layers/dense/vars/0",
/// groups and vars in Keras's order (members sorted with numbers compared as numbers), values
/// converted to double. Works on any .weights.h5, a .keras archive's store, or a tf.keras .h5
/// (all datasets). For mapping weights by hand when the model itself cannot be built.
std::vector<std::pair<std::string, array_t<double>>> list_weights(const std::string& path);

/// load_model for a .keras archive. Same contract as xtape::load_model.
template <class T>
std::shared_ptr<Model<T>> load_archive(const std::string& path, bool compile);
/// save_model for a .keras path (atomic).
template <class T>
void save_archive(const Model<T>& model, const std::string& path, bool include_optimizer);
/// save_weights in Keras 3's layout (atomic).
template <class T>
void save_weights_store(const Model<T>& model, const std::string& path);
/// load_weights from a Keras 3 store: a .weights.h5 file or a .keras archive's weights.
template <class T>
void load_weights_store(Model<T>& model, const std::string& path);

/// The model's config.json content: Keras 3's serialized form of model_to_json (modules,
/// registered names, DTypePolicy dicts, build_config) plus compile_config when compiled.
template <class T>
json archive_config(const Model<T>& model);

} // namespace xtape::keras3
