// Streaming metrics with Keras's names, formulas and reduction: a metric keeps a running
// total and count across update_state() calls (batches) and result() is total / count
// (0 when count is 0, Keras's divide_no_nan).
//
//   SparseCategoricalAccuracy<float> m;
//   m.update_state(y_batch1, pred_batch1);  m.update_state(y_batch2, pred_batch2);
//   double acc = m.result();                // over both batches, weighted by sample count
//
// Per-sample values (MeanMetricWrapper): each sample contributes one value, the mean over its
// non-batch positions, weighted by its sample weight (1 without weights). Totals are kept in
// double (Keras keeps float32 variables; the last digits of long runs may differ).
#pragma once

#include "framework/config.hpp"
#include "framework/tensor.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtape {

template <class T>
/// keras.metrics.Metric: a streaming value over batches (update_state, result, reset_state).
class Metric {
public:
    /// `name` is the key the metric logs under ("accuracy", "val_accuracy" for validation).
    explicit Metric(std::string name)
        : m_name(std::move(name))
    {
    }
    /// Destroys the metric (held through MetricPtr).
    virtual ~Metric() = default;

    /// The name the metric logs under.
    const std::string& name() const { return m_name; }
    /// Renames the metric (compile names a metric given by name as the string given).
    void set_name(std::string n) { m_name = std::move(n); }

    /// requires: y_true and y_pred of one batch (the first axis is the batch); sample_weight
    ///           null or of shape (batch,). Shape mismatches throw ShapeError naming the metric.
    virtual void update_state(const array_t<T>& y_true, const array_t<T>& y_pred,
                              const array_t<T>* sample_weight = nullptr) = 0;
    /// The value over every batch since the last reset_state (0 before any update, Keras's divide_no_nan).
    virtual double result() const = 0;
    /// Forgets every batch (fit resets at each epoch begin, evaluate at its start).
    virtual void reset_state() = 0;

    /// +1 when larger is better (accuracies), -1 when smaller is better (errors), 0 unknown.
    /// EarlyStopping and ReduceLROnPlateau use it in mode "auto".
    virtual int direction() const { return 0; }
    /// Keras's class name ("SparseCategoricalAccuracy"), as in configs.
    virtual std::string class_name() const = 0;
    /// Keras's keys: name, dtype (+ the metric's own arguments).
    virtual json get_config() const;
    /// The state as sums and counts (arrays of doubles) that data-parallel training adds up across
    /// ranks; empty for a metric whose state is not additive (it then cannot run data parallel).
    virtual std::vector<std::pair<double*, std::size_t>> additive_state() { return {}; }

private:
    std::string m_name;
};

template <class T>
using MetricPtr = std::shared_ptr<Metric<T>>;

/// keras.metrics.Mean: the weighted mean of every value given.
template <class T>
class Mean : public Metric<T> {
public:
    /// keras.metrics.Mean(name = "mean").
    explicit Mean(std::string name = "mean")
        : Metric<T>(std::move(name))
    {
    }
    /// Adds `value` with weight `weight` (the training loop adds each batch loss with the batch size).
    void update(double value, double weight = 1.0)
    {
        m_total += value * weight;
        m_count += weight;
    }
    /// Values of any shape (the first axis is the batch): each sample contributes the mean of its
    /// values, with its weight (sample_weight null or of shape (batch,)).
    void update_values(const array_t<T>& values, const array_t<T>* sample_weight = nullptr);
    /// Mean has no (y_true, y_pred) form: throws NotImplementedError pointing to update_values.
    void update_state(const array_t<T>& y_true, const array_t<T>& y_pred,
                      const array_t<T>* sample_weight = nullptr) override;
    double result() const override { return m_count == 0 ? 0.0 : m_total / m_count; }
    void reset_state() override { m_total = m_count = 0; }
    std::string class_name() const override { return "Mean"; }
    std::vector<std::pair<double*, std::size_t>> additive_state() override { return { { &m_total, 1 }, { &m_count, 1 } }; }

protected:
    double m_total = 0, m_count = 0;
};

/// The base of metrics that compute one value per sample (Keras's MeanMetricWrapper).
template <class T>
class MeanMetricWrapper : public Mean<T> {
public:
    using Mean<T>::Mean;
    void update_state(const array_t<T>& y_true, const array_t<T>& y_pred,
                      const array_t<T>* sample_weight = nullptr) override;

protected:
    /// Writes one value per sample (the mean over the sample's positions) into `out`.
    virtual void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const = 0;

private:
    std::vector<double> m_values; // reused between batches
};

