#include "framework/metrics.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace xtape {
namespace {

std::size_t batch_of(const shape_t& s) { return s.empty() ? 1 : s[0]; }

/// Keras's squeeze_or_expand_to_same_rank for two label/prediction shapes: when the ranks
/// differ by one and the longer shape ends in 1, drop that axis. Returns the common shape.
shape_t same_rank_shape(const std::string& metric, const shape_t& a, const shape_t& b)
{
    shape_t sa = a, sb = b;
    if (sa.size() == sb.size() + 1 && sa.back() == 1)
        sa.pop_back();
    else if (sb.size() == sa.size() + 1 && sb.back() == 1)
        sb.pop_back();
    if (sa != sb)
        throw ShapeError("metric '" + metric + "': y_true and y_pred have incompatible shapes " + shape_str(a) +
                         " and " + shape_str(b));
    return sa;
}

/// Index of the first largest element of p[0..n) (numpy's argmax).
template <class T>
std::size_t argmax(const T* p, std::size_t n)
{
    std::size_t best = 0;
    for (std::size_t j = 1; j < n; ++j)
        if (p[j] > p[best])
            best = j;
    return best;
}

/// tf.math.in_top_k for one row: fewer than k scores strictly above the target's.
template <class T>
bool in_top_k(const T* p, std::size_t n, std::size_t target, int k)
{
    if (target >= n || !std::isfinite(static_cast<double>(p[target])))
        return false;
    int above = 0;
    for (std::size_t j = 0; j < n; ++j)
        above += p[j] > p[target];
    return above < k;
}

/// Averages `per_position` (n_pos values, batch-major) into one value per sample.
void positions_to_samples(std::vector<double>& v, std::size_t batch)
{
    if (batch == 0 || v.size() == batch)
        return;
    const std::size_t per = v.size() / batch;
    for (std::size_t i = 0; i < batch; ++i) {
        double s = 0;
        for (std::size_t j = 0; j < per; ++j)
            s += v[i * per + j];
        v[i] = s / static_cast<double>(per);
    }
    v.resize(batch);
}

/// Integer class index stored as T; -1 when it is not a whole number in range.
template <class T>
long class_index(T v, std::size_t classes)
{
    const double d = static_cast<double>(v);
    if (!(d >= 0) || d != std::floor(d) || d >= static_cast<double>(classes))
        return -1;
    return static_cast<long>(d);
}

} // namespace

template <class T>
json Metric<T>::get_config() const
{
    return json{ { "name", m_name }, { "dtype", dtype_name<T>() } };
}

template <class T>
void Mean<T>::update_values(const array_t<T>& values, const array_t<T>* sample_weight)
{
    const std::size_t batch = values.dimension() == 0 ? 1 : values.shape()[0];
    const std::size_t per = batch ? values.size() / batch : 0;
    if (sample_weight && sample_weight->size() != batch)
        throw ShapeError("metric '" + this->name() + "': sample_weight has shape " +
                         shape_str(shape_of(*sample_weight)) + " but the values have " + std::to_string(batch) +
                         " samples (shape " + shape_str(shape_of(values)) + ")");
    const T* v = values.data();
    for (std::size_t i = 0; i < batch; ++i) {
        double s = 0;
        for (std::size_t j = 0; j < per; ++j)
            s += static_cast<double>(v[i * per + j]);
        const double w = sample_weight ? static_cast<double>(sample_weight->data()[i]) : 1.0;
        m_total += (per ? s / static_cast<double>(per) : 0.0) * w;
        m_count += w;
    }
}

template <class T>
void Mean<T>::update_state(const array_t<T>&, const array_t<T>&, const array_t<T>*)
{
    throw NotImplementedError("metric '" + this->name() +
                              "' (Mean) averages values, not (y_true, y_pred): call update_values(values, "
                              "sample_weight) or update(value, weight)");
}

