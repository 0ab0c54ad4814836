// Tensor: a shared handle to an xtensor array with an identity the tape can track.
// Variable: a named Tensor that is trainable state (or non-trainable state such as BN's
// moving statistics). Plain tensors and variables are different things: only variables have
// names and a trainable flag, and a tape watches trainable variables without being asked.
#pragma once

#include "framework/errors.hpp"

#include <xsimd/memory/xsimd_aligned_allocator.hpp>
#include <xtensor/xarray.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace xtape {

using shape_t = std::vector<std::size_t>;

// Note [Array alignment is part of the ABI]
// xtensor's default allocator aligns to XSIMD_DEFAULT_ALIGNMENT, which follows the instruction
// set the file is compiled for (16 bytes for SSE2, 32 for AVX, 64 for AVX-512), and the
// allocator is part of xt::xarray's type. With the default, a program compiled without
// -march=native could not link against an xtape built with it (undefined Model<float>::
// train_on_batch(xarray<..., aligned_allocator<float, 16>>) against the library's 64): the
// install_consumer test caught it. A fixed 64 bytes (a cache line, enough for every vector
// width) makes the type the same whatever the flags.
inline constexpr std::size_t array_alignment = 64;

template <class T>
using array_t = xt::xarray<T, xt::layout_type::row_major, xsimd::aligned_allocator<T, array_alignment>>;

/// Keras's name of the scalar type: "float32" or "float64".
template <class T>
inline const char* dtype_name();
template <>
inline const char* dtype_name<float>() { return "float32"; }
template <>
inline const char* dtype_name<double>() { return "float64"; }

/// Row-major shape of an array as a std::vector.
template <class A>
shape_t shape_of(const A& a)
{
    return shape_t(a.shape().begin(), a.shape().end());
}

/// The number of elements of an array of shape `s` (1 for a scalar).
inline std::size_t shape_size(const shape_t& s)
{
    std::size_t n = 1;
    for (auto d : s)
        n *= d;
    return n;
}

/// The storage behind a Tensor. Its address is the identity the tape records.
template <class T>
struct TensorNode {
    array_t<T> value;
    bool trainable_variable = false; ///< a tape watches these automatically
    /// Owns `v`.
    explicit TensorNode(array_t<T> v)
        : value(std::move(v))
    {
    }
};

/// A shared handle to an array whose identity the tape tracks: copies share the value, and an
/// op's output is a new node.
template <class T>
class Tensor {
public:
    using value_type = T;

    /// An empty (null) tensor; `defined()` is false.
    Tensor() = default;
    /// Takes the array; the tensor is a new node (copies of the handle share it).
    Tensor(array_t<T> value)
        : m_node(std::make_shared<TensorNode<T>>(std::move(value)))
    {
    }
    /// A new tensor of zeros.
    static Tensor zeros(const shape_t& shape) { return Tensor(array_t<T>(xt::zeros<T>(shape))); }
    /// A new tensor with every element `v`.
    static Tensor full(const shape_t& shape, T v)
    {
        array_t<T> a = array_t<T>::from_shape(shape);
        a.fill(v);
        return Tensor(std::move(a));
    }
    /// A new rank-0 tensor.
    static Tensor scalar(T v) { return full({}, v); }

    /// False for the empty tensor of the default constructor.
    bool defined() const { return static_cast<bool>(m_node); }
    /// The array (RuntimeError when undefined).
    const array_t<T>& value() const { return node_checked().value; }
    /// Writable access; changing a value that a live tape saved changes its backward.
    array_t<T>& mutable_value() { return node_checked().value; }
    /// The array's shape.
    shape_t shape() const { return shape_of(value()); }
    /// The array's rank.
    std::size_t dim() const { return value().dimension(); }
    /// The number of elements.
    std::size_t size() const { return value().size(); }
    /// The elements, row-major.
    const T* data() const { return value().data(); }
    /// The single element of a tensor of size 1.
    T item() const
    {
        if (size() != 1)
            throw ShapeError("Tensor.item: expected a tensor with one element, got shape " +
                             shape_str(shape()));
        return value().data()[0];
    }
    /// The node: the identity the tape records (null when undefined).
    TensorNode<T>* node() const { return m_node.get(); }
    /// The node, shared.
    const std::shared_ptr<TensorNode<T>>& node_ptr() const { return m_node; }

private:
    TensorNode<T>& node_checked() const
    {
        if (!m_node)
            throw RuntimeError("Tensor: use of an empty (undefined) tensor");
        return *m_node;
    }
    std::shared_ptr<TensorNode<T>> m_node;
};

