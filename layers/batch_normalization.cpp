#include "layers/batch_normalization.hpp"

#include "layers/layer_config.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace xtape {
namespace {

/// A number as Python prints it in Keras's messages (0.5, not 0.500000).
std::string num(double v) { return json(v).dump(); }

std::string axis_str(const std::vector<int>& axis)
{
    if (axis.size() == 1)
        return std::to_string(axis[0]);
    std::string s = "[";
    for (std::size_t i = 0; i < axis.size(); ++i)
        s += (i ? ", " : "") + std::to_string(axis[i]);
    return s + "]";
}

/// Renorm's standard deviations start as the square root of the moving variance's initial value
/// (Keras 3 and tf.keras: moving_stddev_initializer).
template <class T>
class SqrtOf : public Initializer<T> {
public:
    explicit SqrtOf(InitializerPtr<T> inner)
        : m_inner(std::move(inner))
    {
    }
    array_t<T> operator()(const shape_t& shape) const override
    {
        array_t<T> v = (*m_inner)(shape);
        for (auto& e : v)
            e = std::sqrt(e);
        return v;
    }
    std::string class_name() const override { return "SqrtOf" + m_inner->class_name(); }
    json get_config() const override { return m_inner->get_config(); }

private:
    InitializerPtr<T> m_inner;
};

template <class T>
BatchNormalizationOptions<T> validated(BatchNormalizationOptions<T> o)
{
    if (o.axis.empty())
        throw ValueError("BatchNormalization: `axis` must name at least one axis. Received: axis=[]");
    if (!(o.momentum >= 0.0 && o.momentum <= 1.0))
        throw ValueError("`momentum` must be a float between [0, 1]. Received: momentum=" + num(o.momentum));
    if (!(o.epsilon >= 0.0) || !std::isfinite(o.epsilon))
        throw ValueError("`epsilon` must be a non-negative float. Received: epsilon=" + num(o.epsilon));
    if (!(o.renorm_momentum >= 0.0 && o.renorm_momentum <= 1.0))
        throw ValueError("`renorm_momentum` must be a float between [0, 1]. Received: renorm_momentum=" +
                         num(o.renorm_momentum));
    if (o.virtual_batch_size && *o.virtual_batch_size <= 0)
        throw ValueError("`virtual_batch_size` must be a positive integer that divides the true batch size of the "
                         "input tensor. Received: virtual_batch_size=" +
                         std::to_string(*o.virtual_batch_size));
    if (o.renorm) {
        if (!o.renorm_clipping)
            o.renorm_clipping = RenormClipping{}; // Keras: renorm_clipping or {}
        const RenormClipping& c = *o.renorm_clipping;
        if (c.rmax && c.rmin && *c.rmax < *c.rmin)
            throw ValueError("rmax should be greater than rmin in the `renorm_clipping` argument. Received: rmax=" +
                             num(*c.rmax) + ", rmin=" + num(*c.rmin) + ".");
        if (c.dmax && *c.dmax < 0)
            throw ValueError("dmax should be non-negative in the `renorm_clipping` argument. Received: dmax=" +
                             num(*c.dmax) + ".");
    }
    if (!o.beta_initializer)
        o.beta_initializer = get_initializer<T>("zeros");
    if (!o.gamma_initializer)
        o.gamma_initializer = get_initializer<T>("ones");
    if (!o.moving_mean_initializer)
        o.moving_mean_initializer = get_initializer<T>("zeros");
    if (!o.moving_variance_initializer)
        o.moving_variance_initializer = get_initializer<T>("ones");
    return o;
}

std::optional<double> clip_value(const json& c, const char* key)
{
    auto it = c.find(key);
    if (it == c.end() || it->is_null())
        return std::nullopt;
    if (!it->is_number())
        throw ValueError(std::string("`renorm_clipping` argument: expected a number for '") + key + "', got " +
                         it->dump());
    return it->get<double>();
}


} // namespace

template <class T>
BatchNormalization<T>::BatchNormalization(const BatchNormalizationOptions<T>& options)
    : Layer<T>("BatchNormalization", options.name, options.trainable)
    , m_options(validated(options))
    , m_workspace(std::make_shared<bn::Workspace<T>>())
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    m_spec.axes = m_options.axis;
    m_spec.epsilon = m_options.epsilon;
    m_spec.synchronized = m_options.synchronized;
    m_spec.virtual_batch_size =
        m_options.virtual_batch_size ? static_cast<std::size_t>(*m_options.virtual_batch_size) : 0;
}

