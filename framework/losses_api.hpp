// Loss objects: Keras's keras.losses classes on top of the per-sample loss ops of ops.hpp.
//
//   SparseCategoricalCrossentropy<float> loss(/*from_logits=*/false);
//   Tensor<float> l = loss(y_true, y_pred);               // scalar, differentiable
//   Tensor<float> lw = loss(y_true, y_pred, sample_weight); // Keras's weighted reduction
//
// Reduction (Keras 3 keras/src/losses/loss.py, reduce_weighted_values):
//   values = per-sample losses (batch, ...) * sample_weight (broadcast per sample)
//   "sum_over_batch_size" / "mean": sum(values) / number of elements of values
//        -- so zero weights still count in the divisor: sum(loss * w) / batch_size;
//   "mean_with_sample_weight": sum(values) / sum(sample_weight) (plain mean without weights);
//   "sum": sum(values);  "none": the weighted per-sample values, unreduced.
#pragma once

#include "framework/config.hpp"
#include "framework/tensor.hpp"

#include <memory>
#include <string>

namespace xtape {

/// requires: reduction is one of "sum_over_batch_size", "mean", "mean_with_sample_weight",
///           "sum", "none" (ValueError listing them otherwise).
std::string standardize_reduction(const std::string& reduction);

/// Keras's reduce_weighted_values. `sample_weight` may be empty (no weights), of the shape of
/// `values`, or of shape (batch,) / (batch, 1) (one weight per sample, broadcast over the
/// sample's positions); anything else throws ShapeError.
template <class T>
Tensor<T> reduce_weighted_values(const Tensor<T>& values, const Tensor<T>& sample_weight, const std::string& reduction);

template <class T>
/// keras.losses.Loss: per-sample losses (call) reduced with sample weights (operator()).
class Loss {
public:
    /// `name` as Keras names the loss; `reduction` as standardize_reduction accepts (ValueError otherwise).
    Loss(std::string name, std::string reduction);
    /// Destroys the loss (held through LossPtr).
    virtual ~Loss() = default;

    /// The loss's name ("sparse_categorical_crossentropy"), the key of its per-output log.
    const std::string& name() const { return m_name; }
    /// The reduction, standardized ("sum_over_batch_size" by default).
    const std::string& reduction() const { return m_reduction; }

    /// The per-sample losses (y_pred's shape without its last axis).
    virtual Tensor<T> call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const = 0;
    /// call() reduced with the sample weights (empty: none) as documented at the top.
    Tensor<T> operator()(const Tensor<T>& y_true, const Tensor<T>& y_pred,
                         const Tensor<T>& sample_weight = Tensor<T>()) const;