/// How often y_pred equals y_true exactly (keras.metrics.Accuracy).
template <class T>
class Accuracy : public MeanMetricWrapper<T> {
public:
    /// keras.metrics.Accuracy(name = "accuracy").
    explicit Accuracy(std::string name = "accuracy")
        : MeanMetricWrapper<T>(std::move(name))
    {
    }
    int direction() const override { return 1; }
    std::string class_name() const override { return "Accuracy"; }

protected:
    void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const override;
};

/// (y_pred > threshold) == y_true, averaged over the last axis.
template <class T>
class BinaryAccuracy : public MeanMetricWrapper<T> {
public:
    /// requires: 0 < threshold < 1 (ValueError otherwise, as Keras).
    explicit BinaryAccuracy(std::string name = "binary_accuracy", double threshold = 0.5);
    int direction() const override { return 1; }
    std::string class_name() const override { return "BinaryAccuracy"; }
    json get_config() const override;
    /// Predictions above this value count as 1 (default 0.5).
    double threshold() const { return m_threshold; }

protected:
    void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const override;

private:
    double m_threshold;
};

/// argmax(y_true) == argmax(y_pred) over the last axis (one-hot labels).
template <class T>
class CategoricalAccuracy : public MeanMetricWrapper<T> {
public:
    /// keras.metrics.CategoricalAccuracy(name = "categorical_accuracy").
    explicit CategoricalAccuracy(std::string name = "categorical_accuracy")
        : MeanMetricWrapper<T>(std::move(name))
    {
    }
    int direction() const override { return 1; }
    std::string class_name() const override { return "CategoricalAccuracy"; }

protected:
    void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const override;
};

/// y_true (class indices, shape (batch,) or (batch, 1)) == argmax(y_pred).
template <class T>
class SparseCategoricalAccuracy : public MeanMetricWrapper<T> {
public:
    /// keras.metrics.SparseCategoricalAccuracy(name = "sparse_categorical_accuracy").
    explicit SparseCategoricalAccuracy(std::string name = "sparse_categorical_accuracy")
        : MeanMetricWrapper<T>(std::move(name))
    {
    }
    int direction() const override { return 1; }
    std::string class_name() const override { return "SparseCategoricalAccuracy"; }

protected:
    void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const override;
};

/// The true class (argmax of one-hot y_true) is among the k largest predictions. Ties count
/// in favour of the true class, as tf.math.in_top_k: it is in the top k when fewer than k
/// classes score strictly higher; a non-finite score is never in the top k.
template <class T>
class TopKCategoricalAccuracy : public MeanMetricWrapper<T> {
public:
    /// keras.metrics.TopKCategoricalAccuracy(k = 5): top-5 accuracy by default.
    explicit TopKCategoricalAccuracy(int k = 5, std::string name = "top_k_categorical_accuracy");
    int direction() const override { return 1; }
    std::string class_name() const override { return "TopKCategoricalAccuracy"; }
    json get_config() const override;

protected:
    void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const override;

private:
    int m_k;
};

/// As TopKCategoricalAccuracy with class indices as y_true.
template <class T>
class SparseTopKCategoricalAccuracy : public MeanMetricWrapper<T> {
public:
    /// keras.metrics.SparseTopKCategoricalAccuracy(k = 5): top-5 accuracy by default.
    explicit SparseTopKCategoricalAccuracy(int k = 5, std::string name = "sparse_top_k_categorical_accuracy");
    int direction() const override { return 1; }
    std::string class_name() const override { return "SparseTopKCategoricalAccuracy"; }
    json get_config() const override;

protected:
    void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const override;

private:
    int m_k;
};

/// mean(|y_true - y_pred|) over the last axis.
template <class T>
class MeanAbsoluteError : public MeanMetricWrapper<T> {
public:
    /// keras.metrics.MeanAbsoluteError(name = "mean_absolute_error").
    explicit MeanAbsoluteError(std::string name = "mean_absolute_error")
        : MeanMetricWrapper<T>(std::move(name))
    {
    }
    int direction() const override { return -1; }
    std::string class_name() const override { return "MeanAbsoluteError"; }

protected:
    void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const override;
};

