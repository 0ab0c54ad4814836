#include "framework/losses_api.hpp"

#include "framework/ops.hpp"

namespace xtape {

std::string standardize_reduction(const std::string& reduction)
{
    // tf.keras 2 wrote "auto", which meant sum_over_batch_size in every built-in training loop.
    if (reduction == "auto")
        return "sum_over_batch_size";
    if (reduction == "sum_over_batch_size" || reduction == "sum" || reduction == "none" || reduction == "mean" ||
        reduction == "mean_with_sample_weight")
        return reduction;
    throw ValueError("Invalid value for argument `reduction`. Expected one of {'sum_over_batch_size', 'sum', None, "
                     "'none', 'mean', 'mean_with_sample_weight'}. Received: reduction=" +
                     reduction);
}

namespace {

/// The sample weights as a tensor that broadcasts against `values` (one weight per sample).
template <class T>
Tensor<T> per_sample_weight(const Tensor<T>& values, const Tensor<T>& sw)
{
    const shape_t sv = values.shape(), ss = sw.shape();
    if (ss == sv)
        return sw;
    const std::size_t batch = sv.empty() ? 1 : sv[0];
    const bool per_sample = (ss.size() == 1 && ss[0] == batch) || (ss.size() == 2 && ss[0] == batch && ss[1] == 1);
    if (!per_sample || sv.empty())
        throw ShapeError("loss: sample_weight of shape " + shape_str(ss) + " does not fit per-sample losses of shape " +
                         shape_str(sv) + " (expected (" + std::to_string(batch) + ",) or the losses' shape)");
    shape_t s(sv.size(), 1);
    s[0] = batch;
    array_t<T> w = array_t<T>::from_shape(s);
    std::copy(sw.data(), sw.data() + batch, w.data());
    return Tensor<T>(std::move(w));
}

} // namespace

template <class T>
Tensor<T> reduce_weighted_values(const Tensor<T>& values, const Tensor<T>& sample_weight, const std::string& reduction_in)
{
    const std::string reduction = standardize_reduction(reduction_in);
    Tensor<T> v = values;
    if (sample_weight.defined())
        v = mul(values, per_sample_weight(values, sample_weight));
    if (reduction == "none" || v.dim() == 0)
        return v;
    if (v.size() == 0) // Keras's divide_no_nan over an empty batch
        return Tensor<T>::scalar(T(0));
    if (reduction == "sum")
        return sum(v);
    if (reduction == "mean_with_sample_weight" && sample_weight.defined()) {
        double wsum = 0;
        for (std::size_t i = 0; i < sample_weight.size(); ++i)
            wsum += static_cast<double>(sample_weight.data()[i]);
        return mul_scalar(sum(v), wsum == 0 ? T(0) : static_cast<T>(1.0 / wsum));
    }
    // sum_over_batch_size and mean: sum(loss * w) / number of elements, weights or not.
    return mean(v);
}

template <class T>
Loss<T>::Loss(std::string name, std::string reduction)
    : m_name(std::move(name))
    , m_reduction(standardize_reduction(reduction))
{
}

template <class T>
Tensor<T> Loss<T>::operator()(const Tensor<T>& y_true, const Tensor<T>& y_pred, const Tensor<T>& sample_weight) const
{
    return reduce_weighted_values(call(y_true, y_pred), sample_weight, m_reduction);
}

template <class T>
json Loss<T>::get_config() const
{
    return json{ { "name", m_name }, { "reduction", m_reduction } };
}

template <class T>
Tensor<T> MeanSquaredErrorLoss<T>::call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const
{
    return mean_squared_error(y_true, y_pred);
}

template <class T>
Tensor<T> MeanAbsoluteErrorLoss<T>::call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const
{
    return mean_absolute_error(y_true, y_pred);
}

template <class T>
Tensor<T> KLDivergence<T>::call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const
{
    return kl_divergence(y_true, y_pred);
}

template <class T>
BinaryCrossentropy<T>::BinaryCrossentropy(bool from_logits, double label_smoothing, std::string name,
                                          std::string reduction)
    : Loss<T>(std::move(name), std::move(reduction))
    , m_from_logits(from_logits)
    , m_label_smoothing(label_smoothing)
{
}

template <class T>
Tensor<T> BinaryCrossentropy<T>::call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const
{
    Tensor<T> y = y_true;
    if (m_label_smoothing != 0)
        y = add_scalar(mul_scalar(y_true, static_cast<T>(1 - m_label_smoothing)), static_cast<T>(0.5 * m_label_smoothing));
    return binary_crossentropy(y, y_pred, m_from_logits);
}

template <class T>
json BinaryCrossentropy<T>::get_config() const
{
    json c = Loss<T>::get_config();
    c["from_logits"] = m_from_logits;
    c["label_smoothing"] = m_label_smoothing;
    c["axis"] = -1;
    return c;
}

template <class T>
CategoricalCrossentropy<T>::CategoricalCrossentropy(bool from_logits, double label_smoothing, int axis,
                                                    std::string name, std::string reduction)
    : Loss<T>(std::move(name), std::move(reduction))
    , m_from_logits(from_logits)
    , m_label_smoothing(label_smoothing)
    , m_axis(axis)
{
}

template <class T>
Tensor<T> CategoricalCrossentropy<T>::call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const
{
    Tensor<T> y = y_true;
    if (m_label_smoothing != 0 && y_pred.dim() > 0) {
        const int rank = static_cast<int>(y_pred.dim());
        const int ax = m_axis < 0 ? m_axis + rank : m_axis;
        if (ax < 0 || ax >= rank)
            throw ValueError(this->name() + ": axis " + std::to_string(m_axis) + " is out of range for y_pred of shape " +
                             shape_str(y_pred.shape()));
        const double classes = static_cast<double>(y_pred.shape()[static_cast<std::size_t>(ax)]);
        y = add_scalar(mul_scalar(y_true, static_cast<T>(1 - m_label_smoothing)),
                       static_cast<T>(m_label_smoothing / classes));
    }
    return categorical_crossentropy(y, y_pred, m_from_logits, m_axis);
}

template <class T>
json CategoricalCrossentropy<T>::get_config() const
{
    json c = Loss<T>::get_config();
    c["from_logits"] = m_from_logits;
    c["label_smoothing"] = m_label_smoothing;
    c["axis"] = m_axis;
    return c;
}

template <class T>
SparseCategoricalCrossentropy<T>::SparseCategoricalCrossentropy(bool from_logits, std::string name,
                                                                std::string reduction)
    : Loss<T>(std::move(name), std::move(reduction))
    , m_from_logits(from_logits)
{
}

template <class T>
Tensor<T> SparseCategoricalCrossentropy<T>::call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const
{
    return sparse_categorical_crossentropy(y_true, y_pred, m_from_logits);
}

template <class T>
json SparseCategoricalCrossentropy<T>::get_config() const
{
    json c = Loss<T>::get_config();
    c["from_logits"] = m_from_logits;
    c["ignore_class"] = nullptr;
    return c;
}

template <class T>
Huber<T>::Huber(double delta, std::string name, std::string reduction)
    : Loss<T>(std::move(name), std::move(reduction))
    , m_delta(delta)
{
}

template <class T>
Tensor<T> Huber<T>::call(const Tensor<T>& y_true, const Tensor<T>& y_pred) const
{
    return huber(y_true, y_pred, static_cast<T>(m_delta));
}

template <class T>
json Huber<T>::get_config() const
{
    json c = Loss<T>::get_config();
    c["delta"] = m_delta;
    return c;
}

namespace {

std::string reduction_from_config(const json& config)
{
    auto it = config.find("reduction");
    if (it == config.end())
        return "sum_over_batch_size";
    if (it->is_null())
        return "none";
    if (!it->is_string())
        throw ValueError("loss config key 'reduction': expected a string, got " + it->dump());
    return it->get<std::string>();
}

template <class T>
LossPtr<T> loss_by_name(const std::string& id, const json& config)
{
    // A loss given by its function name is named after the function (Keras 3 wraps the
    // function); a class gets its config's name or the class's default name.
    auto name_or = [&](const std::string& fallback) { return config_string(config, "name", fallback); };
    const std::string red = reduction_from_config(config);
    const bool logits = config_bool(config, "from_logits", false);
    const double smoothing = config_number(config, "label_smoothing", 0.0);
    if (id == "mse" || id == "MSE" || id == "mean_squared_error" || id == "MeanSquaredError")
        return std::make_shared<MeanSquaredErrorLoss<T>>(name_or("mean_squared_error"), red);
    if (id == "mae" || id == "MAE" || id == "mean_absolute_error" || id == "MeanAbsoluteError")
        return std::make_shared<MeanAbsoluteErrorLoss<T>>(name_or("mean_absolute_error"), red);
    if (id == "kld" || id == "KLD" || id == "kl_divergence" || id == "kullback_leibler_divergence" ||
        id == "KLDivergence")
        return std::make_shared<KLDivergence<T>>(name_or("kl_divergence"), red);
    if (id == "bce" || id == "BCE" || id == "binary_crossentropy" || id == "BinaryCrossentropy")
        return std::make_shared<BinaryCrossentropy<T>>(logits, smoothing, name_or("binary_crossentropy"), red);
    if (id == "categorical_crossentropy" || id == "CategoricalCrossentropy")
        return std::make_shared<CategoricalCrossentropy<T>>(logits, smoothing,
                                                            static_cast<int>(config_number(config, "axis", -1)),
                                                            name_or("categorical_crossentropy"), red);
    if (id == "sparse_categorical_crossentropy" || id == "SparseCategoricalCrossentropy") {
        auto ic = config.find("ignore_class");
        if (ic != config.end() && !ic->is_null())
            throw NotImplementedError("SparseCategoricalCrossentropy: ignore_class=" + ic->dump() +
                                      " is not implemented in xtape");
        return std::make_shared<SparseCategoricalCrossentropy<T>>(logits, name_or("sparse_categorical_crossentropy"),
                                                                  red);
    }
    if (id == "huber" || id == "huber_loss" || id == "Huber")
        return std::make_shared<Huber<T>>(config_number(config, "delta", 1.0), name_or("huber_loss"), red);
    throw KeyError("Could not interpret loss identifier: '" + id +
                   "'. xtape knows mean_squared_error (mse), mean_absolute_error (mae), binary_crossentropy, "
                   "categorical_crossentropy, sparse_categorical_crossentropy, huber, kl_divergence (kld)");
}

} // namespace

template <class T>
LossPtr<T> get_loss(const json& spec)
{
    if (spec.is_string())
        return loss_by_name<T>(spec.get<std::string>(), json::object());
    if (spec.is_object() && spec.contains("class_name") && spec["class_name"].is_string()) {
        const std::string cls = spec["class_name"].get<std::string>();
        const json config = spec.contains("config") ? spec["config"] : json::object();
        // Keras 3 serializes a loss given as a function as {"class_name": "function", "config": "mse"}.
        if (cls == "function" && config.is_string())
            return loss_by_name<T>(config.get<std::string>(), json::object());
        return loss_by_name<T>(cls, config.is_object() ? config : json::object());
    }
    throw ValueError("Could not interpret loss identifier: " + spec.dump());
}

template <class T>
json serialize_loss(const Loss<T>& loss)
{
    return json{ { "module", "keras.losses" },
                 { "class_name", loss.class_name() },
                 { "config", loss.get_config() },
                 { "registered_name", nullptr } };
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> reduce_weighted_values<T>(const Tensor<T>&, const Tensor<T>&, const std::string&);    \
    template class Loss<T>;                                                                                  \
    template class MeanSquaredErrorLoss<T>;                                                                  \
    template class MeanAbsoluteErrorLoss<T>;                                                                 \
    template class KLDivergence<T>;                                                                          \
    template class BinaryCrossentropy<T>;                                                                    \
    template class CategoricalCrossentropy<T>;                                                               \
    template class SparseCategoricalCrossentropy<T>;                                                         \
    template class Huber<T>;                                                                                 \
    template LossPtr<T> get_loss<T>(const json&);                                                            \
    template json serialize_loss<T>(const Loss<T>&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
