#include "framework/initializers.hpp"

#include "framework/keras_object.hpp"
#include "framework/random.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <vector>

namespace xtape {
namespace {

// Note [Portable random numbers]: <random>'s distributions are implementation-defined, so a
// seed would give other weights with another standard library. The engine (mt19937_64) is fully
// specified; the two distributions below are written out so the values are too.

/// Uniform in [0, 1) from the top 53 bits of one draw.
double uniform01(rng_t& gen) { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }

/// Standard normal by Box-Muller; both values of each pair are used, in order.
class NormalSource {
public:
    explicit NormalSource(std::uint64_t seed)
        : m_gen(seed)
    {
    }
    double next()
    {
        if (m_has_spare) {
            m_has_spare = false;
            return m_spare;
        }
        const double u1 = 1.0 - uniform01(m_gen); // (0, 1]: log stays finite
        const double u2 = uniform01(m_gen);
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double t = 6.283185307179586 * u2; // 2 pi
        m_spare = r * std::sin(t);
        m_has_spare = true;
        return r * std::cos(t);
    }
    /// A standard normal conditioned on |z| <= 2 (values outside are drawn again, as TF does).
    double next_truncated()
    {
        for (;;) {
            const double z = next();
            if (std::abs(z) <= 2.0)
                return z;
        }
    }

private:
    rng_t m_gen;
    bool m_has_spare = false;
    double m_spare = 0.0;
};

template <class T>
array_t<T> normal_array(const shape_t& shape, double mean, double stddev, std::uint64_t seed, bool truncated)
{
    array_t<T> a = array_t<T>::from_shape(shape);
    NormalSource src(seed);
    T* p = a.data();
    for (std::size_t i = 0, n = a.size(); i < n; ++i)
        p[i] = static_cast<T>(mean + stddev * (truncated ? src.next_truncated() : src.next()));
    return a;
}

template <class T>
array_t<T> uniform_array(const shape_t& shape, double lo, double hi, std::uint64_t seed)
{
    array_t<T> a = array_t<T>::from_shape(shape);
    rng_t gen(seed);
    T* p = a.data();
    for (std::size_t i = 0, n = a.size(); i < n; ++i)
        p[i] = static_cast<T>(lo + (hi - lo) * uniform01(gen));
    return a;
}

seed_t parse_seed(const json& config)
{
    auto it = config.find("seed");
    if (it == config.end() || it->is_null())
        return std::nullopt;
    if (it->is_number_integer())
        return static_cast<std::uint64_t>(it->get<std::int64_t>());
    if (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>())
        return static_cast<std::uint64_t>(it->get<double>());
    // Keras 3 may serialize a SeedGenerator: {"class_name": "SeedGenerator", "config": {"seed": n}}.
    if (it->is_object() && it->contains("config") && (*it)["config"].is_object())
        return parse_seed((*it)["config"]);
    throw ValueError("initializer config 'seed': expected an integer or null, got " + it->dump());
}

} // namespace

std::pair<double, double> compute_fans(const shape_t& shape)
{
    if (shape.empty())
        return { 1.0, 1.0 };
    if (shape.size() == 1)
        return { double(shape[0]), double(shape[0]) };
    if (shape.size() == 2)
        return { double(shape[0]), double(shape[1]) };
    double receptive = 1.0;
    for (std::size_t i = 0; i + 2 < shape.size(); ++i)
        receptive *= double(shape[i]);
    return { double(shape[shape.size() - 2]) * receptive, double(shape.back()) * receptive };
}

// ---- constants ------------------------------------------------------------------------------

template <class T>
array_t<T> Zeros<T>::operator()(const shape_t& shape) const
{
    array_t<T> a = array_t<T>::from_shape(shape);
    a.fill(T(0));
    return a;
}

template <class T>
array_t<T> Ones<T>::operator()(const shape_t& shape) const
{
    array_t<T> a = array_t<T>::from_shape(shape);
    a.fill(T(1));
    return a;
}

template <class T>
array_t<T> Constant<T>::operator()(const shape_t& shape) const
{
    array_t<T> a = array_t<T>::from_shape(shape);
    a.fill(static_cast<T>(m_value));
    return a;
}

template <class T>
array_t<T> Identity<T>::operator()(const shape_t& shape) const
{
    if (shape.size() != 2)
        throw ValueError("Identity matrix initializer can only be used for 2D matrices. Received: shape=" +
                         shape_str(shape) + " of rank " + std::to_string(shape.size()) + ".");
    array_t<T> a = array_t<T>::from_shape(shape);
    a.fill(T(0));
    const std::size_t n = std::min(shape[0], shape[1]);
    for (std::size_t i = 0; i < n; ++i)
        a.data()[i * shape[1] + i] = static_cast<T>(m_gain);
    return a;
}

// ---- random ---------------------------------------------------------------------------------

template <class T>
RandomInitializer<T>::RandomInitializer(seed_t seed)
    : m_init_seed(seed)
    , m_seed(seed ? *seed : next_seed())
{
}

template <class T>
json RandomInitializer<T>::get_config() const
{
    return { { "seed", m_init_seed ? json(*m_init_seed) : json(nullptr) } };
}

template <class T>
RandomNormal<T>::RandomNormal(double mean, double stddev, seed_t seed)
    : RandomInitializer<T>(seed)
    , m_mean(mean)
    , m_stddev(stddev)
{
}

template <class T>
array_t<T> RandomNormal<T>::operator()(const shape_t& shape) const
{
    return normal_array<T>(shape, m_mean, m_stddev, this->m_seed, false);
}

template <class T>
json RandomNormal<T>::get_config() const
{
    json c = RandomInitializer<T>::get_config();
    c["mean"] = m_mean;
    c["stddev"] = m_stddev;
    return c;
}

template <class T>
RandomUniform<T>::RandomUniform(double minval, double maxval, seed_t seed)
    : RandomInitializer<T>(seed)
    , m_minval(minval)
    , m_maxval(maxval)
{
}

template <class T>
array_t<T> RandomUniform<T>::operator()(const shape_t& shape) const
{
    return uniform_array<T>(shape, m_minval, m_maxval, this->m_seed);
}

template <class T>
json RandomUniform<T>::get_config() const
{
    json c = RandomInitializer<T>::get_config();
    c["minval"] = m_minval;
    c["maxval"] = m_maxval;
    return c;
}

template <class T>
TruncatedNormal<T>::TruncatedNormal(double mean, double stddev, seed_t seed)
    : RandomInitializer<T>(seed)
    , m_mean(mean)
    , m_stddev(stddev)
{
}

template <class T>
array_t<T> TruncatedNormal<T>::operator()(const shape_t& shape) const
{
    return normal_array<T>(shape, m_mean, m_stddev, this->m_seed, true);
}

template <class T>
json TruncatedNormal<T>::get_config() const
{
    json c = RandomInitializer<T>::get_config();
    c["mean"] = m_mean;
    c["stddev"] = m_stddev;
    return c;
}

template <class T>
VarianceScaling<T>::VarianceScaling(double scale, std::string mode, std::string distribution, seed_t seed)
    : RandomInitializer<T>(seed)
    , m_scale(scale)
    , m_mode(std::move(mode))
    , m_distribution(std::move(distribution))
{
    if (!(m_scale > 0.0))
        throw ValueError("Argument `scale` must be positive float. Received: scale=" + std::to_string(m_scale));
    if (m_mode != "fan_in" && m_mode != "fan_out" && m_mode != "fan_avg")
        throw ValueError("Invalid `mode` argument: " + m_mode + ". Please use one of {'fan_in', 'fan_out', 'fan_avg'}");
    std::transform(m_distribution.begin(), m_distribution.end(), m_distribution.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (m_distribution == "normal")
        m_distribution = "truncated_normal";
    if (m_distribution != "uniform" && m_distribution != "truncated_normal" && m_distribution != "untruncated_normal")
        throw ValueError("Invalid `distribution` argument: " + m_distribution +
                         ". Please use one of {'uniform', 'truncated_normal', 'untruncated_normal'}");
}

template <class T>
array_t<T> VarianceScaling<T>::operator()(const shape_t& shape) const
{
    const auto [fan_in, fan_out] = compute_fans(shape);
    double scale = m_scale;
    if (m_mode == "fan_in")
        scale /= std::max(1.0, fan_in);
    else if (m_mode == "fan_out")
        scale /= std::max(1.0, fan_out);
    else
        scale /= std::max(1.0, (fan_in + fan_out) / 2.0);
    if (m_distribution == "truncated_normal") {
        // The stddev of a standard normal truncated to [-2, 2]; dividing by it restores scale / n.
        const double stddev = std::sqrt(scale) / 0.87962566103423978;
        return normal_array<T>(shape, 0.0, stddev, this->m_seed, true);
    }
    if (m_distribution == "untruncated_normal")
        return normal_array<T>(shape, 0.0, std::sqrt(scale), this->m_seed, false);
    const double limit = std::sqrt(3.0 * scale);
    return uniform_array<T>(shape, -limit, limit, this->m_seed);
}

template <class T>
json VarianceScaling<T>::get_config() const
{
    json c = RandomInitializer<T>::get_config();
    c["scale"] = m_scale;
    c["mode"] = m_mode;
    c["distribution"] = m_distribution;
    return c;
}

template <class T>
Orthogonal<T>::Orthogonal(double gain, seed_t seed)
    : RandomInitializer<T>(seed)
    , m_gain(gain)
{
}

template <class T>
array_t<T> Orthogonal<T>::operator()(const shape_t& shape) const
{
    if (shape.size() < 2)
        throw ValueError("The tensor to initialize must be at least two-dimensional. Received: shape=" +
                         shape_str(shape) + " of rank " + std::to_string(shape.size()) + ".");
    std::size_t rows = 1;
    for (std::size_t i = 0; i + 1 < shape.size(); ++i)
        rows *= shape[i];
    const std::size_t cols = shape.back();
    const std::size_t m = std::max(rows, cols), n = std::min(rows, cols);
    // The random (m, n) matrix is drawn row-major, as Keras draws it, then kept column by column so
    // the Gram-Schmidt dot products run over contiguous memory.
    std::vector<double> q(m * n);
    NormalSource src(this->m_seed);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j)
            q[j * m + i] = src.next();
    // Modified Gram-Schmidt, each column orthogonalized twice ("twice is enough") for orthogonality
    // to rounding level. It yields the QR factor whose R has a positive diagonal, which is exactly
    // what Keras gets from Householder QR followed by q *= sign(diag(r)).
    for (std::size_t j = 0; j < n; ++j) {
        double* v = &q[j * m];
        for (int pass = 0; pass < 2; ++pass)
            for (std::size_t k = 0; k < j; ++k) {
                const double* u = &q[k * m];
                double d = 0.0;
                for (std::size_t i = 0; i < m; ++i)
                    d += u[i] * v[i];
                for (std::size_t i = 0; i < m; ++i)
                    v[i] -= d * u[i];
            }
        double norm = 0.0;
        for (std::size_t i = 0; i < m; ++i)
            norm += v[i] * v[i];
        norm = std::sqrt(norm);
        if (norm == 0.0)
            throw RuntimeError("Orthogonal initializer: the random matrix is rank deficient");
        for (std::size_t i = 0; i < m; ++i)
            v[i] /= norm;
    }
    array_t<T> out = array_t<T>::from_shape(shape);
    T* o = out.data();
    if (rows >= cols) { // out (rows, cols) = Q (m, n)
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < cols; ++j)
                o[i * cols + j] = static_cast<T>(m_gain * q[j * m + i]);
    } else { // out (rows, cols) = Q^T, Q of shape (cols, rows)
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < cols; ++j)
                o[i * cols + j] = static_cast<T>(m_gain * q[i * m + j]);
    }
    return out;
}

