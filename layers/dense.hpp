// Dense: Keras's keras.layers.Dense, y = activation(x @ kernel + bias) over the last axis of an
// input of rank >= 2. Weights: kernel (input_dim, units), then bias (units,) when use_bias.
//
//   Dense<float> d(512, "relu");                      // name "dense", then "dense_1", ...
//   DenseOptions<float> o{ 10, "softmax" };
//   o.kernel_regularizer = get_regularizer<float>("l2");
//   Dense<float> out(o);
#pragma once

#include "framework/initializer.hpp"
#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

template<class T>
/// Keras's Dense arguments, with its defaults.
struct DenseOptions
{
    long units = 0;
    std::string activation = "linear";
    bool use_bias = true;
    InitializerPtr<T> kernel_initializer; ///< null: glorot_uniform
    InitializerPtr<T> bias_initializer;   ///< null: zeros
    RegularizerPtr<T> kernel_regularizer;
    RegularizerPtr<T> bias_regularizer;
    RegularizerPtr<T> activity_regularizer;
    ConstraintPtr<T> kernel_constraint;
    ConstraintPtr<T> bias_constraint;
    std::string name; ///< empty: "dense", "dense_1", ...
    bool trainable = true;
};

template<class T>
/// keras.layers.Dense: activation(x @ kernel + bias) over the last axis (see the top of this file).
class Dense : public Layer<T>
{
public:
    /// requires: units > 0 and a known activation name (ValueError / KeyError otherwise).
    explicit Dense(const DenseOptions<T>& options);
    /// Dense(units, activation, use_bias, name), the other arguments at Keras's defaults.
    explicit Dense(long units,
                   const std::string& activation = "linear",
                   bool use_bias = true,
                   const std::string& name = "");

    /// Keras 3 and 2 keys (units, kernel_initializer, use_bias, ...) and Keras 1's (output_dim,
    /// init, bias, W_regularizer, b_regularizer, W_constraint, b_constraint).
    static std::shared_ptr<Dense> from_config(const json& config);
    /// Keras 3's keys, initializers/regularizers/constraints in Keras 3's serialized form.
    json get_config() const override;
    /// The input shape with its last axis replaced by units.
    dims_t compute_output_shape(const dims_t& input_shape) const override;

    /// The number of output features.
    long units() const { return m_units; }
    /// The activation's Keras name ("linear", "relu", ...).
    const std::string& activation() const { return m_activation; }
    /// Whether the layer has a bias.
    bool use_bias() const { return m_use_bias; }
    /// requires: built (RuntimeError otherwise).
    const Variable<T>& kernel() const;
    /// requires: built and use_bias (RuntimeError otherwise).
    const Variable<T>& bias() const;

protected:
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Keras's InputSpec(min_ndim=2, axes={-1: input_dim}): any rank >= 2 with the built last axis.
    void check_input(const shape_t& x) const override;

private:
    long m_units;
    std::string m_activation;
    bool m_use_bias;
    InitializerPtr<T> m_kernel_initializer, m_bias_initializer;
    RegularizerPtr<T> m_kernel_regularizer, m_bias_regularizer;
    ConstraintPtr<T> m_kernel_constraint, m_bias_constraint;
    Variable<T> m_kernel, m_bias;
};

} // namespace xtape
