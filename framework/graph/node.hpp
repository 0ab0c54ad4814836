// Node: one call of a layer on symbolic tensors (Keras's keras.src.ops.node.Node).
//
// A layer owns its inbound nodes (layer.inbound_nodes()[i] is its i-th call); each node records
// the tensors it consumed, the call arguments and the shapes of its outputs. An InputLayer has
// one node without inputs. The layers that produced a node's inputs list it among their
// outbound nodes (weakly: the consumer owns it).
#pragma once

#include "framework/graph/keras_tensor.hpp"

#include <optional>
#include <vector>

namespace xtape {

template <class T>
/// One call of a layer on symbolic tensors: its input tensors, call arguments and output shapes and masks.
struct Node {
    Layer<T>* layer = nullptr; ///< the layer called (it owns the node)
    std::size_t index = 0;     ///< position among the layer's inbound nodes
    std::vector<KerasTensor<T>> inputs;
    CallArgs args;
    std::vector<dims_t> output_shapes;
    /// The mask each output carries (its shape; nullopt for none): Note [Symbolic masks].
    std::vector<std::optional<dims_t>> output_masks;
    /// An InputLayer's node: no inputs, fed by the model's caller.
    bool is_input() const { return inputs.empty(); }
};

} // namespace xtape