template <class T>
BatchNormalization<T>::BatchNormalization(const json& config)
    : BatchNormalization(options_from_config(config))
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
}

template <class T>
BatchNormalizationOptions<T> BatchNormalization<T>::options_from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    BatchNormalizationOptions<T> o;
    o.name = a.name;
    o.trainable = a.trainable;
    // Keras 1: mode 0 is feature-wise normalization, the only one later Keras versions kept.
    note_config_key("mode");
    if (config.contains("mode") && !config["mode"].is_null()) {
        const double mode = config_number(config, "mode", 0);
        if (mode != 0)
            throw NotImplementedError("BatchNormalization: Keras 1 mode=" + num(mode) +
                                      (mode == 1 ? " (sample-wise normalization)" : " (per-batch statistics at test time)") +
                                      " is not implemented; only mode=0 (feature-wise) is");
    }
    if (config.contains("axis") && !config["axis"].is_null()) {
        const json& ax = config["axis"];
        o.axis.clear();
        auto as_int = [&](const json& v) {
            if (!v.is_number_integer())
                throw ValueError("Expected an int or a list/tuple of ints for the argument 'axis', but received: " +
                                 ax.dump());
            return config_integer_value<int>(v, "axis");
        };
        if (ax.is_array())
            for (const auto& v : ax)
                o.axis.push_back(as_int(v));
        else
            o.axis.push_back(as_int(ax));
    }
    o.momentum = config_number(config, "momentum", o.momentum);
    o.epsilon = config_number(config, "epsilon", o.epsilon);
    o.center = config_bool(config, "center", true);
    o.scale = config_bool(config, "scale", true);
    if (json j = config_first(config, { "beta_initializer", "beta_init" }); !j.is_null())
        o.beta_initializer = get_initializer<T>(j);
    if (json j = config_first(config, { "gamma_initializer", "gamma_init" }); !j.is_null())
        o.gamma_initializer = get_initializer<T>(j);
    if (json j = config_first(config, { "moving_mean_initializer" }); !j.is_null())
        o.moving_mean_initializer = get_initializer<T>(j);
    if (json j = config_first(config, { "moving_variance_initializer" }); !j.is_null())
        o.moving_variance_initializer = get_initializer<T>(j);
    o.beta_regularizer = get_regularizer<T>(config_first(config, { "beta_regularizer" }));
    o.gamma_regularizer = get_regularizer<T>(config_first(config, { "gamma_regularizer" }));
    o.beta_constraint = get_constraint<T>(config_first(config, { "beta_constraint" }));
    o.gamma_constraint = get_constraint<T>(config_first(config, { "gamma_constraint" }));
    o.synchronized = config_bool(config, "synchronized", false);
    o.renorm = config_bool(config, "renorm", false);
    o.renorm_momentum = config_number(config, "renorm_momentum", o.renorm_momentum);
    if (config.contains("renorm_clipping") && !config["renorm_clipping"].is_null()) {
        const json& c = config["renorm_clipping"];
        if (!c.is_object())
            throw ValueError("`renorm_clipping` argument: expected a dict with keys rmax, rmin, dmax, got " + c.dump());
        RenormClipping clip;
        clip.as_given = c;
        // Keras reads the bounds only with renorm (and checks the keys only then), so a layer
        // without renorm keeps whatever dict it was given.
        if (o.renorm) {
            for (auto it = c.begin(); it != c.end(); ++it)
                if (it.key() != "rmax" && it.key() != "rmin" && it.key() != "dmax")
                    throw ValueError("Received invalid keys for `renorm_clipping` argument: " + c.dump() +
                                     ". Supported values: ['rmax', 'rmin', 'dmax'].");
            clip.rmax = clip_value(c, "rmax");
            clip.rmin = clip_value(c, "rmin");
            clip.dmax = clip_value(c, "dmax");
        }
        o.renorm_clipping = clip;
    }
    if (config.contains("virtual_batch_size") && !config["virtual_batch_size"].is_null()) {
        const json& v = config["virtual_batch_size"];
        if (!v.is_number_integer())
            throw ValueError("`virtual_batch_size` must be a positive integer that divides the true batch size of "
                             "the input tensor. Received: virtual_batch_size=" +
                             v.dump());
        o.virtual_batch_size = config_integer_value<long>(v, "virtual_batch_size");
    }
    note_config_key("fused"); // tf.keras: picks an implementation, not a result
    note_config_key("adjustment");
    if (config.contains("adjustment") && !config["adjustment"].is_null())
        throw NotImplementedError("BatchNormalization: tf.keras's `adjustment` function cannot be read from a config");
    // "fused" (tf.keras) picks an implementation, not a result; "dtype" was checked above.
    return o;
}

