// BatchNormalization: Keras's keras.layers.BatchNormalization (Keras 3 arguments and defaults, plus
// tf.keras 2's axis lists and virtual_batch_size), on the fused op of framework/batch_norm.hpp.
//
//   BatchNormalization<float> bn;                        // axis -1, momentum 0.99, epsilon 1e-3
//   BatchNormalizationOptions<float> o; o.axis = { 1 };  // channels-first
//   BatchNormalization<float> bn1(o);
//   Tensor<float> y = bn(x, /*training=*/true);          // batch statistics; moving averages updated
//
// Training (training=true and trainable): y = gamma (x - mean) / sqrt(var + epsilon) + beta with
// this batch's mean and biased variance over every axis but the normalized ones; then, once per
// call, moving = moving * momentum + batch * (1 - momentum).
// Inference (training=false): the moving statistics.
//
// About trainable=false (Keras's rule, surprising on first sight): a frozen BatchNormalization
// runs in inference mode even when called with training=true. Its statistics do not move, its
// gamma and beta are not trainable weights (no regularization penalty), and gradients still flow
// to the input through the frozen transform, so a frozen base can be fine-tuned under a new head.
//
// Weights, in Keras's order: gamma (scale), beta (center) - trainable; moving_mean,
// moving_variance - non-trainable; with renorm also moving_stddev, renorm_mean, renorm_stddev
// (non-trainable, as Keras 3 and tf.keras keep them). Shape (C,) for one normalized axis; for an
// axis list or virtual batches tf.keras's broadcast shape (1s on the other axes, and an extra 1
// for the virtual batch axis), so tf.keras weight files load unchanged.
//
// Masks (the call's mask argument, rank = input rank - 1): the batch statistics are Keras 3's
// weighted moments over the unmasked positions; every position is normalized.
#pragma once

#include "framework/batch_norm.hpp"
#include "framework/initializer.hpp"
#include "framework/layer.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtape {

/// Batch renormalization's clipping; a missing bound does not clip (rmin 0, rmax and dmax inf).
struct RenormClipping {
    std::optional<double> rmax, rmin, dmax;
    /// The dict exactly as a config gave it: Keras keeps renorm_clipping as given and get_config
    /// writes it back unchanged (integers stay integers, null bounds stay). Null when the bounds
    /// were set in C++; get_config then writes the bounds that are set.
    json as_given;
};

template <class T>
/// keras.layers.BatchNormalization's arguments with Keras 3's defaults (axis -1, momentum 0.99, epsilon 1e-3).
struct BatchNormalizationOptions {
    /// The normalized axis, or several (tf.keras's list; they normalize over their product).
    std::vector<int> axis{ -1 };
    double momentum = 0.99;
    double epsilon = 1e-3;
    bool center = true;
    bool scale = true;
    InitializerPtr<T> beta_initializer;            ///< null: zeros
    InitializerPtr<T> gamma_initializer;           ///< null: ones
    InitializerPtr<T> moving_mean_initializer;     ///< null: zeros
    InitializerPtr<T> moving_variance_initializer; ///< null: ones
    RegularizerPtr<T> beta_regularizer, gamma_regularizer;
    ConstraintPtr<T> beta_constraint, gamma_constraint;
    /// Cross-replica statistics; in a single process exactly the same as false.
    /// Training statistics over every rank's share of the batch in data-parallel training
    /// (Note [Synchronized batch norm] in framework/batch_norm.hpp); false keeps each rank's own and
    /// averages the moving statistics across ranks. No effect in one process.
    bool synchronized = false;
    bool renorm = false;
    std::optional<RenormClipping> renorm_clipping; ///< as given (Keras writes null or a dict)
    double renorm_momentum = 0.99;
    std::optional<long> virtual_batch_size; ///< tf.keras's ghost batch normalization
    std::string name;                       ///< empty: "batch_normalization", "batch_normalization_1", ...
    bool trainable = true;
};

template <class T>
/// keras.layers.BatchNormalization: batch statistics in training, moving statistics in inference (see the top of this file).
class BatchNormalization : public Layer<T> {
public:
    /// requires: momentum in [0, 1], epsilon >= 0, renorm_clipping with rmax >= rmin and dmax >= 0,
    ///           virtual_batch_size > 0 when given (ValueError with Keras's wording otherwise).
    explicit BatchNormalization(const BatchNormalizationOptions<T>& options = {});
    /// Same as from_config(config), for a layer held by value.
    explicit BatchNormalization(const json& config);

    /// Reads every form Keras has written: Keras 1 (mode 0, no center/scale keys, beta_init/
    /// gamma_init), Keras 2, tf.keras (axis as a list, dtype, renorm*, virtual_batch_size, fused)
    /// and Keras 3 (initializers as {module, class_name, config, registered_name}, dtype policy
    /// dicts); booleans may be 1/0. Keras 1 modes 1 and 2 give NotImplementedError.
    static std::shared_ptr<BatchNormalization> from_config(const json& config);
    /// The options from_config would construct with, without building a layer (same forms and errors).
    static BatchNormalizationOptions<T> options_from_config(const json& config);
    /// Keras 3's keys and values (axis an int when one axis; virtual_batch_size only when set).
    json get_config() const override;

    /// The arguments the layer was constructed with.
    const BatchNormalizationOptions<T>& options() const { return m_options; }
    /// The normalized axis or axes, as given (negative values count from the end).
    const std::vector<int>& axis() const { return m_options.axis; }
    /// The moving averages' momentum: moving = moving * momentum + batch * (1 - momentum).
    double momentum() const { return m_options.momentum; }
    /// Added to the variance before the square root.
    double epsilon() const { return m_options.epsilon; }

    /// requires: built, and the weight exists (scale for gamma, center for beta, renorm for the
    /// renorm statistics); RuntimeError naming the layer otherwise.
    const Variable<T>& gamma() const;
    /// The offset (center) weight (RuntimeError unless built with center).
    const Variable<T>& beta() const;
    /// The moving mean, non-trainable (RuntimeError unless built).
    const Variable<T>& moving_mean() const;
    /// The moving (biased) variance, non-trainable (RuntimeError unless built).
    const Variable<T>& moving_variance() const;
    /// Batch renormalization's moving standard deviation (RuntimeError unless built with renorm).
    const Variable<T>& moving_stddev() const;
    /// Batch renormalization's renorm_momentum average of the mean (RuntimeError unless built with renorm).
    const Variable<T>& renorm_mean() const;
    /// Batch renormalization's renorm_momentum average of the standard deviation (RuntimeError unless built with renorm).
    const Variable<T>& renorm_stddev() const;

protected:
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Keras's InputSpec(ndim, axes={axis: size}): the rank and the normalized axes' sizes must
    /// match the built shape; the other axes may vary.
    void check_input(const shape_t& x) const override;

private:
    void update_moving_statistics(const BatchNormStats<T>& stats);
    void average_moving_statistics();
    const Variable<T>& need(const Variable<T>& v, const char* what) const;

    BatchNormalizationOptions<T> m_options;
    BatchNormSpec m_spec;
    std::vector<std::size_t> m_axes; ///< normalized, sorted (after build)
    Variable<T> m_gamma, m_beta, m_moving_mean, m_moving_variance;
    Variable<T> m_moving_stddev, m_renorm_mean, m_renorm_stddev;
    std::shared_ptr<bn::Workspace<T>> m_workspace;
    BatchNormStats<T> m_stats; ///< the last training call's statistics (reused arrays)
    BatchRenorm<T> m_renorm;   ///< the renorm state handed to the op (reused arrays)
};

} // namespace xtape
