// Layer: the Keras Layer contract in C++.
//
//   Dense<float> d(DenseOptions{...});      // name "dense", then "dense_1", ... (Keras's uids)
//   Tensor<float> y = d(x, /*training=*/true); // builds from x's shape on the first call
//
// Parameters and state are kept apart: add_weight(trainable=true) makes parameters that
// receive gradients; add_weight(trainable=false) makes state (moving statistics) that only
// the layer changes. weights() lists trainable weights first, then non-trainable ones, as
// Keras does; get_weights/set_weights use that order.
#pragma once

#include "framework/config.hpp"
#include "framework/errors.hpp"
#include "framework/initializer.hpp"
#include "framework/tensor.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

/// A Keras shape: dimensions with -1 for None (the batch dimension is usually None).
using dims_t = std::vector<long>;
inline constexpr long none_dim = -1;
/// "(None, 784)" as Keras prints shapes.
std::string dims_str(const dims_t& d);
/// The concrete shape of x as dims.
dims_t dims_of(const shape_t& s);

/// Keras's unique names: the first "dense", then "dense_1", "dense_2", ...
std::string unique_layer_name(const std::string& base);
/// Forgets the counters (keras.backend.clear_session()).
void reset_layer_names();
/// "BatchNormalization" -> "batch_normalization" (Keras's to_snake_case).
std::string to_snake_case(const std::string& class_name);

template <class T>
class Layer {
public:
    /// `class_name` is Keras's ("Dense"); an empty `name` gets a unique one from it.
    explicit Layer(std::string class_name, std::string name = "", bool trainable = true);
    virtual ~Layer() = default;
    Layer(const Layer&) = delete;
    Layer& operator=(const Layer&) = delete;

    const std::string& class_name() const { return m_class_name; }
    const std::string& name() const { return m_name; }

    // ---- building and calling ---------------------------------------------------------------
    bool built() const { return m_built; }
    /// Builds once for `input_shape` (batch dimension included, may be None).
    void build_once(const dims_t& input_shape);
    /// The input shape the layer was built for.
    const dims_t& build_input_shape() const { return m_build_shape; }

    /// Builds on first use, checks the input against the built shape (ShapeError naming the layer,
    /// the expected and the received shapes), runs call(), and adds the activity regularizer's loss.
    /// `mask` may be empty.
    Tensor<T> operator()(const Tensor<T>& x, bool training = false, const Tensor<T>& mask = Tensor<T>());

    virtual dims_t compute_output_shape(const dims_t& input_shape) const { return input_shape; }
    /// The mask of the output; by default the input mask passes through unchanged.
    virtual Tensor<T> compute_mask(const Tensor<T>& x, const Tensor<T>& mask) const
    {
        (void)x;
        return mask;
    }

    // ---- weights --------------------------------------------------------------------------
    // Virtual so that a model (a layer made of layers) aggregates its sublayers' weights.
    virtual std::vector<Variable<T>> weights() const;
    /// Empty while trainable() is false (Keras: a frozen layer has no trainable weights).
    virtual std::vector<Variable<T>> trainable_weights() const;
    virtual std::vector<Variable<T>> non_trainable_weights() const;
    std::vector<array_t<T>> get_weights() const;
    /// requires: one array per weight, in weights() order, each of that weight's shape
    ///           (ValueError/ShapeError naming the layer, the weight and both shapes otherwise).
    void set_weights(const std::vector<array_t<T>>& values);
    virtual std::size_t count_params() const;

    bool trainable() const { return m_trainable; }
    virtual void set_trainable(bool t) { m_trainable = t; }

    // ---- losses ---------------------------------------------------------------------------
    // Keras 3's rules (Note [Losses added during a call] in layer.cpp): the outermost call of a
    // layer or model clears the losses added to it and to all its sublayers, then the call adds
    // new ones (add_loss in call(), the activity regularizer after each call). A sublayer called
    // twice inside one outer call keeps both calls' losses. add_loss outside a call is allowed;
    // that loss counts in losses() until the next outermost call that covers the layer clears it
    // (so fit() never sees it: its forward pass clears it first).

    /// Keras's order: the losses added to this layer and to its sublayers (since the last
    /// outermost call), then the regularization penalties of the trainable weights (computed
    /// now, so a live tape records them).
    std::vector<Tensor<T>> losses() const;
    /// Adds a scalar (or, summed, a tensor) loss; meant for call().
    void add_loss(const Tensor<T>& loss);
    /// Only the losses added to this layer itself (no sublayers', no regularization penalties).
    const std::vector<Tensor<T>>& added_losses() const { return m_added_losses; }
    /// Appends the losses added to this layer, then (for a model) to its sublayers in order.
    virtual void collect_added_losses(std::vector<Tensor<T>>& out) const;
    /// Forgets the losses added to this layer and to its sublayers.
    virtual void clear_losses() { m_added_losses.clear(); }
    void set_activity_regularizer(RegularizerPtr<T> r) { m_activity_regularizer = std::move(r); }
    const RegularizerPtr<T>& activity_regularizer() const { return m_activity_regularizer; }

    // ---- config ---------------------------------------------------------------------------
    /// Keras's keys: the base writes name, trainable, dtype; subclasses add theirs.
    virtual json get_config() const;
    /// Path of a weight as Keras names it in files: "<layer name>/<weight name>".
    std::string weight_path(const Variable<T>& v) const { return m_name + "/" + v.name(); }

protected:
    /// Creates the layer's weights for `input_shape`. Called once, by build_once().
    virtual void build(const dims_t& input_shape) { (void)input_shape; }
    /// The computation; x has the built shape (up to the batch dimension).
    virtual Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) = 0;
    /// Checks x against the built input shape; override for layers that accept other ranks.
    virtual void check_input(const shape_t& x) const;

    Variable<T> add_weight(const std::string& name, const shape_t& shape, const InitializerPtr<T>& initializer,
                           const RegularizerPtr<T>& regularizer = nullptr,
                           const ConstraintPtr<T>& constraint = nullptr, bool trainable = true);

private:
    std::string m_class_name;
    std::string m_name;
    bool m_trainable;
    bool m_built = false;
    dims_t m_build_shape;
    std::vector<Variable<T>> m_variables; // creation order
    std::vector<Tensor<T>> m_added_losses;
    RegularizerPtr<T> m_activity_regularizer;
};

template <class T>
using LayerPtr = std::shared_ptr<Layer<T>>;

} // namespace xtape
