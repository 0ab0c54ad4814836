#include "layers/preprocessing/normalization.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xstrided_view.hpp>

#include <functional>

#include <algorithm>
#include <cmath>

namespace xtape {
namespace {

/// Keras prints the axis tuple: (-1,), (1, 2), ().
std::string tuple_str(const std::vector<int>& axis)
{
    std::string s = "(";
    for (std::size_t i = 0; i < axis.size(); ++i)
        s += (i ? ", " : "") + std::to_string(axis[i]);
    return s + (axis.size() == 1 ? ",)" : ")");
}

/// A number or nested lists as an array (Keras writes mean/variance as np.array(...).tolist()).
template <class T>
array_t<T> array_from_json(const json& j, const std::string& what)
{
    shape_t shape;
    const json* p = &j;
    while (p->is_array()) {
        shape.push_back(p->size());
        if (p->empty())
            break;
        p = &(*p)[0];
    }
    std::vector<T> flat;
    std::function<void(const json&)> walk = [&](const json& v) {
        if (v.is_array())
            for (const auto& e : v)
                walk(e);
        else if (v.is_number())
            flat.push_back(v.get<T>());
        else
            throw ValueError("Normalization: `" + what + "` must be a number or nested lists of numbers, got " + j.dump());
    };
    walk(j);
    if (flat.size() != shape_size(shape))
        throw ValueError("Normalization: `" + what + "` is a ragged list: " + j.dump());
    array_t<T> a = array_t<T>::from_shape(shape);
    std::copy(flat.begin(), flat.end(), a.begin());
    return a;
}

template <class T>
json array_to_json(const array_t<T>& a)
{
    if (a.dimension() == 0)
        return json(static_cast<double>(a()));
    std::function<json(std::size_t, std::size_t)> rec = [&](std::size_t dim, std::size_t offset) {
        json out = json::array();
        std::size_t stride = 1;
        for (std::size_t d = dim + 1; d < a.dimension(); ++d)
            stride *= a.shape()[d];
        for (std::size_t i = 0; i < a.shape()[dim]; ++i)
            out.push_back(dim + 1 == a.dimension() ? json(static_cast<double>(a.data()[offset + i]))
                                                   : rec(dim + 1, offset + i * stride));
        return out;
    };
    return rec(0, 0);
}

} // namespace

template <class T>
Normalization<T>::Normalization(const NormalizationOptions<T>& options)
    : Layer<T>("Normalization", options.name)
    , m_options(options)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    const auto& o = m_options;
    if (o.mean.has_value() != o.variance.has_value())
        throw ValueError("When setting values directly, both `mean` and `variance` must be set. Received: mean=" +
                         std::string(o.mean ? "<array>" : "None") + " and variance=" +
                         (o.variance ? "<array>" : "None"));
    if (o.mean) {
        if (shape_of(*o.mean) != shape_of(*o.variance))
            throw ValueError("When setting values directly, `mean` and `variance` must have the same shape. Received: "
                             "mean shape " + shape_str(shape_of(*o.mean)) + " and variance shape " +
                             shape_str(shape_of(*o.variance)));
        if (o.mean->dimension() > o.axis.size())
            throw ValueError("The rank of `mean` must be less than or equal to the number of axes (" +
                             std::to_string(o.axis.size()) + "). Received: mean shape " +
                             shape_str(shape_of(*o.mean)) + " for axis " + tuple_str(o.axis));
    }
}

template <class T>
std::shared_ptr<Normalization<T>> Normalization<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    NormalizationOptions<T> o;
    o.name = a.name;
    if (config.contains("axis")) {
        const json& ax = config["axis"];
        o.axis.clear();
        if (ax.is_number_integer())
            o.axis.push_back(ax.get<int>());
        else if (ax.is_array())
            for (const auto& v : ax) {
                if (!v.is_number_integer())
                    throw ValueError("Normalization '" + a.name + "': `axis` must be an int, a list of ints or null, got " +
                                     ax.dump());
                o.axis.push_back(v.get<int>());
            }
        else if (!ax.is_null())
            throw ValueError("Normalization '" + a.name + "': `axis` must be an int, a list of ints or null, got " +
                             ax.dump());
    }
    if (config.contains("mean") && !config["mean"].is_null())
        o.mean = array_from_json<T>(config["mean"], "mean");
    if (config.contains("variance") && !config["variance"].is_null())
        o.variance = array_from_json<T>(config["variance"], "variance");
    o.invert = config_bool(config, "invert", false);
    auto l = std::make_shared<Normalization<T>>(o);
    l->set_trainable(a.trainable);
    return l;
}