template <class T>
std::shared_ptr<BatchNormalization<T>> BatchNormalization<T>::from_config(const json& config)
{
    return std::make_shared<BatchNormalization<T>>(options_from_config(config));
}

template <class T>
json BatchNormalization<T>::get_config() const
{
    const auto& o = m_options;
    json c = Layer<T>::get_config();
    if (o.axis.size() == 1)
        c["axis"] = o.axis[0];
    else
        c["axis"] = o.axis;
    c["momentum"] = o.momentum;
    c["epsilon"] = o.epsilon;
    c["center"] = o.center;
    c["scale"] = o.scale;
    c["beta_initializer"] = serialize<T>(o.beta_initializer);
    c["gamma_initializer"] = serialize<T>(o.gamma_initializer);
    c["moving_mean_initializer"] = serialize<T>(o.moving_mean_initializer);
    c["moving_variance_initializer"] = serialize<T>(o.moving_variance_initializer);
    c["beta_regularizer"] = serialize<T>(o.beta_regularizer);
    c["gamma_regularizer"] = serialize<T>(o.gamma_regularizer);
    c["beta_constraint"] = serialize<T>(o.beta_constraint);
    c["gamma_constraint"] = serialize<T>(o.gamma_constraint);
    c["synchronized"] = o.synchronized;
    c["renorm"] = o.renorm;
    if (o.renorm_clipping && o.renorm_clipping->as_given.is_object()) {
        c["renorm_clipping"] = o.renorm_clipping->as_given;
    } else if (o.renorm_clipping) {
        json clip = json::object();
        if (o.renorm_clipping->rmax)
            clip["rmax"] = *o.renorm_clipping->rmax;
        if (o.renorm_clipping->rmin)
            clip["rmin"] = *o.renorm_clipping->rmin;
        if (o.renorm_clipping->dmax)
            clip["dmax"] = *o.renorm_clipping->dmax;
        c["renorm_clipping"] = clip;
    } else {
        c["renorm_clipping"] = nullptr;
    }
    c["renorm_momentum"] = o.renorm_momentum;
    if (o.virtual_batch_size)
        c["virtual_batch_size"] = *o.virtual_batch_size;
    return c;
}

