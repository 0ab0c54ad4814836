#include "saving/keras_model_config.hpp"

#include <string>
#include <vector>

namespace xtape::keras_h5 {

namespace {

/// A reference to a layer's output inside a graph: Keras's (layer name, node index, tensor index).
struct TensorRef {
    std::string layer;
    long node_index = 0;
    long tensor_index = 0;
};

bool is_model_class(const std::string& class_name)
{
    return class_name == "Sequential" || class_name == "Model" || class_name == "Functional";
}

/// Every Keras 3 "__keras_tensor__" inside `j` (a node's args or kwargs), in order.
void collect_keras3_tensors(const json& j, std::vector<TensorRef>& out)
{
    if (j.is_object()) {
        auto cn = j.find("class_name");
        if (cn != j.end() && cn->is_string() && cn->get<std::string>() == "__keras_tensor__") {
            const json& cfg = j.at("config");
            const json& h = cfg.at("keras_history");
            out.push_back(TensorRef{ h.at(0).get<std::string>(), h.at(1).get<long>(), h.at(2).get<long>() });
            return;
        }
        for (const auto& item : j.items())
            collect_keras3_tensors(item.value(), out);
    } else if (j.is_array()) {
        for (const auto& e : j)
            collect_keras3_tensors(e, out);
    }
}

void convert_input_layer_config(json& config)
{
    auto bs = config.find("batch_shape");
    if (bs != config.end()) {
        if (!config.contains("batch_input_shape"))
            config["batch_input_shape"] = *bs;
        config.erase("batch_shape");
    }
    auto opt = config.find("optional");
    if (opt != config.end() && opt->is_boolean() && !opt->get<bool>())
        config.erase("optional");
}

void convert_layer_entry(json& layer)
{
    if (!layer.is_object())
        return;
    const std::string cn = layer.value("class_name", "");
    auto cfg = layer.find("config");
    if (cfg == layer.end())
        return;
    if (cn == "InputLayer" && cfg->is_object())
        convert_input_layer_config(*cfg);
    else if (is_model_class(cn))
        layer = [&] {
            json converted = to_tf_keras_model_config(layer);
            // keep the functional entry's own keys (name, inbound_nodes) beside the converted config
            for (const auto& kv : layer.items())
                if (!converted.contains(kv.key()))
                    converted[kv.key()] = kv.value();
            return converted;
        }();
    auto nodes = layer.find("inbound_nodes");
    if (nodes == layer.end() || !nodes->is_array())
        return;
    json converted = json::array();
    for (const auto& node : *nodes) {
        if (!node.is_object()) {
            converted.push_back(node); // already tf.keras's list form
            continue;
        }
        std::vector<TensorRef> refs;
        auto a = node.find("args");
        if (a != node.end())
            collect_keras3_tensors(*a, refs);
        // tf.keras 2 repeats the node's call arguments ({"training": false}) on every tensor.
        json kwargs = node.value("kwargs", json::object());
        if (!kwargs.is_object())
            kwargs = json::object();
        json list = json::array();
        for (const auto& r : refs)
            list.push_back(json::array({ r.layer, r.node_index, r.tensor_index, kwargs }));
        converted.push_back(list);
    }
    *nodes = converted;
}

} // namespace

json to_tf_keras_model_config(const json& model_config)
{
    json out = model_config;
    auto cfg = out.find("config");
    if (cfg == out.end())
        return out;
    json* layers = nullptr;
    if (cfg->is_array())
        layers = &*cfg;
    else if (cfg->is_object() && cfg->contains("layers") && (*cfg)["layers"].is_array())
        layers = &(*cfg)["layers"];
    if (layers)
        for (auto& l : *layers)
            convert_layer_entry(l);
    return out;
}

} // namespace xtape::keras_h5