template <class T>
json Normalization<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["axis"] = m_options.axis;
    c["invert"] = m_options.invert;
    c["mean"] = m_options.mean ? array_to_json(*m_options.mean) : json();
    c["variance"] = m_options.variance ? array_to_json(*m_options.variance) : json();
    return c;
}

template <class T>
void Normalization<T>::build(const dims_t& input_shape)
{
    const long ndim = static_cast<long>(input_shape.size());
    for (int a : m_options.axis)
        if (a < -ndim || a >= ndim)
            throw ValueError("All `axis` values must be in the range [-ndim, ndim). Received inputs with ndim=" +
                             std::to_string(ndim) + ", while axis=" + tuple_str(m_options.axis) + " (layer \"" +
                             this->name() + "\")");
    m_keep.clear();
    for (int a : m_options.axis)
        m_keep.push_back(static_cast<std::size_t>(a < 0 ? a + ndim : a));
    std::sort(m_keep.begin(), m_keep.end());
    m_keep_shape.clear();
    m_broadcast.assign(input_shape.size(), 1);
    for (auto d : m_keep) {
        if (input_shape[d] < 0)
            throw ValueError("All `axis` values to be kept must have a known shape. Received axis=" +
                             tuple_str(m_options.axis) + ", inputs.shape=" + dims_str(input_shape) +
                             ", with unknown axis at index " + std::to_string(d));
        m_keep_shape.push_back(static_cast<std::size_t>(input_shape[d]));
        m_broadcast[d] = static_cast<std::size_t>(input_shape[d]);
    }
    if (!m_options.mean) {
        m_mean_w = this->add_weight("mean", m_keep_shape, get_initializer<T>("zeros"), nullptr, nullptr, false);
        m_variance_w = this->add_weight("variance", m_keep_shape, get_initializer<T>("ones"), nullptr, nullptr, false);
        m_count_w = this->add_weight("count", {}, get_initializer<T>("zeros"), nullptr, nullptr, false);
        return;
    }
    // Given statistics: a scalar broadcasts everywhere; an array aligns right to the kept axes.
    auto expand = [&](const array_t<T>& v) {
        shape_t expanded(input_shape.size(), 1);
        const std::size_t r = v.dimension();
        for (std::size_t i = 1; i <= r; ++i)
            expanded[m_keep[m_keep.size() - i]] = v.shape()[r - i];
        array_t<T> e = v;
        e.reshape(expanded);
        return array_t<T>(xt::broadcast(e, m_broadcast));
    };
    m_mean = expand(*m_options.mean);
    m_variance = expand(*m_options.variance);
}

template <class T>
void Normalization<T>::check_input(const shape_t& x) const
{
    const dims_t& b = this->build_input_shape();
    bool ok = x.size() == b.size();
    for (std::size_t k = 0; ok && k < m_keep.size(); ++k)
        ok = static_cast<long>(x[m_keep[k]]) == b[m_keep[k]];
    if (!ok)
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected shape=" +
                         dims_str(b) + " on the kept axes " + tuple_str(m_options.axis) + ", found shape=" +
                         shape_str(x));
}

template <class T>
const array_t<T>& Normalization<T>::mean() const
{
    if (!this->built())
        throw RuntimeError("layer \"" + this->name() + "\": You must call `.build(input_shape)` on the layer before "
                                                       "using it.");
    if (m_mean_w.defined())
        m_mean = array_t<T>(xt::reshape_view(m_mean_w.value(), m_broadcast));
    return m_mean;
}

template <class T>
const array_t<T>& Normalization<T>::variance() const
{
    if (!this->built())
        throw RuntimeError("layer \"" + this->name() + "\": You must call `.build(input_shape)` on the layer before "
                                                       "using it.");
    if (m_variance_w.defined())
        m_variance = array_t<T>(xt::reshape_view(m_variance_w.value(), m_broadcast));
    return m_variance;
}

