#include "saving/keras_h5_weights.hpp"

#include "framework/errors.hpp"

#include <algorithm>
#include <set>

namespace xtape::keras_h5 {

bool is_weights_only_root(const io::H5Group& root)
{
    // Keras's load_weights makes the same decision: layer_names on the root means save_weights.
    return root.has_string_array_attribute("layer_names");
}

io::H5Group weights_group_of(const io::H5Group& root)
{
    if (is_weights_only_root(root))
        return root;
    if (root.has_group("model_weights"))
        return root.group("model_weights");
    throw IOError(root.file_path() +
                  ": not a Keras weights file: expected a 'layer_names' attribute on the root (save_weights) "
                  "or a 'model_weights' group (model.save), found neither");
}

namespace {

std::string optional_string_attribute(const io::H5Group& g, const std::string& name, const std::string& fallback)
{
    if (!g.has_attribute(name))
        return fallback;
    return g.read_string_attribute(name);
}

} // namespace

template <class T>
WeightsGroup<T> read_weights_group(const io::H5Group& group)
{
    const std::string& file = group.file_path();
    if (!group.has_string_array_attribute("layer_names"))
        throw IOError(file + ": the weights group '" + group.name() + "' has no 'layer_names' attribute");
    WeightsGroup<T> out;
    // Keras's loader takes a missing keras_version to mean a Keras 1 file; mnist_mlp_th_keras_1
    // (Keras 1.2.2 save_weights) indeed has neither attribute.
    out.keras_version = optional_string_attribute(group, "keras_version", "1");
    out.backend = optional_string_attribute(group, "backend", "");

    for (const std::string& layer_name : group.read_string_array_attribute("layer_names")) {
        if (!group.has_group(layer_name))
            throw IOError(file + ": layer '" + layer_name + "' is listed in layer_names of '" + group.name() +
                          "' but has no group");
        io::H5Group lg = group.group(layer_name);
        LayerWeights<T> lw;
        lw.layer_name = layer_name;
        if (lg.has_string_array_attribute("weight_names"))
            lw.weight_names = lg.read_string_array_attribute("weight_names");
        for (const std::string& wn : lw.weight_names) {
            // The stored name is the dataset's path inside the layer group; never rebuild it.
            if (!lg.has_dataset(wn))
                throw IOError(file + ": layer '" + layer_name + "': weight '" + wn +
                              "' is listed in weight_names but there is no dataset '" + lg.name() + "/" + wn + "'");
            lw.values.push_back(lg.read_dataset<T>(wn));
        }
        out.layers.push_back(std::move(lw));
    }
    return out;
}

template <class T>
WeightsGroup<T> read_weights_file(const std::string& path)
{
    io::H5File f = io::H5File::open_read(path);
    return read_weights_group<T>(weights_group_of(f.root()));
}

template <class T>
void write_weights_group(io::H5Group& group, const std::vector<LayerWeightsRef<T>>& layers,
                         const std::string& keras_version, const std::string& backend)
{
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const auto& l : layers) {
        if (!seen.insert(l.layer_name).second)
            throw ValueError(group.file_path() + ": cannot save weights: two layers are named '" + l.layer_name +
                             "'; Keras's format needs unique layer names");
        if (l.weight_names.size() != l.values.size())
            throw ValueError(group.file_path() + ": layer '" + l.layer_name + "': " +
                             std::to_string(l.weight_names.size()) + " weight names for " +
                             std::to_string(l.values.size()) + " values");
        names.push_back(l.layer_name);
    }
    group.write_string_array_attribute("layer_names", names);
    group.write_string_attribute("backend", backend);
    group.write_string_attribute("keras_version", keras_version);

    // tf.keras creates the layer groups in sorted order "to avoid prefix issues"; HDF5 lists
    // members alphabetically anyway, so this only keeps the files byte-for-byte closer.
    std::vector<const LayerWeightsRef<T>*> sorted;
    for (const auto& l : layers)
        sorted.push_back(&l);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->layer_name < b->layer_name; });
    for (const auto* l : sorted) {
        io::H5Group lg = group.create_group(l->layer_name);
        lg.write_string_array_attribute("weight_names", l->weight_names);
        for (std::size_t i = 0; i < l->values.size(); ++i)
            lg.write_dataset<T>(l->weight_names[i], *l->values[i]);
    }
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string keras1_suffix_to_name(const std::string& suffix)
{
    if (suffix == "W")
        return "kernel";
    if (suffix == "b")
        return "bias";
    if (suffix == "running_mean")
        return "moving_mean";
    // Keras 1's BatchNormalization passed running_std to K.batch_normalization as the variance.
    if (suffix == "running_std")
        return "moving_variance";
    return suffix;
}

} // namespace

std::string short_weight_name(const std::string& stored_name, const std::string& layer_name)
{
    std::string n = stored_name;
    const auto colon = n.rfind(':');
    if (colon != std::string::npos && colon + 1 < n.size() &&
        std::all_of(n.begin() + static_cast<long>(colon) + 1, n.end(), [](char c) { return c >= '0' && c <= '9'; }))
        n.erase(colon);
    const auto slash = n.rfind('/');
    if (slash != std::string::npos)
        return n.substr(slash + 1);
    // No '/': a Keras 1 name "<layer>_<suffix>".
    if (!layer_name.empty() && n.size() > layer_name.size() + 1 && n.compare(0, layer_name.size(), layer_name) == 0 &&
        n[layer_name.size()] == '_')
        return keras1_suffix_to_name(n.substr(layer_name.size() + 1));
    for (const char* suffix : { "running_mean", "running_std", "gamma", "beta", "W", "b" })
        if (ends_with(n, std::string("_") + suffix))
            return keras1_suffix_to_name(suffix);
    return n;
}

template WeightsGroup<float> read_weights_group<float>(const io::H5Group&);
template WeightsGroup<double> read_weights_group<double>(const io::H5Group&);
template WeightsGroup<float> read_weights_file<float>(const std::string&);
template WeightsGroup<double> read_weights_file<double>(const std::string&);
template void write_weights_group<float>(io::H5Group&, const std::vector<LayerWeightsRef<float>>&,
                                         const std::string&, const std::string&);
template void write_weights_group<double>(io::H5Group&, const std::vector<LayerWeightsRef<double>>&,
                                          const std::string&, const std::string&);

} // namespace xtape::keras_h5
