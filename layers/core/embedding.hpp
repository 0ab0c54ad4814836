// Embedding and Masking: Keras's keras.layers.Embedding and keras.layers.Masking, the two layers
// where masks start.
//
// Embedding maps integer indices (held in T, as xtape's tensors are) to rows of a trainable
// (input_dim, output_dim) table through the sparse op of framework/embedding.hpp. With
// mask_zero=true its output mask is indices != 0 (the input's shape), which the following layers
// receive (BatchNormalization weights its statistics by it, GlobalAveragePooling1D averages the
// unmasked steps); without it the layer makes no mask. Keras 1's (init, W_regularizer,
// W_constraint) and Keras 2's (input_length) keys load.
//
// Masking keeps a time step when any of its features differs from mask_value and zeroes the
// others: y = x * any(x != mask_value, axis=-1); its output mask is that any(...) (the input's shape
// without the last axis).
#pragma once

#include "framework/initializer.hpp"
#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

template <class T>
/// keras.layers.Embedding's arguments with Keras's defaults (input_dim and output_dim required).
struct EmbeddingOptions {
    long input_dim = 0;
    long output_dim = 0;
    InitializerPtr<T> embeddings_initializer; ///< null: "uniform" (RandomUniform(-0.05, 0.05))
    RegularizerPtr<T> embeddings_regularizer, activity_regularizer;
    ConstraintPtr<T> embeddings_constraint;
    bool mask_zero = false;
    std::string name;
    bool trainable = true;
};

template <class T>
/// keras.layers.Embedding: integer indices (held in T) -> rows of the (input_dim, output_dim) table; output shape input + (output_dim,).
class Embedding : public Layer<T> {
public:
    /// requires: input_dim > 0 and output_dim > 0 (Keras's ValueError otherwise).
    explicit Embedding(const EmbeddingOptions<T>& options);
    /// Builds the layer from a Keras 1, 2 or 3 config (Keras 1's init / W_regularizer / W_constraint too); ValueError for a missing or non-integer input_dim / output_dim, NotImplementedError for Keras 1's dropout.
    static std::shared_ptr<Embedding> from_config(const json& config);
    json get_config() const override;
    /// The indices' shape followed by output_dim.
    dims_t compute_output_shape(const dims_t& input_shape) const override;
    /// indices != 0 with mask_zero, else no mask.
    Tensor<T> compute_mask(const Tensor<T>& x, const Tensor<T>& mask) const override;
    /// The arguments the layer was constructed with.
    const EmbeddingOptions<T>& options() const { return m_options; }
    /// requires: built (RuntimeError otherwise).
    const Variable<T>& embeddings() const;

protected:
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Any shape of indices (Keras's Embedding takes every rank).
    void check_input(const shape_t&) const override {}

private:
    EmbeddingOptions<T> m_options;
    Variable<T> m_embeddings;
};

template <class T>
/// keras.layers.Masking: zeroes the time steps whose features all equal mask_value and masks them out.
class Masking : public Layer<T> {
public:
    /// Masking(mask_value = 0.0): steps whose every feature equals mask_value are masked.
    explicit Masking(double mask_value = 0.0, const std::string& name = "");
    /// Builds the layer from a Keras config; mask_value may be a number or Keras 3's serialized tensor.
    static std::shared_ptr<Masking> from_config(const json& config);
    json get_config() const override;
    /// any(x != mask_value, axis=-1): 1 for kept steps, shape x.shape[:-1]; the incoming mask is ignored.
    Tensor<T> compute_mask(const Tensor<T>& x, const Tensor<T>& mask) const override;
    /// The feature value that marks a padded step (default 0.0).
    double mask_value() const { return m_mask_value; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;

private:
    /// 1 where any feature of the step differs from mask_value, else 0; shape x.shape[:-1].
    array_t<T> keep(const Tensor<T>& x) const;
    double m_mask_value;
};

} // namespace xtape
