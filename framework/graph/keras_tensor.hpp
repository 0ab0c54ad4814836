// KerasTensor: a symbolic tensor, what keras.Input and a layer called on symbolic tensors return.
//
//   KerasTensor<float> x = Input<float>({ 784 }, "pixels");     // shape (None, 784)
//   KerasTensor<float> h = (*dense)(x);                          // records a Node on dense
//   Functional<float> model(x, h);                               // the graph between them
//
// It holds no values: only its shape (batch dimension included, none_dim for None) and its
// Keras history, the layer that made it, which of that layer's calls (node index) and which of
// that call's outputs (tensor index). The handle keeps the layer (and through its nodes the whole
// graph upstream) alive; layers keep only weak references downstream, so a graph has no cycles
// of owning pointers.
#pragma once

#include "framework/tensor.hpp"

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtape {

/// A Keras shape: dimensions with -1 for None (the batch dimension is usually None).
using dims_t = std::vector<long>;
/// The value of a None dimension in dims_t.
inline constexpr long none_dim = -1;

template <class T>
class Layer;

/// The arguments of one layer call besides its tensors. A Node keeps them: a layer called with
/// training=false inside a graph stays in inference mode whatever the model's call says
/// (tf.keras 2's rule; Note [Call arguments of a node] in framework/graph/functional.cpp).
struct CallArgs {
    /// Unset: the training flag of the enclosing call (false at the top level).
    std::optional<bool> training;
};

template <class T>
/// A symbolic tensor: its shape and Keras history (layer, node index, tensor index), no values (see the top of this file).
class KerasTensor {
public:
    /// An undefined tensor (defined() is false).
    KerasTensor() = default;
    /// Output `tensor_index` of call `node_index` of `layer`, of `shape` (made by Layer's symbolic call).
    KerasTensor(std::shared_ptr<Layer<T>> layer, std::size_t node_index, std::size_t tensor_index, dims_t shape)
        : m_layer(std::move(layer))
        , m_node_index(node_index)
        , m_tensor_index(tensor_index)
        , m_shape(std::move(shape))
    {
    }

    /// Whether the tensor was made by a layer call (false for a default-constructed one).
    bool defined() const { return static_cast<bool>(m_layer); }
    /// The shape, batch dimension included, none_dim for None.
    const dims_t& shape() const { return m_shape; }
    /// The number of dimensions, batch included.
    std::size_t rank() const { return m_shape.size(); }
    /// Keras's dtype name of T: "float32" or "float64".
    const char* dtype() const { return dtype_name<T>(); }
    /// Keras's keras_history: (layer, node_index, tensor_index).
    const std::shared_ptr<Layer<T>>& layer() const { return m_layer; }
    /// Which call of layer() made the tensor (an index into its inbound_nodes()).
    std::size_t node_index() const { return m_node_index; }
    /// Which output of that call the tensor is.
    std::size_t tensor_index() const { return m_tensor_index; }
    /// "<layer>:<node>:<tensor>", how errors name a tensor.
    std::string name() const;
    /// Keras's `_keras_mask`: the shape of the mask this tensor carries (None dimensions as
    /// none_dim), or nullopt when it carries none. Kept in the node that made the tensor.
    std::optional<dims_t> keras_mask() const;
    /// The same tensor: same layer, node and output position.
    bool same_as(const KerasTensor& o) const
    {
        return m_layer == o.m_layer && m_node_index == o.m_node_index && m_tensor_index == o.m_tensor_index;
    }

    /// keras.Sequential([keras.Input(...), ...]): an Input tensor stands for its InputLayer in a
    /// layer list. requires: the tensor is an InputLayer's output (ValueError otherwise).
    operator std::shared_ptr<Layer<T>>() const;

private:
    std::shared_ptr<Layer<T>> m_layer;
    std::size_t m_node_index = 0;
    std::size_t m_tensor_index = 0;
    dims_t m_shape;
};

/// What a layer called on a list of symbolic tensors returns: every output, and, for the
/// usual single output, that tensor itself (keras.layers.Add()([a, b]) is one tensor).
template <class T>
class KerasTensors : public std::vector<KerasTensor<T>> {
public:
    using std::vector<KerasTensor<T>>::vector;
    /// Every output of a call, in order.
    KerasTensors(std::vector<KerasTensor<T>> v)
        : std::vector<KerasTensor<T>>(std::move(v))
    {
    }
    /// requires: exactly one tensor (ValueError otherwise).
    const KerasTensor<T>& single() const
    {
        if (this->size() != 1)
            throw ValueError("a layer call returned " + std::to_string(this->size()) +
                             " tensors where one was expected; index the list");
        return this->front();
    }
    /// The only tensor, so that a single-output call reads as one tensor (ValueError otherwise).
    operator KerasTensor<T>() const { return single(); }
    /// The only tensor's shape (ValueError when there are several).
    const dims_t& shape() const { return single().shape(); }
};

} // namespace xtape