template <class T>
class Regularizer;
template <class T>
class Constraint;

/// A named piece of model state. `trainable` variables receive gradients and optimizer
/// updates; non-trainable ones (moving statistics) change only by the layer that owns them.
/// Variable is a handle: copies share the name, flag and value.
template <class T>
class Variable {
public:
    /// An empty handle; `defined()` is false.
    Variable() = default;
    /// A new variable holding `value`.
    Variable(std::string name, array_t<T> value, bool trainable = true)
        : m_state(std::make_shared<State>(State{ Tensor<T>(std::move(value)), std::move(name), nullptr, nullptr }))
    {
        set_trainable(trainable);
    }
    /// False for the empty handle of the default constructor.
    bool defined() const { return static_cast<bool>(m_state); }
    /// The variable's name ("kernel", "moving_mean", ...).
    const std::string& name() const { return state().name; }
    /// Renames the variable (every copy of the handle sees it).
    void set_name(std::string n) { state().name = std::move(n); }
    /// Whether gradients and optimizer updates reach it.
    bool trainable() const { return state().tensor.node()->trainable_variable; }
    /// Sets trainable().
    void set_trainable(bool t) { state().tensor.node()->trainable_variable = t; }
    /// The tensor behind the variable (what ops take).
    const Tensor<T>& tensor() const { return state().tensor; }
    /// The variable as a tensor, so that ops take variables directly.
    operator const Tensor<T>&() const { return state().tensor; }
    /// The value.
    const array_t<T>& value() const { return state().tensor.value(); }
    /// The value's shape.
    shape_t shape() const { return state().tensor.shape(); }
    /// The number of elements.
    std::size_t size() const { return state().tensor.size(); }
    /// "float32" or "float64".
    const char* dtype() const { return dtype_name<T>(); }
    /// Replaces the value; the shape must stay the same.
    void assign(const array_t<T>& v)
    {
        if (shape_of(v) != shape())
            throw ShapeError("Variable '" + name() + "': cannot assign a value of shape " +
                             shape_str(shape_of(v)) + " to a variable of shape " + shape_str(shape()));
        std::copy(v.begin(), v.end(), mutable_value().begin());
    }
    /// In-place access for optimizers and layers that update state.
    array_t<T>& mutable_value() { return state().tensor.mutable_value(); }
    /// Whether both handles are the same variable.
    bool same_as(const Variable& o) const { return m_state == o.m_state; }

    /// Keras keeps these on the variable: the layer sums regularizer penalties into its
    /// losses, and the optimizer calls apply_constraint() right after updating the value.
    const std::shared_ptr<const Regularizer<T>>& regularizer() const { return state().regularizer; }
    /// Sets regularizer() (null: none).
    void set_regularizer(std::shared_ptr<const Regularizer<T>> r) { state().regularizer = std::move(r); }
    /// The constraint the optimizer applies after each update (null: none).
    const std::shared_ptr<const Constraint<T>>& constraint() const { return state().constraint; }
    /// Sets constraint() (null: none).
    void set_constraint(std::shared_ptr<const Constraint<T>> c) { state().constraint = std::move(c); }
    /// No-op without a constraint (defined in framework/initializer.hpp).
    void apply_constraint();

private:
    struct State {
        Tensor<T> tensor;
        std::string name;
        std::shared_ptr<const Regularizer<T>> regularizer;
        std::shared_ptr<const Constraint<T>> constraint;
    };
    State& state() const
    {
        if (!m_state)
            throw RuntimeError("Variable: use of an empty (undefined) variable");
        return *m_state;
    }
    std::shared_ptr<State> m_state;
};

} // namespace xtape