/// mean((y_true - y_pred)^2) over the last axis.
template <class T>
class MeanSquaredError : public MeanMetricWrapper<T> {
public:
    /// keras.metrics.MeanSquaredError(name = "mean_squared_error").
    explicit MeanSquaredError(std::string name = "mean_squared_error")
        : MeanMetricWrapper<T>(std::move(name))
    {
    }
    int direction() const override { return -1; }
    std::string class_name() const override { return "MeanSquaredError"; }

protected:
    void sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const override;
};

/// keras.metrics.AUC for one label (multi_label=false): the area under the ROC curve (or the
/// precision-recall curve, or PR-gain) from confusion counts at fixed thresholds, accumulated
/// over batches. As Keras: thresholds -1e-7, 1/(n-1), ..., (n-2)/(n-1), 1+1e-7 (or the given
/// ones between the two end points); y_true is read as a boolean (nonzero = positive); every
/// element of y_pred is one data point (a (batch, k) output gives batch*k points); predictions
/// are clipped to [0, 1] (after a sigmoid when from_logits); a point is predicted positive at
/// threshold t when y_pred > t (with even thresholds through Keras's bucket formula
/// ceil(y_pred * (n-1)) - 1, computed in T). result(): "interpolation" sums trapezoids for ROC
/// and uses Davis & Goadrich's interpolation for PR; "minoring"/"majoring" take the lower/upper
/// rectangle. Counts are kept in double.
template <class T>
class AUC : public Metric<T> {
public:
    /// requires: num_thresholds > 1 when `thresholds` is empty; curve "ROC", "PR" or "PRGAIN";
    ///           summation_method "interpolation", "minoring" or "majoring" (ValueError
    ///           otherwise; lower-case curve names and capitalized methods are accepted, as Keras).
    explicit AUC(int num_thresholds = 200, std::string curve = "ROC", std::string summation_method = "interpolation",
                 std::string name = "auc", std::vector<double> thresholds = {}, bool from_logits = false);

    /// sample_weight null, of shape (batch,) (one weight for each sample's elements), or with
    /// one weight per element of y_pred.
    void update_state(const array_t<T>& y_true, const array_t<T>& y_pred,
                      const array_t<T>* sample_weight = nullptr) override;
    double result() const override;
    void reset_state() override;
    std::vector<std::pair<double*, std::size_t>> additive_state() override
    {
        return { { m_tp.data(), m_tp.size() }, { m_fp.data(), m_fp.size() }, { m_tn.data(), m_tn.size() },
                 { m_fn.data(), m_fn.size() } };
    }
    int direction() const override { return 1; }
    std::string class_name() const override { return "AUC"; }
    /// Keras's keys: name, dtype, num_thresholds, curve, summation_method, multi_label,
    /// num_labels, label_weights, from_logits (+ thresholds when given).
    json get_config() const override;

    /// The number of thresholds, the two end points included (200 by default).
    int num_thresholds() const { return static_cast<int>(m_thresholds.size()); }
    /// All thresholds, the two end points included.
    const std::vector<double>& thresholds() const { return m_thresholds; }
    /// The weighted count of true positives at each threshold.
    const std::vector<double>& true_positives() const { return m_tp; }
    /// The weighted count of false positives at each threshold.
    const std::vector<double>& false_positives() const { return m_fp; }
    /// The weighted count of true negatives at each threshold.
    const std::vector<double>& true_negatives() const { return m_tn; }
    /// The weighted count of false negatives at each threshold.
    const std::vector<double>& false_negatives() const { return m_fn; }

private:
    double interpolate_pr_auc() const;

    std::string m_curve, m_summation;
    std::vector<double> m_thresholds;
    bool m_init_from_thresholds, m_evenly, m_from_logits;
    std::vector<double> m_tp, m_fp, m_tn, m_fn;
};