template <class T>
json Orthogonal<T>::get_config() const
{
    json c = RandomInitializer<T>::get_config();
    c["gain"] = m_gain;
    return c;
}

// ---- lookup by Keras name -----------------------------------------------------------------------

namespace {

template <class T>
using InitFactory = std::function<InitializerPtr<T>(const json&)>;

template <class T>
const std::map<std::string, InitFactory<T>>& initializer_table()
{
    static const std::map<std::string, InitFactory<T>> table = [] {
        std::map<std::string, InitFactory<T>> t;
        auto add = [&t](std::initializer_list<const char*> names, InitFactory<T> f) {
            for (const char* n : names)
                t[n] = f;
        };
        add({ "Zeros", "zeros", "zero" }, [](const json&) { return std::make_shared<Zeros<T>>(); });
        add({ "Ones", "ones", "one" }, [](const json&) { return std::make_shared<Ones<T>>(); });
        add({ "Constant", "constant" }, [](const json& c) {
            auto it = c.find("value");
            if (it != c.end() && !it->is_null() && !it->is_number())
                throw ValueError("Constant initializer: only scalar values are allowed, got value=" + it->dump());
            return std::make_shared<Constant<T>>(config_number(c, "value", 0.0));
        });
        add({ "Identity", "identity", "IdentityInitializer", "identity_initializer" },
            [](const json& c) { return std::make_shared<Identity<T>>(config_number(c, "gain", 1.0)); });
        add({ "RandomNormal", "random_normal", "normal" }, [](const json& c) {
            return std::make_shared<RandomNormal<T>>(config_number(c, "mean", 0.0), config_number(c, "stddev", 0.05),
                                                     parse_seed(c));
        });
        add({ "RandomUniform", "random_uniform", "uniform" }, [](const json& c) {
            return std::make_shared<RandomUniform<T>>(config_number(c, "minval", -0.05),
                                                      config_number(c, "maxval", 0.05), parse_seed(c));
        });
        add({ "TruncatedNormal", "truncated_normal" }, [](const json& c) {
            return std::make_shared<TruncatedNormal<T>>(config_number(c, "mean", 0.0),
                                                        config_number(c, "stddev", 0.05), parse_seed(c));
        });
        add({ "VarianceScaling", "variance_scaling" }, [](const json& c) {
            return std::make_shared<VarianceScaling<T>>(config_number(c, "scale", 1.0),
                                                        config_string(c, "mode", "fan_in"),
                                                        config_string(c, "distribution", "truncated_normal"),
                                                        parse_seed(c));
        });
        add({ "GlorotUniform", "glorot_uniform" },
            [](const json& c) { return std::make_shared<GlorotUniform<T>>(parse_seed(c)); });
        add({ "GlorotNormal", "glorot_normal" },
            [](const json& c) { return std::make_shared<GlorotNormal<T>>(parse_seed(c)); });
        add({ "HeUniform", "he_uniform" }, [](const json& c) { return std::make_shared<HeUniform<T>>(parse_seed(c)); });
        add({ "HeNormal", "he_normal" }, [](const json& c) { return std::make_shared<HeNormal<T>>(parse_seed(c)); });
        add({ "LecunUniform", "lecun_uniform" },
            [](const json& c) { return std::make_shared<LecunUniform<T>>(parse_seed(c)); });
        add({ "LecunNormal", "lecun_normal" },
            [](const json& c) { return std::make_shared<LecunNormal<T>>(parse_seed(c)); });
        add({ "Orthogonal", "orthogonal", "OrthogonalInitializer", "orthogonal_initializer" }, [](const json& c) {
            return std::make_shared<Orthogonal<T>>(config_number(c, "gain", 1.0), parse_seed(c));
        });
        return t;
    }();
    return table;
}

} // namespace