template <class T>
void MeanMetricWrapper<T>::update_state(const array_t<T>& y_true, const array_t<T>& y_pred,
                                        const array_t<T>* sample_weight)
{
    const std::size_t batch = batch_of(shape_of(y_pred));
    if (batch_of(shape_of(y_true)) != batch)
        throw ShapeError("metric '" + this->name() + "': y_true has shape " + shape_str(shape_of(y_true)) +
                         " but y_pred has shape " + shape_str(shape_of(y_pred)) + " (different batch sizes)");
    if (sample_weight && sample_weight->size() != batch)
        throw ShapeError("metric '" + this->name() + "': sample_weight has shape " +
                         shape_str(shape_of(*sample_weight)) + ", expected (" + std::to_string(batch) + ",)");
    m_values.clear();
    sample_values(y_true, y_pred, m_values);
    positions_to_samples(m_values, batch);
    for (std::size_t i = 0; i < m_values.size(); ++i) {
        const double w = sample_weight ? static_cast<double>(sample_weight->data()[i]) : 1.0;
        this->m_total += m_values[i] * w;
        this->m_count += w;
    }
}

template <class T>
void Accuracy<T>::sample_values(const array_t<T>& y_true, const array_t<T>& y_pred, std::vector<double>& out) const
{
    same_rank_shape(this->name(), shape_of(y_true), shape_of(y_pred));
    const T* a = y_true.data();
    const T* b = y_pred.data();
    for (std::size_t i = 0; i < y_pred.size(); ++i)
        out.push_back(a[i] == b[i] ? 1.0 : 0.0);
}

template <class T>
BinaryAccuracy<T>::BinaryAccuracy(std::string name, double threshold)
    : MeanMetricWrapper<T>(std::move(name))
    , m_threshold(threshold)
{
    if (!(threshold > 0 && threshold < 1))
        throw ValueError("Invalid value for argument `threshold`. Expected a value in interval (0, 1). Received: "
                         "threshold=" +
                         std::to_string(threshold));
}

template <class T>
json BinaryAccuracy<T>::get_config() const
{
    json c = Metric<T>::get_config();
    c["threshold"] = m_threshold;
    return c;
}

template <class T>
void BinaryAccuracy<T>::sample_values(const array_t<T>& y_true, const array_t<T>& y_pred,
                                      std::vector<double>& out) const
{
    same_rank_shape(this->name(), shape_of(y_true), shape_of(y_pred));
    const T thr = static_cast<T>(m_threshold);
    const T* a = y_true.data();
    const T* b = y_pred.data();
    for (std::size_t i = 0; i < y_pred.size(); ++i)
        out.push_back(a[i] == (b[i] > thr ? T(1) : T(0)) ? 1.0 : 0.0);
}

template <class T>
void CategoricalAccuracy<T>::sample_values(const array_t<T>& y_true, const array_t<T>& y_pred,
                                           std::vector<double>& out) const
{
    if (shape_of(y_true) != shape_of(y_pred) || y_pred.dimension() == 0)
        throw ShapeError("metric '" + this->name() + "': expected one-hot y_true of y_pred's shape " +
                         shape_str(shape_of(y_pred)) + ", got " + shape_str(shape_of(y_true)));
    const std::size_t c = y_pred.shape().back(), rows = c ? y_pred.size() / c : 0;
    for (std::size_t r = 0; r < rows; ++r)
        out.push_back(argmax(y_true.data() + r * c, c) == argmax(y_pred.data() + r * c, c) ? 1.0 : 0.0);
}

namespace {
/// Rows of y_pred (..., C) against class indices y_true of shape (...) or (..., 1).
template <class T>
std::size_t sparse_rows(const std::string& metric, const array_t<T>& y_true, const array_t<T>& y_pred)
{
    shape_t st = shape_of(y_true), sp = shape_of(y_pred);
    if (sp.empty())
        throw ShapeError("metric '" + metric + "': y_pred must have a class axis, got shape " + shape_str(sp));
    if (st.size() == sp.size() && st.back() == 1)
        st.pop_back();
    sp.pop_back();
    if (st != sp)
        throw ShapeError("metric '" + metric + "': class indices y_true of shape " + shape_str(shape_of(y_true)) +
                         " do not match y_pred of shape " + shape_str(shape_of(y_pred)));
    return shape_size(sp);
}
} // namespace

