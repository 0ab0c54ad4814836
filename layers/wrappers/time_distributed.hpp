// TimeDistributed: Keras's keras.layers.TimeDistributed(layer) - the inner layer applied to every
// slice along axis 1 with one set of weights.
//
// Note [TimeDistributed semantics]: Keras 3 (keras/src/layers/rnn/time_distributed.py) transposes
// time to the front and, for a static time axis, calls the inner layer once per step on
// inputs[:, t] (with mask[:, t] and `training` when the layer takes them) and stacks the results;
// this layer does exactly that. For per-sample layers (Dense, Conv2D, activations) that equals
// tf.keras 2's reshape to (batch * time, ...), but not for BatchNormalization: under Keras 3 each
// step is normalized by its own batch statistics (over the batch only, the step's mask weighting
// them) and a training call moves the moving statistics once per step (T updates with the layer's
// momentum), whereas tf.keras 2 normalized over batch and time together with one update. Files of
// either version load; the numbers are Keras 3's.
// Masks: the input mask (batch, time, ...) is given to the inner layer step by step, and passed on
// unchanged to the next layer, as Keras 3 releases up to 3.11 do (Keras's master of July 2026 sets
// supports_masking=False on TimeDistributed and drops it; see the README).
// Weights are the inner layer's, listed under the wrapper (get_weights, files: "<wrapper>/<weight>",
// tf.keras 2's names); the config nests the inner layer under "layer" (Keras 3's serialized form, and
// tf.keras's {"class_name", "config"} on reading).
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

template <class T>
/// keras.layers.TimeDistributed(layer): the inner layer applied to each slice x[:, t] with one set of weights (Note [TimeDistributed semantics]).
class TimeDistributed : public Layer<T> {
public:
    /// requires: a layer (ValueError with Keras's message otherwise).
    explicit TimeDistributed(LayerPtr<T> layer, const std::string& name = "");
    /// Builds the wrapper and its inner layer from a config whose "layer" is Keras 3's serialized layer or tf.keras's {"class_name", "config"}.
    static std::shared_ptr<TimeDistributed> from_config(const json& config);
    json get_config() const override;
    /// The wrapped layer.
    const LayerPtr<T>& layer() const { return m_layer; }

    /// (batch, time) followed by the inner layer's output shape for (batch, *input_shape[2:]) without its batch axis.
    dims_t compute_output_shape(const dims_t& input_shape) const override;
    std::vector<Variable<T>> weights() const override;
    std::vector<Variable<T>> trainable_weights() const override;
    std::vector<Variable<T>> non_trainable_weights() const override;
    void set_trainable(bool t) override;
    void collect_added_losses(std::vector<Tensor<T>>& out) const override;
    void clear_losses() override;
    void reseed(std::uint64_t seed) override { m_layer->reseed(seed); }
    std::string random_state() const override { return m_layer->random_state(); }
    void set_random_state(const std::string& s) override { m_layer->set_random_state(s); }
    /// "<wrapper name>/<weight>", tf.keras 2's names for the inner layer's weights.
    std::string weight_path(const Variable<T>& v) const override { return this->name() + "/" + v.name(); }

protected:
    /// Builds the inner layer for (batch, *input_shape[2:]); ValueError below rank 3 (Keras's message).
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    void check_input(const shape_t& x) const override;

private:
    LayerPtr<T> m_layer;
};

} // namespace xtape