template <class T>
void BatchNormalization<T>::build(const dims_t& input_shape)
{
    const long rank = static_cast<long>(input_shape.size());
    std::vector<std::size_t> axes;
    for (int a : m_options.axis) {
        const long r = a < 0 ? a + rank : a;
        if (r < 0 || r >= rank)
            throw ValueError("Axis " + std::to_string(a) + " is out of bounds for input shape " + dims_str(input_shape) +
                             ". Received: axis=" + axis_str(m_options.axis));
        axes.push_back(static_cast<std::size_t>(r));
    }
    std::sort(axes.begin(), axes.end());
    if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
        throw ValueError("Duplicate axis: " + axis_str(m_options.axis) + " for input shape " + dims_str(input_shape));
    if (m_options.virtual_batch_size && axes.front() == 0)
        throw ValueError("When using `virtual_batch_size`, the batch dimension must be 0 and thus axis cannot include "
                         "0. Received axis=" +
                         axis_str(m_options.axis));
    std::size_t channels = 1;
    for (auto a : axes) {
        if (input_shape[a] <= 0)
            throw ValueError("Input has undefined `axis` dimension. Received input with shape " +
                             dims_str(input_shape) + " and axis=" + axis_str(m_options.axis));
        channels *= static_cast<std::size_t>(input_shape[a]);
    }
    m_axes = axes;
    // tf.keras: (C,) for one axis; otherwise 1s on the other axes (and one for the virtual batch).
    shape_t shape{ channels };
    if (axes.size() > 1 || m_options.virtual_batch_size) {
        shape.assign(input_shape.size(), 1);
        for (auto a : axes)
            shape[a] = static_cast<std::size_t>(input_shape[a]);
        if (m_options.virtual_batch_size)
            shape.insert(shape.begin() + 1, 1);
    }
    const auto& o = m_options;
    if (o.scale)
        m_gamma = this->add_weight("gamma", shape, o.gamma_initializer, o.gamma_regularizer, o.gamma_constraint, true);
    if (o.center)
        m_beta = this->add_weight("beta", shape, o.beta_initializer, o.beta_regularizer, o.beta_constraint, true);
    m_moving_mean = this->add_weight("moving_mean", shape, o.moving_mean_initializer, nullptr, nullptr, false);
    m_moving_variance = this->add_weight("moving_variance", shape, o.moving_variance_initializer, nullptr, nullptr, false);
    if (o.renorm) {
        auto sqrt_var = std::make_shared<SqrtOf<T>>(o.moving_variance_initializer);
        m_moving_stddev = this->add_weight("moving_stddev", shape, sqrt_var, nullptr, nullptr, false);
        m_renorm_mean = this->add_weight("renorm_mean", shape, o.moving_mean_initializer, nullptr, nullptr, false);
        m_renorm_stddev = this->add_weight("renorm_stddev", shape, sqrt_var, nullptr, nullptr, false);
    }
}

template <class T>
void BatchNormalization<T>::check_input(const shape_t& x) const
{
    const dims_t& b = this->build_input_shape();
    if (x.size() != b.size())
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(b.size()) + ", found ndim=" + std::to_string(x.size()) +
                         ". Full shape received: " + shape_str(x));
    for (auto a : m_axes)
        if (static_cast<long>(x[a]) != b[a])
            throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected axis " +
                             std::to_string(a) + " of input shape to have value " + std::to_string(b[a]) +
                             ", but received input with shape " + shape_str(x));
}

template <class T>
Tensor<T> BatchNormalization<T>::call(const Tensor<T>& x, bool training, const Tensor<T>& mask)
{
    if (mask.defined() && mask.dim() + 1 != x.dim())
        throw ValueError("The mask provided should be one dimension less than the inputs. Received: mask.shape=" +
                         shape_str(mask.shape()) + ", inputs.shape=" + shape_str(x.shape()));
    const Tensor<T> gamma = m_options.scale ? m_gamma.tensor() : Tensor<T>();
    const Tensor<T> beta = m_options.center ? m_beta.tensor() : Tensor<T>();
    // A frozen layer normalizes with its moving statistics even when training (see the header).
    if (!(training && this->trainable()))
        return batch_norm_inference(x, gamma, beta, m_moving_mean.value(), m_moving_variance.value(), m_spec,
                                    m_workspace);
    // m_stats and m_renorm are members so that their arrays are reused from call to call.
    Tensor<T> y;
    if (m_options.renorm) {
        BatchRenorm<T>& rn = m_renorm;
        rn.mean.resize({ m_renorm_mean.size() });
        rn.stddev.resize({ m_renorm_stddev.size() });
        std::copy(m_renorm_mean.value().begin(), m_renorm_mean.value().end(), rn.mean.begin());
        std::copy(m_renorm_stddev.value().begin(), m_renorm_stddev.value().end(), rn.stddev.begin());
        rn.rmax = m_options.renorm_clipping->rmax;
        rn.rmin = m_options.renorm_clipping->rmin;
        rn.dmax = m_options.renorm_clipping->dmax;
        y = batch_norm_train(x, gamma, beta, m_spec, &m_stats, mask, &rn, m_workspace);
    } else {
        y = batch_norm_train(x, gamma, beta, m_spec, &m_stats, mask, nullptr, m_workspace);
    }
    update_moving_statistics(m_stats);
    return y;
}