template <class T>
void SparseCategoricalAccuracy<T>::sample_values(const array_t<T>& y_true, const array_t<T>& y_pred,
                                                 std::vector<double>& out) const
{
    const std::size_t rows = sparse_rows(this->name(), y_true, y_pred);
    const std::size_t c = y_pred.shape().back();
    for (std::size_t r = 0; r < rows; ++r) {
        // Keras casts argmax to y_true's dtype and compares: a non-integer label never matches.
        const double label = static_cast<double>(y_true.data()[r]);
        out.push_back(label == static_cast<double>(argmax(y_pred.data() + r * c, c)) ? 1.0 : 0.0);
    }
}

template <class T>
TopKCategoricalAccuracy<T>::TopKCategoricalAccuracy(int k, std::string name)
    : MeanMetricWrapper<T>(std::move(name))
    , m_k(k)
{
}

template <class T>
json TopKCategoricalAccuracy<T>::get_config() const
{
    json c = Metric<T>::get_config();
    c["k"] = m_k;
    return c;
}

template <class T>
void TopKCategoricalAccuracy<T>::sample_values(const array_t<T>& y_true, const array_t<T>& y_pred,
                                               std::vector<double>& out) const
{
    if (shape_of(y_true) != shape_of(y_pred) || y_pred.dimension() == 0)
        throw ShapeError("metric '" + this->name() + "': expected one-hot y_true of y_pred's shape " +
                         shape_str(shape_of(y_pred)) + ", got " + shape_str(shape_of(y_true)));
    const std::size_t c = y_pred.shape().back(), rows = c ? y_pred.size() / c : 0;
    for (std::size_t r = 0; r < rows; ++r)
        out.push_back(in_top_k(y_pred.data() + r * c, c, argmax(y_true.data() + r * c, c), m_k) ? 1.0 : 0.0);
}

template <class T>
SparseTopKCategoricalAccuracy<T>::SparseTopKCategoricalAccuracy(int k, std::string name)
    : MeanMetricWrapper<T>(std::move(name))
    , m_k(k)
{
}

template <class T>
json SparseTopKCategoricalAccuracy<T>::get_config() const
{
    json c = Metric<T>::get_config();
    c["k"] = m_k;
    return c;
}

template <class T>
void SparseTopKCategoricalAccuracy<T>::sample_values(const array_t<T>& y_true, const array_t<T>& y_pred,
                                                     std::vector<double>& out) const
{
    const std::size_t rows = sparse_rows(this->name(), y_true, y_pred);
    const std::size_t c = y_pred.shape().back();
    for (std::size_t r = 0; r < rows; ++r) {
        const long label = class_index(y_true.data()[r], c);
        const bool hit = label >= 0 && in_top_k(y_pred.data() + r * c, c, static_cast<std::size_t>(label), m_k);
        out.push_back(hit ? 1.0 : 0.0);
    }
}

template <class T>
void MeanAbsoluteError<T>::sample_values(const array_t<T>& y_true, const array_t<T>& y_pred,
                                         std::vector<double>& out) const
{
    same_rank_shape(this->name(), shape_of(y_true), shape_of(y_pred));
    const T* a = y_true.data();
    const T* b = y_pred.data();
    for (std::size_t i = 0; i < y_pred.size(); ++i)
        out.push_back(std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
}

template <class T>
void MeanSquaredError<T>::sample_values(const array_t<T>& y_true, const array_t<T>& y_pred,
                                        std::vector<double>& out) const
{
    same_rank_shape(this->name(), shape_of(y_true), shape_of(y_pred));
    const T* a = y_true.data();
    const T* b = y_pred.data();
    for (std::size_t i = 0; i < y_pred.size(); ++i) {
        const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        out.push_back(d * d);
    }
}

// ---- AUC ---------------------------------------------------------------------------------------

namespace {

constexpr double auc_epsilon = 1e-7; // Keras's backend.epsilon()

double divide_no_nan(double a, double b) { return b == 0 ? 0.0 : a / b; }

std::string auc_curve(const std::string& c)
{
    if (c == "ROC" || c == "roc")
        return "ROC";
    if (c == "PR" || c == "pr")
        return "PR";
    if (c == "PRGAIN" || c == "prgain")
        return "PRGAIN";
    throw ValueError("Invalid AUC curve value \"" + c + "\". Expected values are [\"ROC\", \"PR\", \"PRGAIN\"]");
}

std::string auc_summation(const std::string& m)
{
    for (const char* k : { "interpolation", "majoring", "minoring" }) {
        std::string cap = k;
        cap[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(cap[0])));
        if (m == k || m == cap)
            return k;
    }
    throw ValueError("Invalid AUC summation method value \"" + m +
                     "\". Expected values are [\"interpolation\", \"majoring\", \"minoring\"]");
}

/// np.allclose(t, arange(n) / (n - 1), atol=1e-7) for t = [0] + thresholds + [1] (Keras's
/// is_evenly_distributed_thresholds; the arange is float32 there).
bool evenly_distributed(const std::vector<double>& inner)
{
    std::vector<double> t{ 0.0 };
    t.insert(t.end(), inner.begin(), inner.end());
    t.push_back(1.0);
    const std::size_t n = t.size();
    if (n < 3)
        return false;
    for (std::size_t i = 0; i < n; ++i) {
        const double even = static_cast<double>(static_cast<float>(i) / static_cast<float>(n - 1));
        if (!(std::abs(t[i] - even) <= auc_epsilon + 1e-5 * std::abs(even)))
            return false;
    }
    return true;
}

} // namespace