    /// True when y_true holds class indices (the sparse losses): class_weight reads them so.
    virtual bool sparse_labels() const { return false; }
    /// Keras's class name ("CategoricalCrossentropy"), as in configs.
    virtual std::string class_name() const = 0;
    /// Keras's keys: name, reduction, then the loss's own arguments.
    virtual json get_config() const;

private:
    std::string m_name;
    std::string m_reduction;
};

template <class T>
using LossPtr = std::shared_ptr<const Loss<T>>;

// MeanSquaredError and MeanAbsoluteError are also metric classes (metrics.hpp), so the loss
// classes carry a "Loss" suffix here; class_name() and configs use Keras's names.
#define XTAPE_SIMPLE_LOSS(Class, keras_class, keras_name)                                                                 \
    template <class T>                                                                                       \
    class Class : public Loss<T> {                                                                           \
    public:                                                                                                  \
        explicit Class(std::string name = keras_name, std::string reduction = "sum_over_batch_size")         \
            : Loss<T>(std::move(name), std::move(reduction))                                                 \
        {                                                                                                    \
        }                                                                                                    \
        Tensor<T> call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const override;                    \
        std::string class_name() const override { return keras_class; }                                      \
    };

/// mean((y_true - y_pred)^2) over the last axis.
XTAPE_SIMPLE_LOSS(MeanSquaredErrorLoss, "MeanSquaredError", "mean_squared_error")
/// mean(|y_true - y_pred|) over the last axis.
XTAPE_SIMPLE_LOSS(MeanAbsoluteErrorLoss, "MeanAbsoluteError", "mean_absolute_error")
/// sum(y_true * log(y_true / y_pred)) over the last axis, both clipped to [1e-7, 1].
XTAPE_SIMPLE_LOSS(KLDivergence, "KLDivergence", "kl_divergence")
// The constructors the loss macro declares (Doxygen reads no comment inside a macro):
/// \fn xtape::MeanSquaredErrorLoss::MeanSquaredErrorLoss(std::string name, std::string reduction)
/// MeanSquaredErrorLoss(name = "mean_squared_error", reduction = "sum_over_batch_size"); ValueError for an unknown reduction.
/// \fn xtape::MeanAbsoluteErrorLoss::MeanAbsoluteErrorLoss(std::string name, std::string reduction)
/// MeanAbsoluteErrorLoss(name = "mean_absolute_error", reduction = "sum_over_batch_size"); ValueError for an unknown reduction.
/// \fn xtape::KLDivergence::KLDivergence(std::string name, std::string reduction)
/// KLDivergence(name = "kl_divergence", reduction = "sum_over_batch_size"); ValueError for an unknown reduction.
#undef XTAPE_SIMPLE_LOSS

/// Binary cross-entropy, mean over the last axis. label_smoothing s: y -> y (1 - s) + s / 2.
template <class T>
class BinaryCrossentropy : public Loss<T> {
public:
    /// keras.losses.BinaryCrossentropy(from_logits = false, label_smoothing = 0).
    explicit BinaryCrossentropy(bool from_logits = false, double label_smoothing = 0.0,
                                std::string name = "binary_crossentropy",
                                std::string reduction = "sum_over_batch_size");
    Tensor<T> call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const override;
    std::string class_name() const override { return "BinaryCrossentropy"; }
    json get_config() const override;
    /// Whether y_pred holds logits (a sigmoid is applied inside) rather than probabilities.
    bool from_logits() const { return m_from_logits; }

private:
    bool m_from_logits;
    double m_label_smoothing;
};

/// Categorical cross-entropy with one-hot y_true. label_smoothing s: y -> y (1 - s) + s / classes.
template <class T>
class CategoricalCrossentropy : public Loss<T> {
public:
    /// keras.losses.CategoricalCrossentropy(from_logits = false, label_smoothing = 0, axis = -1).
    explicit CategoricalCrossentropy(bool from_logits = false, double label_smoothing = 0.0, int axis = -1,
                                     std::string name = "categorical_crossentropy",
                                     std::string reduction = "sum_over_batch_size");
    Tensor<T> call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const override;
    std::string class_name() const override { return "CategoricalCrossentropy"; }
    json get_config() const override;
    /// Whether y_pred holds logits (a softmax is applied inside) rather than probabilities.
    bool from_logits() const { return m_from_logits; }

private:
    bool m_from_logits;
    double m_label_smoothing;
    int m_axis;
};

/// Categorical cross-entropy with class indices as y_true; labels outside [0, classes) throw
/// ValueError naming the label and the class count.
template <class T>
class SparseCategoricalCrossentropy : public Loss<T> {
public:
    /// keras.losses.SparseCategoricalCrossentropy(from_logits = false).
    explicit SparseCategoricalCrossentropy(bool from_logits = false,
                                           std::string name = "sparse_categorical_crossentropy",
                                           std::string reduction = "sum_over_batch_size");
    Tensor<T> call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const override;
    bool sparse_labels() const override { return true; }
    std::string class_name() const override { return "SparseCategoricalCrossentropy"; }
    json get_config() const override;
    /// Whether y_pred holds logits (a softmax is applied inside) rather than probabilities.
    bool from_logits() const { return m_from_logits; }

private:
    bool m_from_logits;
};

/// Huber loss with threshold delta, mean over the last axis.
template <class T>
class Huber : public Loss<T> {
public:
    /// keras.losses.Huber(delta = 1.0, name = "huber_loss").
    explicit Huber(double delta = 1.0, std::string name = "huber_loss",
                   std::string reduction = "sum_over_batch_size");
    Tensor<T> call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const override;
    std::string class_name() const override { return "Huber"; }
    json get_config() const override;

private:
    double m_delta;
};

/// A loss by Keras name ("mse", "mean_squared_error", "mae", "binary_crossentropy",
/// "categorical_crossentropy", "sparse_categorical_crossentropy", "huber", "kld",
/// "kl_divergence", ...), by class name, or from a config ({class_name, config}, Keras 2 or 3
/// form). A string name gives the loss named as the function (reduction sum_over_batch_size).
/// Unknown names throw KeyError.
template <class T>
LossPtr<T> get_loss(const json& spec);

/// Keras 3's serialized form {"module": "keras.losses", "class_name", "config", "registered_name": null}.
template <class T>
json serialize_loss(const Loss<T>& loss);

} // namespace xtape
