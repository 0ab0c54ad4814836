#include "framework/graph/functional.hpp"

#include <map>

namespace xtape {
namespace {

template <class T>
KerasTensor<T> chain(KerasTensor<T> x, const std::vector<LayerPtr<T>>& layers, const std::string& model)
{
    if (layers.empty())
        throw ValueError("Functional '" + model + "': a chain needs at least one layer");
    for (const auto& l : layers) {
        if (!l)
            throw ValueError("Functional '" + model + "': a layer is null");
        x = (*l)(x);
    }
    return x;
}

template <class T>
KerasTensor<T> input_of(const LayerPtr<T>& input)
{
    if (!input || input->class_name() != "InputLayer")
        throw ValueError("Functional: the input must be an InputLayer (keras.Input), got " +
                         (input ? "'" + input->name() + "' (" + input->class_name() + ")" : std::string("null")));
    return input->get_output_at(0);
}

json dims_json(const dims_t& d)
{
    json j = json::array();
    for (long v : d)
        j.push_back(v < 0 ? json() : json(v));
    return j;
}

} // namespace

template <class T>
Functional<T>::Functional(const KerasTensor<T>& input, const std::vector<LayerPtr<T>>& layers, std::string name)
    : Model<T>(input, chain(input, layers, name), std::move(name))
{
}

template <class T>
Functional<T>::Functional(const LayerPtr<T>& input, const std::vector<LayerPtr<T>>& layers, std::string name)
    : Functional(input_of(input), layers, std::move(name))
{
}

// ---- get_config ----------------------------------------------------------------------------------------

template <class T>
json functional_config(const Model<T>& model)
{
    const auto& g = *model.graph();
    // Keras's node reindexing: a layer's nodes are numbered among those of this model only.
    std::map<const Node<T>*, std::size_t> index;
    for (const auto& l : g.all_layers()) {
        std::size_t k = 0;
        for (const auto& n : l->inbound_nodes())
            if (g.contains(n.get()))
                index[n.get()] = k++;
    }
    auto ref = [&](const KerasTensor<T>& t) {
        return json::array({ t.layer()->name(), index.at(t.layer()->inbound_nodes()[t.node_index()].get()),
                             t.tensor_index() });
    };
    json layers = json::array();
    for (const auto& l : g.all_layers()) {
        json nodes = json::array();
        for (const auto& n : l->inbound_nodes()) {
            if (!g.contains(n.get()) || n->is_input())
                continue;
            json args = json::array();
            for (const auto& x : n->inputs)
                args.push_back(json{ { "class_name", "__keras_tensor__" },
                                     { "config",
                                       { { "shape", dims_json(x.shape()) },
                                         { "dtype", x.dtype() },
                                         { "keras_history", ref(x) } } } });
            json kwargs = json::object();
            if (n->args.training)
                kwargs["training"] = *n->args.training;
            // One input is passed as itself, several as one list argument (a merge's).
            nodes.push_back(json{ { "args", n->inputs.size() == 1 ? args : json::array({ args }) },
                                  { "kwargs", kwargs } });
        }
        const auto* m = dynamic_cast<const Model<T>*>(l.get());
        json entry{ { "module", m ? "keras.src.models.functional" : "keras.layers" },
                    { "class_name", l->class_name() },
                    { "config", l->get_config() },
                    { "registered_name", nullptr },
                    { "name", l->name() },
                    { "inbound_nodes", nodes } };
        if (m && l->class_name() == "Sequential")
            entry["module"] = "keras";
        layers.push_back(entry);
    }
    json c{ { "name", model.name() }, { "trainable", model.trainable() }, { "layers", layers } };
    json ins = json::array(), outs = json::array();
    for (const auto& x : g.inputs())
        ins.push_back(ref(x));
    for (const auto& y : g.outputs())
        outs.push_back(ref(y));
    c["input_layers"] = ins;
    c["output_layers"] = outs;
    return c;
}

// ---- from_config ----------------------------------------------------------------------------------------

namespace {

struct TensorRef {
    std::string layer;
    std::size_t node = 0, tensor = 0;
};

bool is_history_list(const json& j)
{
    return j.is_array() && j.size() >= 3 && j.size() <= 4 && j[0].is_string() && j[1].is_number_integer() &&
           j[2].is_number_integer();
}

TensorRef history_ref(const json& j, const std::string& layer)
{
    if (j[1].get<long>() < 0 || j[2].get<long>() < 0)
        throw ValueError("Functional.from_config: layer '" + layer + "' reads a negative node or tensor index: " +
                         j.dump());
    return TensorRef{ j[0].get<std::string>(), j[1].get<std::size_t>(), j[2].get<std::size_t>() };
}

/// One inbound node of the config: the tensors it reads, whether they were passed as a list,
/// and its call arguments.
struct NodeData {
    std::vector<TensorRef> inputs;
    CallArgs args;
};

/// Call arguments xtape knows; anything else is an error rather than silently dropped.
void read_kwargs(const json& kwargs, CallArgs& args, const std::string& layer)
{
    if (kwargs.is_null())
        return;
    if (!kwargs.is_object())
        throw ValueError("Functional.from_config: layer '" + layer + "': call arguments must be a dict, got " +
                         kwargs.dump());
    for (const auto& kv : kwargs.items()) {
        if (kv.key() == "training") {
            if (kv.value().is_null())
                continue;
            if (!kv.value().is_boolean())
                throw ValueError("Functional.from_config: layer '" + layer + "': training must be true, false or "
                                 "null, got " + kv.value().dump());
            args.training = kv.value().get<bool>();
        } else if (kv.key() == "mask" && kv.value().is_null()) {
            // Keras 3 writes mask=None for layers that take a mask: nothing to pass.
        } else {
            throw NotImplementedError("Functional.from_config: layer '" + layer + "' is called with the argument '" +
                                      kv.key() + "' = " + kv.value().dump() +
                                      "; xtape knows only 'training' (and a null 'mask')");
        }
    }
}

void collect_keras3(const json& j, std::vector<TensorRef>& out, const std::string& layer)
{
    if (j.is_object() && j.value("class_name", "") == "__keras_tensor__") {
        const json& h = j.at("config").at("keras_history");
        if (!is_history_list(h))
            throw ValueError("Functional.from_config: layer '" + layer + "': bad keras_history " + h.dump());
        out.push_back(history_ref(h, layer));
    } else if (j.is_array()) {
        for (const auto& e : j)
            collect_keras3(e, out, layer);
    } else {
        throw ValueError("Functional.from_config: layer '" + layer + "': cannot read the call argument " + j.dump());
    }
}

NodeData read_node(const json& node, const std::string& layer)
{
    NodeData d;
    if (node.is_object()) { // Keras 3
        collect_keras3(node.value("args", json::array()), d.inputs, layer);
        read_kwargs(node.value("kwargs", json::object()), d.args, layer);
    } else if (node.is_array()) { // Keras 1/2: [[name, node, tensor, kwargs], ...]
        for (const auto& t : node) {
            if (!is_history_list(t))
                throw ValueError("Functional.from_config: layer '" + layer + "': cannot read inbound tensor " +
                                 t.dump());
            d.inputs.push_back(history_ref(t, layer));
            if (t.size() == 4)
                read_kwargs(t[3], d.args, layer);
        }
    } else {
        throw ValueError("Functional.from_config: layer '" + layer + "': cannot read inbound node " + node.dump());
    }
    if (d.inputs.empty())
        throw ValueError("Functional.from_config: layer '" + layer + "': an inbound node reads no tensor");
    return d;
}

std::vector<TensorRef> endpoints(const json& config, const char* key)
{
    auto it = config.find(key);
    if (it == config.end() || !it->is_array())
        throw ValueError(std::string("Functional.from_config: a functional model needs a list '") + key + "'");
    std::vector<TensorRef> refs;
    if (is_history_list(*it))
        return { history_ref(*it, key) };
    for (const auto& e : *it) {
        if (!is_history_list(e))
            throw ValueError(std::string("Functional.from_config: cannot read an entry of '") + key + "': " + e.dump());
        refs.push_back(history_ref(e, key));
    }
    return refs;
}

} // namespace

template <class T>
std::shared_ptr<Functional<T>> Functional<T>::from_config(const json& config, const LayerSpecFactory<T>& make_layer)
{
    if (!config.is_object() || !config.contains("layers") || !config["layers"].is_array())
        throw ValueError("Functional.from_config: expected a config with a 'layers' list, got " +
                         config.dump().substr(0, 200));
    std::vector<std::string> order;
    std::map<std::string, LayerPtr<T>> created;
    std::map<std::string, std::vector<NodeData>> pending;
    for (const auto& spec : config["layers"]) {
        if (!spec.is_object())
            throw ValueError("Functional.from_config: a layer entry is not an object: " + spec.dump().substr(0, 200));
        std::string name = spec.value("name", "");
        if (name.empty() && spec.contains("config") && spec["config"].is_object())
            name = config_string(spec["config"], "name", "");
        if (name.empty())
            throw ValueError("Functional.from_config: a layer entry has no name: " + spec.dump().substr(0, 200));
        if (created.count(name))
            throw ValueError("Functional.from_config: two layers are named '" + name + "'");
        LayerPtr<T> layer = layer_from_spec<T>(spec, make_layer);
        if (layer->name() != name)
            throw ValueError("Functional.from_config: the layer entry '" + name + "' made a layer named '" +
                             layer->name() + "'");
        created[name] = layer;
        order.push_back(name);
        std::vector<NodeData> nodes;
        for (const auto& n : spec.value("inbound_nodes", json::array()))
            nodes.push_back(read_node(n, name));
        if (!nodes.empty())
            pending[name] = std::move(nodes);
    }

    auto tensor_of = [&](const TensorRef& r, const std::string& reader) -> std::optional<KerasTensor<T>> {
        auto it = created.find(r.layer);
        if (it == created.end())
            throw ValueError("Functional.from_config: layer '" + reader + "' reads layer '" + r.layer +
                             "', which the config does not define");
        const auto& l = it->second;
        if (r.node >= l->inbound_nodes().size())
            return std::nullopt; // not made yet
        if (r.tensor >= l->inbound_nodes()[r.node]->output_shapes.size())
            throw ValueError("Functional.from_config: layer '" + reader + "' reads output " +
                             std::to_string(r.tensor) + " of node " + std::to_string(r.node) + " of layer '" +
                             r.layer + "', which has " +
                             std::to_string(l->inbound_nodes()[r.node]->output_shapes.size()) + " outputs");
        return l->get_outputs_at(r.node)[r.tensor];
    };

    // Keras's loop: in layer order, each layer's nodes in order, until a node reads a node that
    // does not exist yet; repeat while something was made.
    while (!pending.empty()) {
        bool progress = false;
        for (const auto& name : order) {
            auto it = pending.find(name);
            if (it == pending.end())
                continue;
            auto& nodes = it->second;
            std::size_t done = 0;
            for (; done < nodes.size(); ++done) {
                std::vector<KerasTensor<T>> ins;
                bool ready = true;
                for (const auto& r : nodes[done].inputs) {
                    auto t = tensor_of(r, name);
                    if (!t) {
                        ready = false;
                        break;
                    }
                    ins.push_back(*t);
                }
                if (!ready)
                    break;
                created[name]->call_symbolic(ins, nodes[done].args);
            }
            if (done) {
                progress = true;
                nodes.erase(nodes.begin(), nodes.begin() + static_cast<long>(done));
            }
            if (nodes.empty())
                pending.erase(it);
        }
        if (!progress) {
            const auto& [name, nodes] = *pending.begin();
            std::string what;
            for (const auto& r : nodes.front().inputs)
                what += (what.empty() ? "" : ", ") + r.layer + "[" + std::to_string(r.node) + "][" +
                        std::to_string(r.tensor) + "]";
            throw ValueError("Functional.from_config: the node of layer '" + name + "' that reads " + what +
                             " can never be made (a missing node or a cycle)");
        }
    }

    std::vector<KerasTensor<T>> ins, outs;
    for (const auto& r : endpoints(config, "input_layers")) {
        auto t = tensor_of(r, "input_layers");
        if (!t)
            throw ValueError("Functional.from_config: input_layers names node " + std::to_string(r.node) +
                             " of layer '" + r.layer + "', which does not exist");
        ins.push_back(*t);
    }
    for (const auto& r : endpoints(config, "output_layers")) {
        auto t = tensor_of(r, "output_layers");
        if (!t)
            throw ValueError("Functional.from_config: output_layers names node " + std::to_string(r.node) +
                             " of layer '" + r.layer + "', which does not exist");
        outs.push_back(*t);
    }
    return std::make_shared<Functional<T>>(ins, outs, config_string(config, "name", ""),
                                           config_bool(config, "trainable", true));
}

template class Functional<float>;
template class Functional<double>;
template json functional_config<float>(const Model<float>&);
template json functional_config<double>(const Model<double>&);

} // namespace xtape