template <class T>
Tensor<T> Normalization<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    // The statistics are read from the weights at every call, so set_weights and loading apply at once
    // (Keras's finalize_state).
    const array_t<T>& mv = mean();
    const array_t<T>& vv = variance();
    array_t<T> scale = array_t<T>::from_shape(shape_of(vv));
    for (std::size_t i = 0; i < vv.size(); ++i)
        scale.data()[i] = std::max(std::sqrt(vv.data()[i]), static_cast<T>(1e-7)); // Keras's backend.epsilon()
    const Tensor<T> m(mv), s(std::move(scale));
    return m_options.invert ? add(m, mul(x, s)) : div(sub(x, m), s);
}

template <class T>
void Normalization<T>::adapt(const Tensor<T>& data)
{
    adapt(std::vector<Tensor<T>>{ data });
}

template <class T>
void Normalization<T>::adapt(const std::vector<Tensor<T>>& batches)
{
    if (batches.empty())
        throw ValueError("Normalization '" + this->name() +
                         "': adapt() received an empty iterable (no batches). Expected at least one batch.");
    const shape_t first = batches[0].shape();
    if (!this->built()) {
        dims_t d = dims_of(first);
        if (!d.empty())
            d[0] = none_dim; // the batch axis varies between batches
        // A kept batch axis keeps its size.
        for (int a : m_options.axis)
            if (a == 0 || a == -static_cast<int>(first.size()))
                d[0] = static_cast<long>(first[0]);
        this->build_once(d);
    }
    if (m_options.mean)
        throw ValueError("Normalization '" + this->name() +
                         "': adapt() cannot change a mean and variance given to the constructor");
    const dims_t& b = this->build_input_shape();
    const std::size_t K = shape_size(m_keep_shape);
    std::vector<double> mean(K, 0.0), m2(K, 0.0), bmean(K), bm2(K);
    double n = 0;
    for (const auto& batch : batches) {
        const shape_t s = batch.shape();
        bool ok = s.size() == b.size();
        for (std::size_t k = 0; ok && k < m_keep.size(); ++k)
            ok = static_cast<long>(s[m_keep[k]]) == b[m_keep[k]];
        if (!ok)
            throw ValueError("The layer was built with input_shape=" + dims_str(b) +
                             ", but adapt() is being called with data with an incompatible shape, data.shape=" +
                             shape_str(s) + " (layer \"" + this->name() + "\")");
        const std::size_t N = batch.size();
        if (N == 0)
            continue;
        // The kept index of each element: position along the kept axes, row-major.
        const std::size_t rank = s.size();
        std::vector<std::size_t> stride(rank, 1), kmul(rank, 0);
        for (std::size_t i = rank; i-- > 1;)
            stride[i - 1] = stride[i] * s[i];
        std::size_t km = 1;
        for (std::size_t k = m_keep.size(); k-- > 0;) {
            kmul[m_keep[k]] = km;
            km *= s[m_keep[k]];
        }
        auto kept = [&](std::size_t f) {
            std::size_t k = 0;
            for (auto a : m_keep)
                k += (f / stride[a] % s[a]) * kmul[a];
            return k;
        };
        const double nb = static_cast<double>(N / K);
        const T* x = batch.data();
        std::fill(bmean.begin(), bmean.end(), 0.0);
        std::fill(bm2.begin(), bm2.end(), 0.0);
        for (std::size_t f = 0; f < N; ++f)
            bmean[kept(f)] += static_cast<double>(x[f]);
        for (auto& v : bmean)
            v /= nb;
        for (std::size_t f = 0; f < N; ++f) {
            const std::size_t k = kept(f);
            const double d = static_cast<double>(x[f]) - bmean[k];
            bm2[k] += d * d;
        }
        // Chan et al.'s merge (Note [Normalization adapt]).
        const double total = n + nb;
        for (std::size_t k = 0; k < K; ++k) {
            const double delta = bmean[k] - mean[k];
            mean[k] += delta * nb / total;
            m2[k] += bm2[k] + delta * delta * n * nb / total;
        }
        n = total;
    }
    if (n == 0)
        throw ValueError("Normalization '" + this->name() + "': adapt() received only empty batches");
    array_t<T> mv = array_t<T>::from_shape(m_keep_shape), vv = array_t<T>::from_shape(m_keep_shape);
    for (std::size_t k = 0; k < K; ++k) {
        mv.data()[k] = static_cast<T>(mean[k]);
        vv.data()[k] = static_cast<T>(m2[k] / n);
    }
    m_mean_w.assign(mv);
    m_variance_w.assign(vv);
}

template class Normalization<float>;
template class Normalization<double>;

} // namespace xtape