/// What keras.metrics.Precision and Recall share: true positives, false positives and false
/// negatives at one threshold, accumulated over batches, with Keras's update rule
/// (update_confusion_matrix_variables):
///  * top_k: along the last axis of y_pred only the k largest predictions (ties: the lower index
///    first, as top_k) keep their values, the others become -1e10 (Keras's NEG_INF);
///  * class_id: then only y_true[..., class_id] and y_pred[..., class_id] count;
///  * y_true is read as a boolean (nonzero = positive); a prediction is positive when
///    y_pred > threshold; without `thresholds` the threshold is 0.5, or -1e10 with top_k (every
///    kept prediction is positive);
///  * sample_weight, null or of shape (batch,), weighs every element of its sample.
/// Counts are kept in double. One threshold only: Keras returns a vector for several, which a
/// scalar result() cannot be (NotImplementedError).
template <class T>
class ConfusionMetric : public Metric<T> {
public:
    /// requires: thresholds empty (the default) or one value in [0, 1] (ValueError with Keras's
    ///           message "Threshold values must be in [0, 1]"; NotImplementedError for several);
    ///           top_k > 0 when given; class_id >= 0 when given.
    ConfusionMetric(std::string name, std::vector<double> thresholds, std::optional<int> top_k,
                    std::optional<int> class_id);
    /// requires: y_true and y_pred of the same shape (Keras's squeeze/expand of a trailing 1
    ///           axis allowed), of rank >= 2 with class_id, and class_id below y_pred's last axis
    ///           (ShapeError / ValueError naming the metric otherwise).
    void update_state(const array_t<T>& y_true, const array_t<T>& y_pred,
                      const array_t<T>* sample_weight = nullptr) override;
    void reset_state() override { m_tp = m_fp = m_fn = 0; }
    std::vector<std::pair<double*, std::size_t>> additive_state() override
    {
        return { { &m_tp, 1 }, { &m_fp, 1 }, { &m_fn, 1 } };
    }
    int direction() const override { return 1; }
    /// Keras's keys: name, dtype, thresholds (null when not given, else the number; a list of one
    /// comes back as that number), top_k, class_id.
    json get_config() const override;

    /// The threshold in use: 0.5 by default, -1e10 with top_k and no thresholds.
    double threshold() const { return m_threshold; }
    /// The weighted count of true positives so far.
    double true_positives() const { return m_tp; }
    /// The weighted count of false positives so far.
    double false_positives() const { return m_fp; }
    /// The weighted count of false negatives so far.
    double false_negatives() const { return m_fn; }

protected:
    double m_tp = 0, m_fp = 0, m_fn = 0;

private:
    json m_init_thresholds;
    double m_threshold;
    std::optional<int> m_top_k, m_class_id;
    std::vector<std::size_t> m_order; // top_k's scratch, reused between batches
};

/// keras.metrics.Precision: tp / (tp + fp), 0 when nothing was predicted positive.
template <class T>
class Precision : public ConfusionMetric<T> {
public:
    /// keras.metrics.Precision(thresholds = None, top_k = None, class_id = None); ConfusionMetric's requirements.
    explicit Precision(std::vector<double> thresholds = {}, std::optional<int> top_k = std::nullopt,
                       std::optional<int> class_id = std::nullopt, std::string name = "precision")
        : ConfusionMetric<T>(std::move(name), std::move(thresholds), top_k, class_id)
    {
    }
    double result() const override;
    std::string class_name() const override { return "Precision"; }
};

/// keras.metrics.Recall: tp / (tp + fn), 0 when there was no positive label.
template <class T>
class Recall : public ConfusionMetric<T> {
public:
    /// keras.metrics.Recall(thresholds = None, top_k = None, class_id = None); ConfusionMetric's requirements.
    explicit Recall(std::vector<double> thresholds = {}, std::optional<int> top_k = std::nullopt,
                    std::optional<int> class_id = std::nullopt, std::string name = "recall")
        : ConfusionMetric<T>(std::move(name), std::move(thresholds), top_k, class_id)
    {
    }
    double result() const override;
    std::string class_name() const override { return "Recall"; }
};

/// A metric by Keras name or config. Names: "accuracy"/"acc" (exact-match Accuracy; compile()
/// resolves these by shapes instead, see resolve_compile_metric), "binary_accuracy",
/// "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
/// "sparse_top_k_categorical_accuracy", "mae"/"mean_absolute_error", "mse"/"mean_squared_error",
/// "auc"/"AUC" (AUC with its defaults), "precision", "recall";
/// class names (BinaryAccuracy, ...) and {class_name, config} dicts. The metric is named as
/// the string given ("mae" logs as "mae"). Unknown names throw KeyError.
template <class T>
MetricPtr<T> get_metric(const json& spec);

/// What compile() does with a metric name once it sees the first batch (Keras 3's
/// compile_utils.get_metric): "accuracy"/"acc" become BinaryAccuracy when y_pred's last axis
/// is 1, SparseCategoricalAccuracy when y_true has lower rank than y_pred (or a last axis of
/// 1 against y_pred's > 1), CategoricalAccuracy otherwise; named as given. Other names go
/// through get_metric.
template <class T>
MetricPtr<T> resolve_compile_metric(const json& spec, const shape_t& y_true_shape, const shape_t& y_pred_shape);

} // namespace xtape
