// Activation: applies a named activation function (Keras's keras.layers.Activation).
//
//   Activation<float> a("relu");          // name "activation", then "activation_1", ...
//
// Also the reader of activation identifiers that Dense shares: a name, null (linear), or a
// Keras 3 serialized function {"class_name": "function", "config": "relu", ...}.
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

/// The activation name in `spec`; null means "linear". Throws KeyError for a name that
/// xtape's activation() does not know, naming it.
std::string activation_from_config(const json& spec);

template<class T>
/// keras.layers.Activation: applies the named activation function to its input, keeping the shape.
class Activation : public Layer<T>
{
public:
    /// requires: a name activation() knows ("relu", "softmax", "linear", ...); KeyError otherwise.
    explicit Activation(const std::string& activation, const std::string& name = "", bool trainable = true);

    /// Keras 1, 2 and 3 configs: {"activation": ..., "name": ..., "trainable": ...}.
    static std::shared_ptr<Activation> from_config(const json& config);
    json get_config() const override;

    /// The activation's Keras name ("relu", "softmax", "linear", ...).
    const std::string& activation() const { return m_activation; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Any shape: the function is elementwise (or along the last axis for softmax).
    void check_input(const shape_t&) const override {}

private:
    std::string m_activation;
};

} // namespace xtape
