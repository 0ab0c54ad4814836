#include "framework/graph/graph.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace xtape {
namespace {

template <class T>
const Node<T>* node_of(const KerasTensor<T>& t)
{
    return t.layer()->inbound_nodes().at(t.node_index()).get();
}

/// Keras's repr of a symbolic tensor, for error messages.
template <class T>
std::string repr(const KerasTensor<T>& t)
{
    return "<KerasTensor shape=" + dims_str(t.shape()) + ", dtype=" + t.dtype() + ", name=" + t.name() + ">";
}

/// Keras's _build_map: depth-first from the outputs; nodes end up ordered inputs -> outputs.
template <class T>
struct MapBuilder {
    const std::vector<KerasTensor<T>>& inputs;
    std::set<const Node<T>*> finished, in_progress;
    std::vector<const Node<T>*> increasing; // nodes_in_decreasing_depth
    std::map<const Layer<T>*, std::size_t> layer_index;
    std::vector<LayerPtr<T>> layers_seen;

    void visit(const KerasTensor<T>& t)
    {
        const Node<T>* node = node_of(t);
        if (finished.count(node))
            return;
        if (in_progress.count(node))
            throw ValueError("Tensor " + repr(t) + " from operation '" + t.layer()->name() + "' is part of a cycle.");
        if (!layer_index.count(t.layer().get())) {
            layer_index[t.layer().get()] = layer_index.size();
            layers_seen.push_back(t.layer());
        }
        in_progress.insert(node);
        for (const auto& x : node->inputs)
            visit(x);
        finished.insert(node);
        in_progress.erase(node);
        increasing.push_back(node);
    }
};

} // namespace

