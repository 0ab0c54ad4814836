#include "layers/fold_batch_norm.hpp"

#include "framework/sequential.hpp"
#include "layers/registry.hpp"

#include <cmath>
#include <map>
#include <set>

namespace xtape {

namespace {

bool foldable_class(const std::string& c)
{
    return c == "Dense" || c == "Conv1D" || c == "Conv2D" || c == "Conv3D" || c == "DepthwiseConv1D" ||
           c == "DepthwiseConv2D";
}

std::string entry_name(const json& entry)
{
    if (entry.contains("name") && entry["name"].is_string())
        return entry["name"].get<std::string>();
    return entry.at("config").value("name", "");
}

/// How often the string `name` occurs inside `j` (the references of inbound_nodes / output_layers).
std::size_t count_refs(const json& j, const std::string& name)
{
    if (j.is_string())
        return j.get<std::string>() == name ? 1 : 0;
    std::size_t n = 0;
    if (j.is_array() || j.is_object())
        for (const auto& e : j)
            n += count_refs(e, name);
    return n;
}

void replace_refs(json& j, const std::string& from, const std::string& to)
{
    if (j.is_string()) {
        if (j.get<std::string>() == from)
            j = to;
        return;
    }
    if (j.is_array() || j.is_object())
        for (auto& e : j)
            replace_refs(e, from, to);
}

/// The names the entry's single inbound node reads (functional configs), in order.
std::vector<std::string> inbound_names(const json& entry, const std::set<std::string>& layer_names)
{
    std::vector<std::string> out;
    std::function<void(const json&)> walk = [&](const json& j) {
        if (j.is_string() && layer_names.count(j.get<std::string>()))
            out.push_back(j.get<std::string>());
        else if (j.is_array() || j.is_object())
            for (const auto& e : j)
                walk(e);
    };
    if (entry.contains("inbound_nodes"))
        walk(entry["inbound_nodes"]);
    return out;
}

/// The BatchNormalization's normalized axes as non-negative ints for an input of rank `rank`.
std::vector<long> bn_axes(const json& config, std::size_t rank)
{
    std::vector<long> axes;
    const json a = config.contains("axis") ? config["axis"] : json(-1);
    auto add = [&](long v) { axes.push_back(v < 0 ? v + long(rank) : v); };
    if (a.is_array())
        for (const auto& v : a)
            add(v.get<long>());
    else
        add(a.get<long>());
    return axes;
}

template <class T>
const array_t<T>* weight_named(const Layer<T>& layer, const std::string& name)
{
    for (const auto& v : layer.weights())
        if (v.name() == name)
            return &v.value();
    return nullptr;
}

} // namespace

template <class T>
std::shared_ptr<Model<T>> fold_batch_norm(const Model<T>& model, std::vector<std::string>* folded)
{
    if (!model.built())
        throw ValueError("fold_batch_norm: model '" + model.name() + "' is not built yet (its weights do not exist)");
    json spec = model_to_json(model);
    const std::string cls = spec.value("class_name", "");
    if (cls != "Sequential" && cls != "Functional" && cls != "Model")
        throw ValueError("fold_batch_norm: expected a Sequential or Functional model, got '" + cls + "'");
    json& layers = spec["config"]["layers"];
    const bool functional = cls != "Sequential";

    std::map<std::string, LayerPtr<T>> by_name;
    for (const auto& l : model.layers())
        by_name[l->name()] = l;
    std::set<std::string> names;
    for (const auto& e : layers)
        names.insert(entry_name(e));

    // pairs: folded layer name -> its BatchNormalization
    std::map<std::string, LayerPtr<T>> pairs;
    std::set<std::string> removed;
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const json& bn_entry = layers[i];
        if (bn_entry.value("class_name", "") != "BatchNormalization")
            continue;
        const std::string bn_name = entry_name(bn_entry);
        std::string prev_name;
        if (functional) {
            const auto in = inbound_names(bn_entry, names);
            if (in.size() != 1 || bn_entry["inbound_nodes"].size() != 1)
                continue;
            prev_name = in[0];
            // the layer's output must feed only this BatchNormalization
            std::size_t uses = count_refs(spec["config"].value("output_layers", json::array()), prev_name);
            for (const auto& e : layers)
                if (entry_name(e) != prev_name && e.contains("inbound_nodes"))
                    uses += count_refs(e["inbound_nodes"], prev_name);
            if (uses != 1)
                continue;
        } else {
            if (i == 0 || layers[i - 1].value("class_name", "") == "InputLayer")
                continue;
            prev_name = entry_name(layers[i - 1]);
        }
        auto prev = by_name.find(prev_name);
        auto bn = by_name.find(bn_name);
        if (prev == by_name.end() || bn == by_name.end() || !foldable_class(prev->second->class_name()) ||
            pairs.count(prev_name))
            continue;
        const json pc = prev->second->get_config();
        if (pc.value("activation", "linear") != "linear")
            continue;
        const dims_t out = prev->second->compute_output_shape(prev->second->build_input_shape());
        const bool cf = pc.value("data_format", "channels_last") == "channels_first";
        const long channel_axis = prev->second->class_name() != "Dense" && cf ? 1 : long(out.size()) - 1;
        if (bn_axes(bn->second->get_config(), out.size()) != std::vector<long>{ channel_axis })
            continue;
        pairs[prev_name] = bn->second;
        removed.insert(bn_name);
        if (folded)
            folded->push_back(prev_name + " <- " + bn_name);
    }

