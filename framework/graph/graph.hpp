// Graph: the layers and nodes between a functional model's input and output tensors, in an
// order that runs them (Keras's keras.src.ops.function.map_graph), and their execution.
//
//   Graph<float> g(inputs, outputs);           // validates and orders the nodes once
//   auto ys = g.run(xs, masks, training);     // runs every node once, in depth order
//
// Construction (Keras's rules and messages):
//   - inputs: outputs of InputLayers (keras.Input), each listed once (ValueError otherwise);
//   - every node the outputs depend on must be computable from the inputs: a tensor whose
//     InputLayer is not among the inputs is "Graph disconnected" (ValueError naming the tensor
//     and the layer that consumes it); a cycle is a ValueError; inputs that feed no output are
//     kept (Keras keeps them for losses and metrics);
//   - layer names are unique within the model (ValueError "The name ... is used 2 times").
// Running: the values of a node's outputs sit in a slot table; consumers read them by
// reference (a Tensor is a shared handle), so running adds no copies of values.
#pragma once

#include "framework/graph/node.hpp"
#include "framework/layer.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtape {

template <class T>
/// The ordered nodes between a functional model's inputs and outputs, and their execution (see the top of this file).
class Graph {
public:
    /// Validates and orders the graph once; ValueError with Keras's messages (disconnected graph, cycle, repeated input or layer name).
    Graph(std::vector<KerasTensor<T>> inputs, std::vector<KerasTensor<T>> outputs);

    /// The graph's symbolic inputs, in the order given.
    const std::vector<KerasTensor<T>>& inputs() const { return m_inputs; }
    /// The graph's symbolic outputs, in the order given.
    const std::vector<KerasTensor<T>>& outputs() const { return m_outputs; }
    /// Every layer of the graph, InputLayers included, in Keras's order (decreasing depth, then
    /// first traversal): what Keras 3's model.layers lists.
    const std::vector<LayerPtr<T>>& all_layers() const { return m_layers; }
    /// The nodes that run, inputs' nodes excluded, in execution order.
    const std::vector<const Node<T>*>& nodes() const { return m_order; }
    /// True when `node` is one of the graph's nodes (InputLayers' nodes included).
    bool contains(const Node<T>* node) const;

    /// requires: one tensor per input (ValueError otherwise; the model checks shapes);
    ///           `masks` empty or one per input.
    /// ensures:  one tensor per output; a node's call argument training, when set, overrides
    ///           `training` for that node.
    std::vector<Tensor<T>> run(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                               bool training, std::vector<Tensor<T>>* output_masks = nullptr) const;
    /// The output shapes for other input shapes, through every layer's compute_output_shape_list;
    /// with `input_masks` (one per input) also the outputs' symbolic masks, through every layer's
    /// compute_mask_shapes (Note [Symbolic masks] in framework/layer.cpp).
    std::vector<dims_t> output_shapes(const std::vector<dims_t>& input_shapes,
                                      const std::vector<std::optional<dims_t>>* input_masks = nullptr,
                                      std::vector<std::optional<dims_t>>* output_masks = nullptr) const;

private:
    struct Step {
        Layer<T>* layer;
        const Node<T>* node;
        std::vector<std::size_t> in;  ///< slots read
        std::size_t out;              ///< first slot written (outputs are consecutive)
    };
    std::size_t slot_of(const KerasTensor<T>& t) const;

    std::vector<KerasTensor<T>> m_inputs, m_outputs;
    std::vector<LayerPtr<T>> m_layers;
    std::vector<const Node<T>*> m_order;
    std::vector<const Node<T>*> m_all_nodes; // m_order plus the InputLayers' nodes
    std::vector<std::pair<const Node<T>*, std::size_t>> m_first_slot; // node -> its first slot
    std::vector<Step> m_steps;
    std::vector<std::size_t> m_input_slots, m_output_slots;
    std::size_t m_slots = 0;
};

} // namespace xtape