template <class T>
Graph<T>::Graph(std::vector<KerasTensor<T>> inputs, std::vector<KerasTensor<T>> outputs)
    : m_inputs(std::move(inputs))
    , m_outputs(std::move(outputs))
{
    if (m_inputs.empty())
        throw ValueError("`inputs` argument cannot be empty.");
    if (m_outputs.empty())
        throw ValueError("`outputs` argument cannot be empty.");
    for (std::size_t i = 0; i < m_inputs.size(); ++i) {
        const auto& x = m_inputs[i];
        if (!x.defined())
            throw ValueError("All `inputs` values must be KerasTensors; input " + std::to_string(i) + " is undefined.");
        if (!node_of(x)->is_input())
            throw ValueError("Input tensors to a Functional must come from `keras.Input`. Received: " + repr(x) +
                             " (made by layer '" + x.layer()->name() + "', a " + x.layer()->class_name() + ")");
        for (std::size_t j = 0; j < i; ++j)
            if (m_inputs[j].same_as(x))
                throw ValueError("The list of inputs passed to the model contains the same input multiple times: " +
                                 repr(x));
    }
    for (std::size_t i = 0; i < m_outputs.size(); ++i)
        if (!m_outputs[i].defined())
            throw ValueError("All `outputs` values must be KerasTensors; output " + std::to_string(i) +
                             " is undefined.");

    MapBuilder<T> b{ m_inputs, {}, {}, {}, {}, {} };
    for (const auto& y : m_outputs)
        b.visit(y);

    // Depths: outputs' nodes 0, a node one more than the deepest of its consumers; a layer at
    // the depth of its deepest node (Keras's rule for shared layers).
    std::map<const Node<T>*, long> node_depth;
    std::map<const Layer<T>*, long> layer_depth;
    for (auto it = b.increasing.rbegin(); it != b.increasing.rend(); ++it) {
        const Node<T>* node = *it;
        long depth = node_depth.emplace(node, 0).first->second;
        depth = std::max(depth, layer_depth[node->layer]);
        layer_depth[node->layer] = depth;
        node_depth[node] = depth;
        for (const auto& x : node->inputs) {
            long& d = node_depth[node_of(x)];
            d = std::max(d, depth + 1);
        }
    }
    for (const auto& x : m_inputs) // inputs that feed no output stay in the model
        if (!layer_depth.count(x.layer().get())) {
            layer_depth[x.layer().get()] = 0;
            node_depth[node_of(x)] = 0;
            b.layer_index[x.layer().get()] = static_cast<std::size_t>(-1);
            b.layers_seen.push_back(x.layer());
            b.increasing.push_back(node_of(x));
        }

    // Layers by decreasing depth, then traversal order.
    m_layers = b.layers_seen;
    std::stable_sort(m_layers.begin(), m_layers.end(), [&](const LayerPtr<T>& a, const LayerPtr<T>& c) {
        const long da = layer_depth[a.get()], dc = layer_depth[c.get()];
        if (da != dc)
            return da > dc;
        // Keras sorts unused inputs (index -1) first within their depth.
        const auto ia = static_cast<long>(b.layer_index[a.get()]), ic = static_cast<long>(b.layer_index[c.get()]);
        return ia < ic;
    });

    // Nodes by decreasing depth (stable on the traversal order, which is topological).
    std::vector<const Node<T>*> nodes = b.increasing;
    std::stable_sort(nodes.begin(), nodes.end(),
                     [&](const Node<T>* a, const Node<T>* c) { return node_depth[a] > node_depth[c]; });

    // Every tensor a node reads must come from the inputs or an earlier node.
    std::set<std::pair<const Node<T>*, std::size_t>> computable;
    for (const auto& x : m_inputs)
        computable.insert({ node_of(x), x.tensor_index() });
    std::vector<std::string> complete;
    for (const Node<T>* node : nodes) {
        for (const auto& x : node->inputs)
            if (!computable.count({ node_of(x), x.tensor_index() })) {
                std::string done;
                for (const auto& n : complete)
                    done += (done.empty() ? "'" : ", '") + n + "'";
                throw ValueError("Graph disconnected: cannot find parent for tensor " + repr(x) + " at operation '" +
                                 node->layer->name() + "'. The following previous operations were accessed without "
                                 "issue: [" + done + "]");
            }
        if (!node->is_input())
            for (std::size_t k = 0; k < node->output_shapes.size(); ++k)
                computable.insert({ node, k });
        complete.push_back(node->layer->name());
    }
    for (const auto& y : m_outputs)
        if (!computable.count({ node_of(y), y.tensor_index() }))
            throw ValueError("Graph disconnected: cannot find parent for tensor " + repr(y) + " at operation '" +
                             y.layer()->name() + "': it is an input the model was not given");

    std::map<std::string, int> names;
    for (const auto& l : m_layers)
        ++names[l->name()];
    for (const auto& l : m_layers)
        if (names[l->name()] != 1)
            throw ValueError("The name \"" + l->name() + "\" is used " + std::to_string(names[l->name()]) +
                             " times in the model. All operation names should be unique.");

    // Slots: one per output of every node, in execution order.
    for (const Node<T>* node : nodes) {
        m_all_nodes.push_back(node);
        m_first_slot.push_back({ node, m_slots });
        m_slots += node->output_shapes.size();
        if (!node->is_input())
            m_order.push_back(node);
    }
    for (const Node<T>* node : m_order) {
        Step s{ node->layer, node, {}, 0 };
        for (const auto& [n, first] : m_first_slot)
            if (n == node)
                s.out = first;
        for (const auto& x : node->inputs)
            s.in.push_back(slot_of(x));
        m_steps.push_back(std::move(s));
    }
    for (const auto& x : m_inputs)
        m_input_slots.push_back(slot_of(x));
    for (const auto& y : m_outputs)
        m_output_slots.push_back(slot_of(y));
}

template <class T>
std::size_t Graph<T>::slot_of(const KerasTensor<T>& t) const
{
    const Node<T>* n = node_of(t);
    for (const auto& [node, first] : m_first_slot)
        if (node == n)
            return first + t.tensor_index();
    throw RuntimeError("Graph: tensor " + t.name() + " has no slot");
}

template <class T>
bool Graph<T>::contains(const Node<T>* node) const
{
    return std::find(m_all_nodes.begin(), m_all_nodes.end(), node) != m_all_nodes.end();
}

// Note [Call arguments of a node]
// A node's training argument, when set (bn(x, training=false) while building the graph), wins
// over the training flag of the model's call: tf.keras 2 does this and Keras's transfer-learning
// guide relies on it (a frozen BatchNormalization stays in inference mode while the model
// around it trains). Keras 3's Functional lets the outer call override it (keras-team/keras
// issue 20285); xtape keeps tf.keras's rule, listed in README's differences from Keras.

