#include "saving/keras_model_config.hpp"

#include "layers/layer_config.hpp"

#include <map>
#include <set>

namespace xtape::keras_h5 {

namespace {

/// A reference to a layer's output inside a graph: Keras's (layer name, node index, tensor index).
struct TensorRef {
    std::string layer;
    long node_index = 0;
    long tensor_index = 0;
};

[[noreturn]] void malformed(const std::string& source, const std::string& what)
{
    throw ValueError(source + ": malformed model_config: " + what);
}

bool is_model_class(const std::string& class_name)
{
    return class_name == "Sequential" || class_name == "Model" || class_name == "Functional";
}

/// ["name", node, tensor] or ["name", node, tensor, kwargs] (Keras 1 and 2).
bool is_history_list(const json& j)
{
    return j.is_array() && j.size() >= 3 && j.size() <= 4 && j[0].is_string() && j[1].is_number_integer() &&
           j[2].is_number_integer();
}

TensorRef history_ref(const json& j)
{
    return TensorRef{ j[0].get<std::string>(), j[1].get<long>(), j[2].get<long>() };
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

/// The tensors one inbound node consumes, in Keras 1/2 list form or Keras 3 dict form.
std::vector<TensorRef> node_inputs(const json& node, const std::string& source, const std::string& layer)
{
    std::vector<TensorRef> refs;
    if (node.is_array()) {
        for (const auto& t : node) {
            if (!is_history_list(t))
                malformed(source, "layer '" + layer + "': cannot read inbound tensor " + t.dump());
            refs.push_back(history_ref(t));
        }
    } else if (node.is_object()) {
        auto a = node.find("args");
        if (a != node.end())
            collect_keras3_tensors(*a, refs);
        auto k = node.find("kwargs");
        if (k != node.end())
            collect_keras3_tensors(*k, refs);
    } else {
        malformed(source, "layer '" + layer + "': cannot read inbound node " + node.dump());
    }
    return refs;
}

/// input_layers / output_layers: [["input_1", 0, 0], ...], or Keras 3's single ["input_1", 0, 0].
std::vector<TensorRef> endpoint_list(const json& config, const char* key, const std::string& source)
{
    auto it = config.find(key);
    if (it == config.end() || !it->is_array())
        malformed(source, std::string("a functional model needs a list '") + key + "'");
    if (is_history_list(*it))
        return { history_ref(*it) };
    std::vector<TensorRef> refs;
    for (const auto& e : *it) {
        if (!is_history_list(e))
            malformed(source, std::string("cannot read an entry of '") + key + "': " + e.dump());
        refs.push_back(history_ref(e));
    }
    return refs;
}

std::string layer_class(const json& layer, const std::string& source)
{
    auto it = layer.find("class_name");
    if (it == layer.end() || !it->is_string())
        malformed(source, "a layer without a class_name: " + layer.dump().substr(0, 200));
    return it->get<std::string>();
}

json layer_config(const json& layer)
{
    auto it = layer.find("config");
    return (it != layer.end() && it->is_object()) ? *it : json::object();
}

[[noreturn]] void nested_model(const std::string& source, const std::string& class_name, const std::string& name)
{
    throw NotImplementedError(source + ": layer '" + name + "' is a nested " + class_name +
                              " model; nested models are not supported yet");
}

ModelSpec parse_sequential(const json& cfg, const std::string& source)
{
    ModelSpec spec;
    spec.class_name = "Sequential";
    const json* layers = nullptr;
    if (cfg.is_array()) {
        layers = &cfg; // Keras 1 and 2.0-2.1: the config is the layer list itself
    } else if (cfg.is_object()) {
        spec.name = config_string(cfg, "name", "");
        auto it = cfg.find("layers");
        if (it == cfg.end() || !it->is_array())
            malformed(source, "a Sequential config needs a list 'layers'");
        layers = &*it;
    } else {
        malformed(source, "a Sequential config must be a list of layers or an object with 'layers'");
    }

    for (const auto& l : *layers) {
        if (!l.is_object())
            malformed(source, "a layer entry is not an object: " + l.dump().substr(0, 200));
        const std::string cn = layer_class(l, source);
        json c = layer_config(l);
        const std::string name = config_string(c, "name", "");
        if (cn == "InputLayer") {
            if (!spec.layers.empty() || !spec.input_name.empty())
                malformed(source, "InputLayer '" + name + "' is not the first layer of the Sequential model");
            spec.input_name = name;
            spec.input_shape = batch_input_shape_from_config(c);
            continue;
        }
        if (is_model_class(cn))
            nested_model(source, cn, name);
        if (spec.layers.empty() && !spec.input_shape)
            spec.input_shape = batch_input_shape_from_config(c);
        spec.layers.push_back(LayerSpec{ cn, name, std::move(c) });
    }
    if (!spec.input_shape && cfg.is_object()) {
        auto b = cfg.find("build_input_shape");
        if (b != cfg.end() && !b->is_null())
            spec.input_shape = dims_from_json(*b, "build_input_shape");
    }
    return spec;
}

ModelSpec parse_functional(const std::string& class_name, const json& cfg, const std::string& source)
{
    ModelSpec spec;
    spec.class_name = class_name;
    spec.functional = true;
    if (!cfg.is_object())
        malformed(source, "a " + class_name + " config must be an object");
    spec.name = config_string(cfg, "name", "");
    auto lit = cfg.find("layers");
    if (lit == cfg.end() || !lit->is_array())
        malformed(source, "a " + class_name + " config needs a list 'layers'");

    struct Entry {
        std::string class_name;
        json config;
        std::vector<TensorRef> inputs; // of its single inbound node
    };
    std::map<std::string, Entry> by_name;
    std::vector<std::string> order;
    // Pass 1, in model order so the first offending layer is the one reported.
    for (const auto& l : *lit) {
        if (!l.is_object())
            malformed(source, "a layer entry is not an object: " + l.dump().substr(0, 200));
        const std::string cn = layer_class(l, source);
        json c = layer_config(l);
        std::string name = config_string(l, "name", config_string(c, "name", ""));
        if (name.empty())
            malformed(source, "a " + cn + " layer without a name");
        if (is_model_class(cn))
            nested_model(source, cn, name);
        Entry e{ cn, std::move(c), {} };
        auto nodes = l.find("inbound_nodes");
        const std::size_t n_nodes = (nodes != l.end() && nodes->is_array()) ? nodes->size() : 0;
        if (cn != "InputLayer") {
            if (n_nodes == 0)
                throw NotImplementedError(source + ": layer '" + name + "' (" + cn +
                                          ") is not connected to the graph; only chains of layers are "
                                          "supported yet");
            if (n_nodes > 1)
                throw NotImplementedError(source + ": layer '" + name + "' (" + cn + ") is called " +
                                          std::to_string(n_nodes) +
                                          " times (a shared layer); shared layers are not supported yet");
            e.inputs = node_inputs((*nodes)[0], source, name);
            if (e.inputs.size() != 1) {
                std::string from;
                for (const auto& r : e.inputs)
                    from += (from.empty() ? "" : ", ") + r.layer;
                throw NotImplementedError(source + ": layer '" + name + "' (" + cn + ") combines " +
                                          std::to_string(e.inputs.size()) + " inputs (" + from +
                                          "); Functional graphs with merges are not supported yet, "
                                          "only chains of single-input layers");
            }
            if (e.inputs[0].node_index != 0 || e.inputs[0].tensor_index != 0)
                throw NotImplementedError(source + ": layer '" + name + "' (" + cn + ") takes output " +
                                          std::to_string(e.inputs[0].tensor_index) + " of node " +
                                          std::to_string(e.inputs[0].node_index) + " of layer '" +
                                          e.inputs[0].layer + "'; only chains of single-output layers are "
                                          "supported yet");
        }
        if (!by_name.emplace(name, std::move(e)).second)
            malformed(source, "two layers are named '" + name + "'");
        order.push_back(name);
    }

    const auto inputs = endpoint_list(cfg, "input_layers", source);
    const auto outputs = endpoint_list(cfg, "output_layers", source);
    if (inputs.size() != 1 || outputs.size() != 1)
        throw NotImplementedError(source + ": the model has " + std::to_string(inputs.size()) + " inputs and " +
                                  std::to_string(outputs.size()) +
                                  " outputs; only single-input, single-output models are supported yet");
    const std::string input = inputs[0].layer;
    auto in_it = by_name.find(input);
    if (in_it == by_name.end())
        malformed(source, "input layer '" + input + "' is not among the layers");
    if (in_it->second.class_name != "InputLayer")
        malformed(source, "input layer '" + input + "' is a " + in_it->second.class_name + ", not an InputLayer");
    spec.input_name = input;
    spec.input_shape = batch_input_shape_from_config(in_it->second.config);

    // Walk back from the output to the input; every step has exactly one predecessor.
    std::vector<std::string> chain;
    std::set<std::string> visited;
    std::string cur = outputs[0].layer;
    while (cur != input) {
        auto it = by_name.find(cur);
        if (it == by_name.end())
            malformed(source, "layer '" + cur + "' is referenced but not defined");
        if (!visited.insert(cur).second)
            malformed(source, "the graph has a cycle through layer '" + cur + "'");
        chain.push_back(cur);
        cur = it->second.inputs.at(0).layer;
    }
    for (const auto& name : order) {
        if (name != input && !visited.count(name))
            throw NotImplementedError(source + ": layer '" + name + "' (" + by_name[name].class_name +
                                      ") is not on the path from input '" + input + "' to output '" +
                                      outputs[0].layer + "'; branching graphs are not supported yet");
    }
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        Entry& e = by_name[*it];
        spec.layers.push_back(LayerSpec{ e.class_name, *it, std::move(e.config) });
    }
    return spec;
}

} // namespace

ModelSpec parse_model_config(const json& model_config, const std::string& source)
{
    if (!model_config.is_object())
        malformed(source, "expected a JSON object with 'class_name' and 'config'");
    const std::string cn = layer_class(model_config, source);
    auto c = model_config.find("config");
    if (c == model_config.end())
        malformed(source, "the model has no 'config'");
    try {
        if (cn == "Sequential")
            return parse_sequential(*c, source);
        if (cn == "Model" || cn == "Functional")
            return parse_functional(cn, *c, source);
    } catch (const json::exception& e) {
        // A value of an unexpected JSON type deep inside (e.g. a keras_history that is not a list).
        malformed(source, e.what());
    }
    throw NotImplementedError(source + ": cannot build a model of class '" + cn +
                              "'; supported: Sequential, Model, Functional");
}

ModelSpec parse_model_config(const std::string& json_text, const std::string& source)
{
    json j;
    try {
        j = json::parse(json_text);
    } catch (const json::parse_error& e) {
        throw ValueError(source + ": model_config is not valid JSON: " + e.what());
    }
    return parse_model_config(j, source);
}

namespace {

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
