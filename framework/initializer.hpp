// Initializers, regularizers and constraints: the small serializable objects that a layer
// attaches to its weights. Each is known by its Keras class name and config; get_*() accept
// every form Keras has written (a string name, {class_name, config} from Keras 2, and Keras 3's
// {module, class_name, config, registered_name}); serialize() writes Keras 3's form.
#pragma once

#include "framework/config.hpp"
#include "framework/tensor.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace xtape {

/// Makes a weight's first value (keras.initializers).
template <class T>
class Initializer {
public:
    virtual ~Initializer() = default;
    /// A new array of `shape`. Seeded initializers give the same values on every call, as in Keras 3.
    virtual array_t<T> operator()(const shape_t& shape) const = 0;
    /// Keras's class name ("GlorotUniform", "L2", "MaxNorm", ...).
    virtual std::string class_name() const = 0;
    /// Keras's config: the constructor arguments by name.
    virtual json get_config() const = 0;
};

/// A penalty on a weight added to the loss (keras.regularizers).
template <class T>
class Regularizer {
public:
    virtual ~Regularizer() = default;
    /// The penalty as a differentiable scalar (built from ops, so the tape sees it).
    virtual Tensor<T> operator()(const Tensor<T>& w) const = 0;
    /// Keras's class name ("GlorotUniform", "L2", "MaxNorm", ...).
    virtual std::string class_name() const = 0;
    /// Keras's config: the constructor arguments by name.
    virtual json get_config() const = 0;
};

/// A projection of a weight applied after each update (keras.constraints).
template <class T>
class Constraint {
public:
    virtual ~Constraint() = default;
    /// Projects the variable's value in place; called right after each optimizer update.
    virtual void apply(array_t<T>& w) const = 0;
    /// Keras's class name ("GlorotUniform", "L2", "MaxNorm", ...).
    virtual std::string class_name() const = 0;
    /// Keras's config: the constructor arguments by name.
    virtual json get_config() const = 0;
};

template <class T>
void Variable<T>::apply_constraint()
{
    if (constraint())
        constraint()->apply(mutable_value());
}

template <class T>
using InitializerPtr = std::shared_ptr<const Initializer<T>>;
template <class T>
using RegularizerPtr = std::shared_ptr<const Regularizer<T>>;
template <class T>
using ConstraintPtr = std::shared_ptr<const Constraint<T>>;

/// From a Keras spec (string or dict). Throws KeyError naming an unknown class.
template <class T> InitializerPtr<T> get_initializer(const json& spec);
/// Null spec -> nullptr. The string "l2" means L2(0.01), "l1" L1(0.01), "l1_l2" L1L2(0.01, 0.01).
template <class T> RegularizerPtr<T> get_regularizer(const json& spec);
/// Null spec -> nullptr.
template <class T> ConstraintPtr<T> get_constraint(const json& spec);

/// Keras 3's serialized form: {"module": ..., "class_name": ..., "config": ..., "registered_name": null};
/// null for a null pointer.
template <class T> json serialize(const InitializerPtr<T>& p);
template <class T> json serialize(const RegularizerPtr<T>& p);
template <class T> json serialize(const ConstraintPtr<T>& p);

} // namespace xtape