template <class T>
std::vector<Tensor<T>> Graph<T>::run(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                     bool training, std::vector<Tensor<T>>* output_masks) const
{
    if (inputs.size() != m_inputs.size())
        throw ValueError("The model expects " + std::to_string(m_inputs.size()) + " input(s), but it received " +
                         std::to_string(inputs.size()) + " input tensors.");
    std::vector<Tensor<T>> value(m_slots), mask(m_slots);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        value[m_input_slots[i]] = inputs[i];
        if (i < masks.size())
            mask[m_input_slots[i]] = masks[i];
    }
    std::vector<Tensor<T>> in, in_mask;
    for (const Step& s : m_steps) {
        in.clear();
        in_mask.clear();
        bool any_mask = false;
        for (std::size_t k : s.in) {
            in.push_back(value[k]);
            in_mask.push_back(mask[k]);
            any_mask = any_mask || mask[k].defined();
        }
        CallArgs args;
        args.training = s.node->args.training.value_or(training);
        std::vector<Tensor<T>> out = s.layer->call_tensors(in, any_mask ? in_mask : std::vector<Tensor<T>>(), args);
        if (out.size() != s.node->output_shapes.size())
            throw ValueError("layer \"" + s.layer->name() + "\" returned " + std::to_string(out.size()) +
                             " outputs where its node recorded " + std::to_string(s.node->output_shapes.size()));
        std::vector<Tensor<T>> out_mask = s.layer->output_masks(in, any_mask ? in_mask : std::vector<Tensor<T>>());
        for (std::size_t k = 0; k < out.size(); ++k) {
            value[s.out + k] = std::move(out[k]);
            if (k < out_mask.size())
                mask[s.out + k] = std::move(out_mask[k]);
        }
    }
    std::vector<Tensor<T>> ys;
    ys.reserve(m_output_slots.size());
    for (std::size_t k : m_output_slots)
        ys.push_back(value[k]);
    if (output_masks) {
        output_masks->clear();
        for (std::size_t k : m_output_slots)
            output_masks->push_back(mask[k]);
    }
    return ys;
}

template <class T>
std::vector<dims_t> Graph<T>::output_shapes(const std::vector<dims_t>& input_shapes,
                                            const std::vector<std::optional<dims_t>>* input_masks,
                                            std::vector<std::optional<dims_t>>* output_masks) const
{
    if (input_shapes.size() != m_inputs.size())
        throw ValueError("The model expects " + std::to_string(m_inputs.size()) + " input shape(s), got " +
                         std::to_string(input_shapes.size()));
    std::vector<dims_t> shape(m_slots);
    std::vector<std::optional<dims_t>> mask(m_slots);
    for (std::size_t i = 0; i < input_shapes.size(); ++i) {
        shape[m_input_slots[i]] = input_shapes[i];
        if (input_masks && i < input_masks->size())
            mask[m_input_slots[i]] = (*input_masks)[i];
    }
    for (const Step& s : m_steps) {
        std::vector<dims_t> in;
        std::vector<std::optional<dims_t>> in_mask;
        for (std::size_t k : s.in) {
            in.push_back(shape[k]);
            in_mask.push_back(mask[k]);
        }
        std::vector<dims_t> out = s.layer->compute_output_shape_list(in);
        std::vector<std::optional<dims_t>> out_mask;
        if (output_masks)
            out_mask = s.layer->compute_mask_shapes(in, in_mask, out);
        for (std::size_t k = 0; k < out.size(); ++k) {
            shape[s.out + k] = out[k];
            if (k < out_mask.size())
                mask[s.out + k] = out_mask[k];
        }
    }
    std::vector<dims_t> ys;
    if (output_masks)
        output_masks->clear();
    for (std::size_t k : m_output_slots) {
        ys.push_back(shape[k]);
        if (output_masks)
            output_masks->push_back(mask[k]);
    }
    return ys;
}

template class Graph<float>;
template class Graph<double>;

} // namespace xtape