template <class T>
AUC<T>::AUC(int num_thresholds, std::string curve, std::string summation_method, std::string name,
            std::vector<double> thresholds, bool from_logits)
    : Metric<T>(std::move(name))
    , m_curve(auc_curve(curve))
    , m_summation(auc_summation(summation_method))
    , m_init_from_thresholds(!thresholds.empty())
    , m_from_logits(from_logits)
{
    if (m_init_from_thresholds) {
        std::sort(thresholds.begin(), thresholds.end());
        m_evenly = evenly_distributed(thresholds);
    } else {
        if (num_thresholds <= 1)
            throw ValueError("Argument `num_thresholds` must be an integer > 1. Received: num_thresholds=" +
                             std::to_string(num_thresholds));
        for (int i = 0; i < num_thresholds - 2; ++i)
            thresholds.push_back((i + 1) * 1.0 / (num_thresholds - 1));
        m_evenly = true;
    }
    m_thresholds.push_back(0.0 - auc_epsilon);
    m_thresholds.insert(m_thresholds.end(), thresholds.begin(), thresholds.end());
    m_thresholds.push_back(1.0 + auc_epsilon);
    reset_state();
}

template <class T>
void AUC<T>::reset_state()
{
    const std::size_t n = m_thresholds.size();
    m_tp.assign(n, 0.0);
    m_fp.assign(n, 0.0);
    m_tn.assign(n, 0.0);
    m_fn.assign(n, 0.0);
}

template <class T>
void AUC<T>::update_state(const array_t<T>& y_true, const array_t<T>& y_pred, const array_t<T>* sample_weight)
{
    same_rank_shape(this->name(), shape_of(y_true), shape_of(y_pred));
    const std::size_t count = y_pred.size(), batch = batch_of(shape_of(y_pred));
    const std::size_t per_sample = batch ? count / batch : 0;
    if (sample_weight && sample_weight->size() != batch && sample_weight->size() != count)
        throw ShapeError("metric '" + this->name() + "': sample_weight of shape " + shape_str(shape_of(*sample_weight)) +
                         " fits neither the batch nor y_pred of shape " + shape_str(shape_of(y_pred)));
    const bool per_element = sample_weight && sample_weight->size() == count && count != batch;
    const std::size_t n = m_thresholds.size();
    std::vector<double> tp(n, 0.0), fp(n, 0.0);
    double total_true = 0, total_false = 0;
    for (std::size_t i = 0; i < count; ++i) {
        T p = y_pred.data()[i];
        if (m_from_logits)
            p = static_cast<T>(1) / (static_cast<T>(1) + std::exp(-p));
        p = std::min(std::max(p, T(0)), T(1)); // Keras clips too
        const double w = !sample_weight ? 1.0
                         : per_element  ? static_cast<double>(sample_weight->data()[i])
                                        : static_cast<double>(sample_weight->data()[i / per_sample]);
        const bool positive = y_true.data()[i] != T(0);
        (positive ? total_true : total_false) += w;
        std::vector<double>& v = positive ? tp : fp;
        if (m_evenly) {
            // Keras's _update_confusion_matrix_variables_optimized: p lands in bucket
            // ceil(p (n - 1)) - 1 (0 for p = 0, the first threshold being below 0), and counts
            // for every threshold up to its bucket (a reverse cumulative sum below).
            const T scaled = std::ceil(p * static_cast<T>(n - 1)) - T(1);
            const std::size_t bucket = scaled > T(0) ? static_cast<std::size_t>(scaled) : 0;
            v[std::min(bucket, n - 1)] += w;
        } else {
            for (std::size_t t = 0; t < n; ++t)
                if (p > static_cast<T>(m_thresholds[t]))
                    v[t] += w;
        }
    }
    if (m_evenly)
        for (std::size_t t = n - 1; t-- > 0;) {
            tp[t] += tp[t + 1];
            fp[t] += fp[t + 1];
        }
    for (std::size_t t = 0; t < n; ++t) {
        m_tp[t] += tp[t];
        m_fp[t] += fp[t];
        m_tn[t] += total_false - fp[t];
        m_fn[t] += total_true - tp[t];
    }
}

