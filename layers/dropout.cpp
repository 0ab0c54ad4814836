#include "layers/dropout.hpp"

#include "framework/parallel.hpp"
#include "framework/tape.hpp"
#include "layers/layer_config.hpp"

#include <xtensor/xbroadcast.hpp>

#include <sstream>

namespace xtape {

namespace {
// A uniform double in [0, 1) from the top 53 bits: the same numbers on every platform, unlike
// std::uniform_real_distribution whose algorithm the standard leaves to the library.
inline double uniform01(rng_t& rng)
{
    return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}
} // namespace

template<class T>
Tensor<T> dropout(const Tensor<T>& x, double rate, const shape_t& noise_shape_in, rng_t& rng)
{
    if (!(rate >= 0.0 && rate <= 1.0))
        throw ValueError("dropout: rate must be in [0, 1], got " + std::to_string(rate));
    const shape_t xs = x.shape();
    const shape_t ns = noise_shape_in.empty() ? xs : noise_shape_in;
    bool ok = ns.size() == xs.size();
    for (std::size_t i = 0; ok && i < ns.size(); ++i)
        ok = ns[i] == 1 || ns[i] == xs[i];
    if (!ok)
        throw ShapeError("dropout: noise_shape " + shape_str(ns) + " does not broadcast to the input shape " +
                         shape_str(xs));

    // keep / (1 - rate) per noise element; units are kept when u >= rate, as tf.nn.dropout does.
    const T scale = rate < 1.0 ? static_cast<T>(1.0 / (1.0 - rate)) : T(0);
    array_t<T> noise = array_t<T>::from_shape(ns);
    for (auto& v : noise)
        v = uniform01(rng) >= rate ? scale : T(0);
    Tensor<T> mask(ns == xs ? std::move(noise) : array_t<T>(xt::broadcast(noise, xs)));

    array_t<T> out = array_t<T>::from_shape(xs);
    const T* xp = x.data();
    const T* mp = mask.data();
    T* yp = out.data();
    parallel_for(out.size(), [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i)
            yp[i] = xp[i] * mp[i];
    });
    Tensor<T> y(std::move(out));
    if (should_record<T>({ &x })) {
        record_op<T>("dropout", { x }, y, [mask](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
            if (!dx[0])
                return;
            const T* g = dy.data();
            const T* m = mask.data();
            T* d = dx[0]->data();
            parallel_for(dy.size(), [&](std::size_t b, std::size_t e) {
                for (std::size_t i = b; i < e; ++i)
                    d[i] += g[i] * m[i];
            });
        });
    }
    return y;
}

template<class T>
Dropout<T>::Dropout(const DropoutOptions& o)
  : Layer<T>("Dropout", o.name, o.trainable)
  , m_rate(o.rate)
  , m_noise_shape(o.noise_shape)
  , m_seed(o.seed)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (!(m_rate >= 0.0 && m_rate <= 1.0)) {
        std::ostringstream os;
        os << "Invalid value received for argument `rate`. Expected a float value between 0 and 1. Received: "
              "rate="
           << m_rate;
        throw ValueError(os.str());
    }
    if (m_noise_shape)
        for (std::size_t i = 0; i < m_noise_shape->size(); ++i) {
            const long d = (*m_noise_shape)[i];
            if (d != none_dim && d <= 0)
                throw ValueError(
                  "Invalid value received for argument `noise_shape`. Expected all dimensions to be "
                  "positive integers or None. Received negative or zero value at index " +
                  std::to_string(i) + ": " + std::to_string(d));
        }
    // As Keras, only a layer that drops anything owns a seed generator (and draws a global seed).
    if (m_rate > 0.0)
        m_rng.seed(m_seed ? *m_seed : next_seed());
}

template<class T>
std::shared_ptr<Dropout<T>> Dropout<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    DropoutOptions o;
    const json rate = config_first(config, { "rate", "p" });
    if (!rate.is_number())
        throw ValueError("Dropout config: expected a numeric 'rate' (Keras 1: 'p'), got " + config.dump());
    o.rate = rate.get<double>();
    auto ns = config.find("noise_shape");
    if (ns != config.end() && !ns->is_null())
        o.noise_shape = dims_from_json(*ns, "noise_shape");
    auto seed = config.find("seed");
    if (seed != config.end() && !seed->is_null()) {
        if (!seed->is_number_integer())
            throw ValueError("Dropout config: seed must be an integer or null, got " + seed->dump());
        o.seed = seed->get<std::uint64_t>();
    }
    o.name = a.name;
    o.trainable = a.trainable;
    return std::make_shared<Dropout<T>>(o);
}

template<class T>
json Dropout<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["rate"] = m_rate;
    c["seed"] = m_seed ? json(*m_seed) : json();
    c["noise_shape"] = m_noise_shape ? dims_to_json(*m_noise_shape) : json();
    return c;
}

template<class T>
Tensor<T> Dropout<T>::call(const Tensor<T>& x, bool training, const Tensor<T>&)
{
    if (!training || m_rate == 0.0)
        return x;
    shape_t ns;
    if (m_noise_shape) {
        const shape_t xs = x.shape();
        if (m_noise_shape->size() != xs.size())
            throw ShapeError("layer \"" + this->name() + "\": noise_shape " + dims_str(*m_noise_shape) +
                             " has rank " + std::to_string(m_noise_shape->size()) +
                             ", but the input has shape " + shape_str(xs));
        for (std::size_t i = 0; i < xs.size(); ++i)
            ns.push_back((*m_noise_shape)[i] == none_dim ? xs[i]
                                                         : static_cast<std::size_t>((*m_noise_shape)[i]));
        for (std::size_t i = 0; i < xs.size(); ++i)
            if (ns[i] != 1 && ns[i] != xs[i])
                throw ShapeError("layer \"" + this->name() + "\": noise_shape " + dims_str(*m_noise_shape) +
                                 " does not broadcast to the input shape " + shape_str(xs));
    }
    return dropout(x, m_rate, ns, m_rng);
}

template Tensor<float> dropout(const Tensor<float>&, double, const shape_t&, rng_t&);
template Tensor<double> dropout(const Tensor<double>&, double, const shape_t&, rng_t&);
template class Dropout<float>;
template class Dropout<double>;

} // namespace xtape
