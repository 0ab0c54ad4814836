// Keras's HDF5 weights layout, read and written without knowing any layer or model:
//
//   <group>                       attrs layer_names, backend, keras_version
//     <layer name>/               attr  weight_names = ["dense/kernel:0", "dense/bias:0"]
//       dense/kernel:0            the stored path is the weight name itself ('/' makes subgroups)
//
// <group> is the file root for save_weights files and /model_weights for model.save files.
// Every version of Keras that wrote .h5 files uses this layout; the differences are in the
// strings (see ../shared/keras-models/README.md): Keras 1 names ("dense_1_W", "..._running_std"),
// names with or without ":0", prefixes that differ from the layer name, fixed- or variable-length
// string attributes, and an empty weight_names stored as a float64 array of shape (0,).
#pragma once

#include "framework/io/hdf5.hpp"
#include "framework/tensor.hpp"

#include <string>
#include <vector>

namespace xtape::keras_h5 {

/// The weights one layer group holds, in its weight_names order.
template <class T>
struct LayerWeights {
    std::string layer_name;
    std::vector<std::string> weight_names; ///< as stored ("dense_1/kernel:0", "dense_1_W", ...)
    std::vector<array_t<T>> values;        ///< values[i] is the dataset named weight_names[i]
};

/// Everything a weights group holds.
template <class T>
struct WeightsGroup {
    std::string keras_version; ///< "1" when the attribute is absent, as Keras's loader assumes
    std::string backend;       ///< "" when absent (Keras 1.2.2 did not write it)
    std::vector<LayerWeights<T>> layers; ///< every name in layer_names, in that order
};

/// True when `root` is a weights-only file (save_weights): layer_names sits on the root.
bool is_weights_only_root(const io::H5Group& root);

/// The group that holds the weights: the root for save_weights files, /model_weights otherwise.
/// requires: one of them exists (IOError naming the file otherwise).
io::H5Group weights_group_of(const io::H5Group& root);

/// Reads a weights group, looking every dataset up by the names in weight_names, in order.
///   ensures: layers in layer_names order, including layers without weights; values converted to T.
///   throws IOError naming the file, the layer and the weight when layer_names is missing, a layer
///   group is missing, or a listed weight has no dataset.
template <class T>
WeightsGroup<T> read_weights_group(const io::H5Group& group);

/// Opens `path` and reads its weights (root or /model_weights, whichever the file holds).
template <class T>
WeightsGroup<T> read_weights_file(const std::string& path);

/// One layer to write: its name and its weights with the names to store them under.
template <class T>
struct LayerWeightsRef {
    std::string layer_name;
    std::vector<std::string> weight_names; ///< full stored names, e.g. "dense/kernel:0"
    std::vector<const array_t<T>*> values;
};

/// Writes the layout tf.keras 2.x's save_weights_to_hdf5_group writes into `group`:
/// layer_names (model order), backend, keras_version, then one group per layer created in
/// sorted name order, each with weight_names and float datasets at those names.
///   requires: unique layer names; weight_names[i] matches values[i]; `group` empty.
template <class T>
void write_weights_group(io::H5Group& group, const std::vector<LayerWeightsRef<T>>& layers,
                         const std::string& keras_version, const std::string& backend);

/// The name a weight has inside its layer, whatever the Keras version wrote:
///   "dense_1/kernel:0" -> "kernel", "batch_normalization/moving_variance" -> "moving_variance",
///   Keras 1 "dense_1_W:0" -> "kernel", "dense_1_b" -> "bias",
///   "batchnormalization_1_running_std" -> "moving_variance" (Keras 1 stored the variance there),
///   "..._running_mean" -> "moving_mean", "..._gamma" / "..._beta" unchanged.
/// `layer_name` helps split Keras 1 names; an unknown form gives the name without ":0" and prefix.
std::string short_weight_name(const std::string& stored_name, const std::string& layer_name);

} // namespace xtape::keras_h5