template <class T>
double AUC<T>::interpolate_pr_auc() const
{
    // Davis & Goadrich 2006, in Keras's closed form: TP and P = TP + FP vary linearly between
    // neighbouring thresholds; the precision integral over each interval is
    // slope * (dTP + intercept * log(P_A / P_B)) / (TP_B + FN_B).
    const std::size_t n = m_thresholds.size();
    double auc = 0;
    for (std::size_t i = 0; i + 1 < n; ++i) {
        const double dtp = m_tp[i] - m_tp[i + 1];
        const double pa = m_tp[i] + m_fp[i], pb = m_tp[i + 1] + m_fp[i + 1];
        const double slope = divide_no_nan(dtp, std::max(pa - pb, 0.0));
        const double intercept = m_tp[i + 1] - slope * pb;
        const double ratio = pa > 0 && pb > 0 ? divide_no_nan(pa, std::max(pb, 0.0)) : 1.0;
        auc += divide_no_nan(slope * (dtp + intercept * std::log(ratio)), std::max(m_tp[i + 1] + m_fn[i + 1], 0.0));
    }
    return auc;
}

template <class T>
double AUC<T>::result() const
{
    if (m_curve == "PR" && m_summation == "interpolation")
        return interpolate_pr_auc();
    const std::size_t n = m_thresholds.size();
    std::vector<double> x(n), y(n);
    for (std::size_t i = 0; i < n; ++i) {
        const double recall = divide_no_nan(m_tp[i], m_tp[i] + m_fn[i]);
        if (m_curve == "ROC") {
            x[i] = divide_no_nan(m_fp[i], m_fp[i] + m_tn[i]);
            y[i] = recall;
        } else if (m_curve == "PR") {
            x[i] = recall;
            y[i] = divide_no_nan(m_tp[i], m_tp[i] + m_fp[i]);
        } else { // PRGAIN, with Keras's fixes for no true positives and negative gains
            const double scale = divide_no_nan(m_tp[i] + m_fn[i], m_tn[i] + m_fp[i]);
            double recall_gain = 1.0 - scale * divide_no_nan(m_fn[i], m_tp[i]);
            double precision_gain = 1.0 - scale * divide_no_nan(m_fp[i], m_tp[i]);
            if (m_tp[i] == 0) {
                recall_gain = 0;
                precision_gain = 1;
            }
            x[i] = std::max(recall_gain, 0.0);
            y[i] = precision_gain;
        }
    }
    double auc = 0;
    for (std::size_t i = 0; i + 1 < n; ++i) {
        const double h = m_summation == "interpolation" ? (y[i] + y[i + 1]) / 2.0
                         : m_summation == "minoring"    ? std::min(y[i], y[i + 1])
                                                        : std::max(y[i], y[i + 1]);
        auc += (x[i] - x[i + 1]) * h;
    }
    return auc;
}

template <class T>
json AUC<T>::get_config() const
{
    json c = Metric<T>::get_config();
    c["num_thresholds"] = num_thresholds();
    c["curve"] = m_curve;
    c["summation_method"] = m_summation;
    c["multi_label"] = false;
    c["num_labels"] = nullptr;
    c["label_weights"] = nullptr;
    c["from_logits"] = m_from_logits;
    if (m_init_from_thresholds)
        c["thresholds"] = std::vector<double>(m_thresholds.begin() + 1, m_thresholds.end() - 1);
    return c;
}