template <class T>
InitializerPtr<T> get_initializer(const json& spec)
{
    if (spec.is_null())
        return nullptr;
    KerasSpec s = split_keras_spec(spec, "initializer");
    const auto& table = initializer_table<T>();
    auto it = table.find(s.class_name);
    if (it == table.end())
        throw KeyError("Unknown initializer: '" + s.class_name +
                       "'. Known: zeros, ones, constant, identity, random_normal, random_uniform, truncated_normal, "
                       "variance_scaling, glorot_uniform, glorot_normal, he_uniform, he_normal, lecun_uniform, "
                       "lecun_normal, orthogonal (or their class names)");
    return it->second(s.config);
}

template <class T>
json serialize(const InitializerPtr<T>& p)
{
    if (!p)
        return nullptr;
    return keras3_serialized("keras.initializers", p->class_name(), p->get_config());
}

#define XTAPE_INSTANTIATE(T)                                                                                     \
    template class Zeros<T>;                                                                                     \
    template class Ones<T>;                                                                                      \
    template class Constant<T>;                                                                                  \
    template class Identity<T>;                                                                                  \
    template class RandomInitializer<T>;                                                                         \
    template class RandomNormal<T>;                                                                              \
    template class RandomUniform<T>;                                                                             \
    template class TruncatedNormal<T>;                                                                           \
    template class VarianceScaling<T>;                                                                           \
    template class Orthogonal<T>;                                                                                \
    template InitializerPtr<T> get_initializer<T>(const json&);                                                  \
    template json serialize<T>(const InitializerPtr<T>&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