    // The config of the folded model: BN entries removed, references to them moved to their layer.
    json kept = json::array();
    for (auto& e : layers) {
        const std::string n = entry_name(e);
        if (removed.count(n))
            continue;
        if (pairs.count(n))
            e["config"]["use_bias"] = true;
        kept.push_back(e);
    }
    for (const auto& [layer_name, bn] : pairs) {
        for (auto& e : kept)
            if (e.contains("inbound_nodes"))
                replace_refs(e["inbound_nodes"], bn->name(), layer_name);
        if (spec["config"].contains("output_layers"))
            replace_refs(spec["config"]["output_layers"], bn->name(), layer_name);
    }
    layers = kept;
    auto result = model_from_config<T>(spec, [](const json& s) { return layer_from_config<T>(s); });
    if (!result->built() && model.build_input_shape().size())
        result->build_once(model.build_input_shape());

    for (const auto& l : result->layers()) {
        auto src = by_name.find(l->name());
        if (src == by_name.end())
            throw RuntimeError("fold_batch_norm: layer '" + l->name() + "' has no counterpart in the original model");
        auto pair = pairs.find(l->name());
        if (pair == pairs.end()) {
            l->set_weights(src->second->get_weights());
            continue;
        }
        const Layer<T>& bn = *pair->second;
        const json bc = bn.get_config();
        const double eps = bc.value("epsilon", 1e-3);
        const array_t<T>* mean = weight_named(bn, "moving_mean");
        const array_t<T>* var = weight_named(bn, "moving_variance");
        const array_t<T>* gamma = weight_named(bn, "gamma");
        const array_t<T>* beta = weight_named(bn, "beta");
        if (!mean || !var)
            throw RuntimeError("fold_batch_norm: BatchNormalization '" + bn.name() + "' has no moving statistics");
        const auto src_w = src->second->get_weights(); // kernel (depthwise kernel), [bias]
        array_t<T> kernel = src_w.at(0);
        const std::size_t C = mean->size();
        array_t<T> bias = src_w.size() > 1 ? src_w[1] : array_t<T>(xt::zeros<T>({ C }));
        std::vector<double> s(C);
        for (std::size_t o = 0; o < C; ++o) {
            s[o] = (gamma ? double(gamma->data()[o]) : 1.0) / std::sqrt(double(var->data()[o]) + eps);
            bias.data()[o] = T((double(bias.data()[o]) - double(mean->data()[o])) * s[o] +
                               (beta ? double(beta->data()[o]) : 0.0));
        }
        // The output channel of a kernel element is its flat index modulo C (Dense and Conv:
        // the last axis; depthwise: the last two, in_channel * multiplier + j).
        for (std::size_t i = 0; i < kernel.size(); ++i)
            kernel.data()[i] = T(double(kernel.data()[i]) * s[i % C]);
        l->set_weights({ kernel, bias });
    }
    return result;
}

template std::shared_ptr<Model<float>> fold_batch_norm<float>(const Model<float>&, std::vector<std::string>*);
template std::shared_ptr<Model<double>> fold_batch_norm<double>(const Model<double>&, std::vector<std::string>*);

} // namespace xtape