namespace {

/// Keras's NEG_INF: what top_k filtering writes over the predictions it drops.
constexpr double keras_neg_inf = -1e10;

} // namespace

template <class T>
ConfusionMetric<T>::ConfusionMetric(std::string name, std::vector<double> thresholds, std::optional<int> top_k,
                                    std::optional<int> class_id)
    : Metric<T>(std::move(name))
    , m_top_k(top_k)
    , m_class_id(class_id)
{
    std::string invalid;
    for (double t : thresholds)
        if (!(t >= 0 && t <= 1))
            invalid += (invalid.empty() ? "" : ", ") + json(t).dump();
    if (!invalid.empty())
        throw ValueError("Threshold values must be in [0, 1]. Received: [" + invalid + "] (metric '" +
                         this->name() + "')");
    if (thresholds.size() > 1)
        throw NotImplementedError("metric '" + this->name() + "': " + std::to_string(thresholds.size()) +
                                  " thresholds; xtape's Precision and Recall take one (Keras returns one value per "
                                  "threshold, a vector, where xtape's metrics return a number)");
    if (top_k && *top_k <= 0)
        throw ValueError("metric '" + this->name() + "': top_k must be a positive integer, received " +
                         std::to_string(*top_k));
    if (class_id && *class_id < 0)
        throw ValueError("metric '" + this->name() + "': class_id must be a class index >= 0, received " +
                         std::to_string(*class_id));
    m_init_thresholds = thresholds.empty() ? json(nullptr) : json(thresholds[0]);
    m_threshold = !thresholds.empty() ? thresholds[0] : top_k ? keras_neg_inf : 0.5;
}