template <class T>
void BatchNormalization<T>::update_moving_statistics(const BatchNormStats<T>& stats)
{
    const double m = m_options.momentum, eps = m_options.epsilon;
    T* mm = m_moving_mean.mutable_value().data();
    T* mv = m_moving_variance.mutable_value().data();
    const std::size_t C = stats.mean.size();
    if (!m_options.renorm) {
        for (std::size_t c = 0; c < C; ++c) {
            mm[c] = static_cast<T>(mm[c] * m + static_cast<double>(stats.mean(c)) * (1.0 - m));
            mv[c] = static_cast<T>(mv[c] * m + static_cast<double>(stats.variance(c)) * (1.0 - m));
        }
        average_moving_statistics();
        return;
    }
    // Renorm tracks standard deviations (with epsilon, as in training) and derives the moving
    // variance from moving_stddev, clamped at 0 against rounding.
    const double rm = m_options.renorm_momentum;
    T* ms = m_moving_stddev.mutable_value().data();
    T* rmean = m_renorm_mean.mutable_value().data();
    T* rstd = m_renorm_stddev.mutable_value().data();
    for (std::size_t c = 0; c < C; ++c) {
        const double mean = stats.mean(c);
        const double stddev = std::sqrt(static_cast<double>(stats.variance(c)) + eps);
        rmean[c] = static_cast<T>(rmean[c] * rm + mean * (1.0 - rm));
        rstd[c] = static_cast<T>(rstd[c] * rm + stddev * (1.0 - rm));
        mm[c] = static_cast<T>(mm[c] * m + mean * (1.0 - m));
        const double s = ms[c] * m + stddev * (1.0 - m);
        ms[c] = static_cast<T>(s);
        mv[c] = static_cast<T>(std::max(0.0, s * s - eps));
    }
    average_moving_statistics();
}

template <class T>
void BatchNormalization<T>::average_moving_statistics()
{
    // Synchronized statistics are the same on every rank already. Local ones differ: their moving
    // averages are averaged across ranks after each update, as TensorFlow's MirroredStrategy
    // aggregates them (by mean), so that every rank keeps the same weights. One call, in double.
    const Collective& comm = collective();
    if (m_options.synchronized || comm.size() == 1)
        return;
    std::vector<Variable<T>*> vars{ &m_moving_mean, &m_moving_variance };
    if (m_options.renorm)
        vars.insert(vars.end(), { &m_moving_stddev, &m_renorm_mean, &m_renorm_stddev });
    std::vector<double> buf;
    for (auto* v : vars)
        buf.insert(buf.end(), v->value().begin(), v->value().end());
    comm.allreduce_sum(buf.data(), buf.size());
    const double inv = 1.0 / comm.size();
    std::size_t k = 0;
    for (auto* v : vars)
        for (T& e : v->mutable_value())
            e = static_cast<T>(buf[k++] * inv);
}

template <class T>
const Variable<T>& BatchNormalization<T>::need(const Variable<T>& v, const char* what) const
{
    if (!this->built())
        throw RuntimeError("layer \"" + this->name() + "\": You must build the layer before accessing `" + what + "`.");
    if (!v.defined())
        throw RuntimeError("layer \"" + this->name() + "\" has no `" + what + "` (" +
                           (std::string(what) == "gamma"  ? "scale=False"
                            : std::string(what) == "beta" ? "center=False"
                                                          : "renorm=False") +
                           ")");
    return v;
}

template <class T>
const Variable<T>& BatchNormalization<T>::gamma() const
{
    return need(m_gamma, "gamma");
}
template <class T>
const Variable<T>& BatchNormalization<T>::beta() const
{
    return need(m_beta, "beta");
}
template <class T>
const Variable<T>& BatchNormalization<T>::moving_mean() const
{
    return need(m_moving_mean, "moving_mean");
}
template <class T>
const Variable<T>& BatchNormalization<T>::moving_variance() const
{
    return need(m_moving_variance, "moving_variance");
}
template <class T>
const Variable<T>& BatchNormalization<T>::moving_stddev() const
{
    return need(m_moving_stddev, "moving_stddev");
}
template <class T>
const Variable<T>& BatchNormalization<T>::renorm_mean() const
{
    return need(m_renorm_mean, "renorm_mean");
}
template <class T>
const Variable<T>& BatchNormalization<T>::renorm_stddev() const
{
    return need(m_renorm_stddev, "renorm_stddev");
}

template class BatchNormalization<float>;
template class BatchNormalization<double>;

} // namespace xtape