template <class T>
void ConfusionMetric<T>::update_state(const array_t<T>& y_true, const array_t<T>& y_pred,
                                      const array_t<T>* sample_weight)
{
    const shape_t sp = shape_of(y_pred);
    same_rank_shape(this->name(), shape_of(y_true), sp);
    const std::size_t count = y_pred.size(), batch = batch_of(sp);
    if (sample_weight && sample_weight->size() != batch)
        throw ShapeError("metric '" + this->name() + "': sample_weight has shape " +
                         shape_str(shape_of(*sample_weight)) + ", expected (" + std::to_string(batch) + ",)");
    if (count == 0)
        return;
    // Keras's top_k and class index work on the last axis; a rank-1 y_pred is one row.
    const std::size_t classes = sp.empty() ? 1 : sp.back(), rows = count / classes, per_sample = count / batch;
    if (m_class_id) {
        if (sp.size() < 2)
            throw ValueError("metric '" + this->name() +
                             "': When class_id is provided, y_pred must be a 2D array with shape (num_samples, "
                             "num_classes), found shape: " + shape_str(sp));
        if (static_cast<std::size_t>(*m_class_id) >= classes)
            throw ValueError("metric '" + this->name() + "': class_id " + std::to_string(*m_class_id) +
                             " is not below the " + std::to_string(classes) + " classes of y_pred " + shape_str(sp));
    }
    const T threshold = static_cast<T>(m_threshold), dropped = static_cast<T>(keras_neg_inf);
    const std::size_t k = m_top_k ? std::min<std::size_t>(static_cast<std::size_t>(*m_top_k), classes) : classes;
    const std::size_t first = m_class_id ? static_cast<std::size_t>(*m_class_id) : 0;
    const std::size_t last = m_class_id ? first + 1 : classes;
    for (std::size_t r = 0; r < rows; ++r) {
        const T* p = y_pred.data() + r * classes;
        const T* t = y_true.data() + r * classes;
        // top_k keeps the k largest of the row, the lower index first among equal values.
        T kth = dropped;
        std::size_t kth_index = classes;
        if (m_top_k) {
            m_order.resize(classes);
            for (std::size_t j = 0; j < classes; ++j)
                m_order[j] = j;
            std::nth_element(m_order.begin(), m_order.begin() + static_cast<std::ptrdiff_t>(k - 1), m_order.end(),
                             [p](std::size_t a, std::size_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
            kth_index = m_order[k - 1];
            kth = p[kth_index];
        }
        for (std::size_t j = first; j < last; ++j) {
            const bool kept = !m_top_k || p[j] > kth || (p[j] == kth && j <= kth_index);
            const bool predicted = (kept ? p[j] : dropped) > threshold;
            const bool positive = t[j] != T(0);
            const double w = sample_weight ? static_cast<double>(sample_weight->data()[(r * classes + j) / per_sample])
                                           : 1.0;
            if (predicted && positive)
                m_tp += w;
            else if (predicted)
                m_fp += w;
            else if (positive)
                m_fn += w;
        }
    }
}

template <class T>
json ConfusionMetric<T>::get_config() const
{
    json c = Metric<T>::get_config();
    c["thresholds"] = m_init_thresholds;
    c["top_k"] = m_top_k ? json(*m_top_k) : json(nullptr);
    c["class_id"] = m_class_id ? json(*m_class_id) : json(nullptr);
    return c;
}

template <class T>
double Precision<T>::result() const
{
    return divide_no_nan(this->m_tp, this->m_tp + this->m_fp);
}

template <class T>
double Recall<T>::result() const
{
    return divide_no_nan(this->m_tp, this->m_tp + this->m_fn);
}

namespace {

/// Precision's and Recall's arguments from a Keras config: thresholds null, a number or a list.
template <class M>
std::shared_ptr<M> confusion_metric_from_config(const json& config, const std::string& default_name)
{
    std::vector<double> thresholds;
    if (config.contains("thresholds") && !config["thresholds"].is_null()) {
        const json& t = config["thresholds"];
        if (t.is_number())
            thresholds.push_back(t.get<double>());
        else if (t.is_array() && std::all_of(t.begin(), t.end(), [](const json& v) { return v.is_number(); }))
            thresholds = t.get<std::vector<double>>();
        else
            throw ValueError(default_name + ": thresholds must be a number or a list of numbers, got " + t.dump());
    }
    auto optional_int = [&](const char* key) -> std::optional<int> {
        if (!config.contains(key) || config[key].is_null())
            return std::nullopt;
        if (!config[key].is_number_integer())
            throw ValueError(default_name + ": " + key + " must be an integer or null, got " + config[key].dump());
        return config[key].get<int>();
    };
    return std::make_shared<M>(thresholds, optional_int("top_k"), optional_int("class_id"),
                               config_string(config, "name", default_name));
}

template <class T>
MetricPtr<T> auc_from_config(const json& config)
{
    if (config_bool(config, "multi_label", false))
        throw NotImplementedError("AUC: multi_label=True is not supported by xtape (one label, flattened)");
    if (config.contains("label_weights") && !config["label_weights"].is_null())
        throw NotImplementedError("AUC: label_weights are not supported by xtape");
    std::vector<double> thresholds;
    if (config.contains("thresholds") && !config["thresholds"].is_null()) {
        const json& t = config["thresholds"];
        if (t.is_number())
            thresholds.push_back(t.get<double>());
        else if (t.is_array())
            for (const auto& v : t)
                thresholds.push_back(v.get<double>());
        else
            throw ValueError("AUC: thresholds must be a number or a list of numbers, got " + t.dump());
    }
    return std::make_shared<AUC<T>>(static_cast<int>(config_number(config, "num_thresholds", 200)),
                                    config_string(config, "curve", "ROC"),
                                    config_string(config, "summation_method", "interpolation"), "auc", thresholds,
                                    config_bool(config, "from_logits", false));
}

template <class T>
MetricPtr<T> metric_by_name(const std::string& id, const json& config)
{
    const std::string name = config_string(config, "name", "");
    auto named = [&](MetricPtr<T> m) {
        if (!name.empty())
            m->set_name(name);
        return m;
    };
    const int k = static_cast<int>(config_number(config, "k", 5));
    if (id == "accuracy" || id == "acc" || id == "Accuracy")
        return named(std::make_shared<Accuracy<T>>());
    if (id == "binary_accuracy" || id == "BinaryAccuracy")
        return named(std::make_shared<BinaryAccuracy<T>>("binary_accuracy", config_number(config, "threshold", 0.5)));
    if (id == "categorical_accuracy" || id == "CategoricalAccuracy")
        return named(std::make_shared<CategoricalAccuracy<T>>());
    if (id == "sparse_categorical_accuracy" || id == "SparseCategoricalAccuracy")
        return named(std::make_shared<SparseCategoricalAccuracy<T>>());
    if (id == "top_k_categorical_accuracy" || id == "TopKCategoricalAccuracy")
        return named(std::make_shared<TopKCategoricalAccuracy<T>>(k));
    if (id == "sparse_top_k_categorical_accuracy" || id == "SparseTopKCategoricalAccuracy")
        return named(std::make_shared<SparseTopKCategoricalAccuracy<T>>(k));
    if (id == "mae" || id == "MAE" || id == "mean_absolute_error" || id == "MeanAbsoluteError")
        return named(std::make_shared<MeanAbsoluteError<T>>());
    if (id == "mse" || id == "MSE" || id == "mean_squared_error" || id == "MeanSquaredError")
        return named(std::make_shared<MeanSquaredError<T>>());
    if (id == "auc" || id == "AUC")
        return named(auc_from_config<T>(config));
    if (id == "precision" || id == "Precision")
        return named(confusion_metric_from_config<Precision<T>>(config, "precision"));
    if (id == "recall" || id == "Recall")
        return named(confusion_metric_from_config<Recall<T>>(config, "recall"));
    throw KeyError("Could not interpret metric identifier: '" + id +
                   "'. xtape knows accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy, "
                   "top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, mae, mse, auc, precision, recall");
}

} // namespace

template <class T>
MetricPtr<T> get_metric(const json& spec)
{
    if (spec.is_string()) {
        const std::string id = spec.get<std::string>();
        MetricPtr<T> m = metric_by_name<T>(id, json::object());
        m->set_name(id); // Keras names a metric given as a string by that string
        return m;
    }
    if (spec.is_object() && spec.contains("class_name") && spec["class_name"].is_string()) {
        const json config = spec.contains("config") && spec["config"].is_object() ? spec["config"] : json::object();
        return metric_by_name<T>(spec["class_name"].get<std::string>(), config);
    }
    throw ValueError("Could not interpret metric identifier: " + spec.dump());
}

template <class T>
MetricPtr<T> resolve_compile_metric(const json& spec, const shape_t& y_true_shape, const shape_t& y_pred_shape)
{
    if (!spec.is_string())
        return get_metric<T>(spec);
    std::string id = spec.get<std::string>();
    std::string lower = id;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower != "accuracy" && lower != "acc")
        return get_metric<T>(spec);
    const std::size_t rt = y_true_shape.size(), rp = y_pred_shape.size();
    const std::size_t lt = rt ? y_true_shape.back() : 1, lp = rp ? y_pred_shape.back() : 1;
    MetricPtr<T> m;
    if (lp == 1)
        m = std::make_shared<BinaryAccuracy<T>>(id);
    else if (rt < rp || (lt == 1 && lp > 1))
        m = std::make_shared<SparseCategoricalAccuracy<T>>(id);
    else
        m = std::make_shared<CategoricalAccuracy<T>>(id);
    return m;
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template class Metric<T>;                                                                                \
    template class Mean<T>;                                                                                  \
    template class MeanMetricWrapper<T>;                                                                     \
    template class Accuracy<T>;                                                                              \
    template class BinaryAccuracy<T>;                                                                        \
    template class CategoricalAccuracy<T>;                                                                   \
    template class SparseCategoricalAccuracy<T>;                                                             \
    template class TopKCategoricalAccuracy<T>;                                                               \
    template class SparseTopKCategoricalAccuracy<T>;                                                         \
    template class MeanAbsoluteError<T>;                                                                     \
    template class MeanSquaredError<T>;                                                                      \
    template class AUC<T>;                                                                                   \
    template class ConfusionMetric<T>;                                                                       \
    template class Precision<T>;                                                                             \
    template class Recall<T>;                                                                                \
    template MetricPtr<T> get_metric<T>(const json&);                                                        \
    template MetricPtr<T> resolve_compile_metric<T>(const json&, const shape_t&, const shape_t&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
