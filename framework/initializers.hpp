// Keras's weight initializers, constructible directly (GlorotUniform<float>(42)) or by name
// through get_initializer<T>(spec) (framework/initializer.hpp).
//
// Random initializers follow Keras 3: the seed is fixed at construction (drawn once from the
// global generator, xtape::next_seed(), when none is given), so every call returns the same
// values. Numbers are drawn serially from std::mt19937_64 in double and rounded to T, so float
// and double initializers with the same seed agree to float precision and a seed reproduces
// on every platform (the distributions are written out here, not taken from <random>, whose
// normal_distribution differs between standard libraries).
#pragma once

#include "framework/initializer.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace xtape {

/// An initializer's seed: nullopt draws one from the global generator at construction.
using seed_t = std::optional<std::uint64_t>;

/// Keras's compute_fans: rank 0 -> (1, 1); rank 1 -> (n, n); rank 2 -> (rows, cols); higher
/// ranks are convolution kernels (..., in, out) whose leading dims form the receptive field:
/// fan_in = in * receptive, fan_out = out * receptive.
std::pair<double, double> compute_fans(const shape_t& shape);

template <class T>
/// keras.initializers.Zeros: every value 0.
class Zeros : public Initializer<T> {
public:
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "Zeros"; }
    json get_config() const override { return json::object(); }
};

template <class T>
/// keras.initializers.Ones: every value 1.
class Ones : public Initializer<T> {
public:
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "Ones"; }
    json get_config() const override { return json::object(); }
};

template <class T>
/// keras.initializers.Constant(value = 0): every value `value`.
class Constant : public Initializer<T> {
public:
    /// Constant(value = 0.0).
    explicit Constant(double value = 0.0)
        : m_value(value)
    {
    }
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "Constant"; }
    json get_config() const override { return { { "value", m_value } }; }
    /// The value every element gets.
    double value() const { return m_value; }

private:
    double m_value;
};

/// gain * eye(rows, cols); requires a rank-2 shape (ValueError otherwise).
template <class T>
class Identity : public Initializer<T> {
public:
    /// Identity(gain = 1.0): the identity matrix times gain.
    explicit Identity(double gain = 1.0)
        : m_gain(gain)
    {
    }
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "Identity"; }
    json get_config() const override { return { { "gain", m_gain } }; }

private:
    double m_gain;
};

/// Base of the seeded initializers. config "seed" is the seed the user gave (null when drawn).
template <class T>
class RandomInitializer : public Initializer<T> {
public:
    /// Uses `seed`, or draws one from xtape::next_seed() when it is nullopt.
    explicit RandomInitializer(seed_t seed);
    /// The seed actually used (the given one, or the one drawn at construction).
    std::uint64_t seed() const { return m_seed; }
    json get_config() const override;

protected:
    seed_t m_init_seed;
    std::uint64_t m_seed;
};

template <class T>
/// keras.initializers.RandomNormal: Normal(mean, stddev) values, by default mean 0 and stddev 0.05.
class RandomNormal : public RandomInitializer<T> {
public:
    /// RandomNormal(mean = 0.0, stddev = 0.05, seed = None).
    explicit RandomNormal(double mean = 0.0, double stddev = 0.05, seed_t seed = std::nullopt);
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "RandomNormal"; }
    json get_config() const override;

private:
    double m_mean, m_stddev;
};

/// Uniform in [minval, maxval).
template <class T>
class RandomUniform : public RandomInitializer<T> {
public:
    /// RandomUniform(minval = -0.05, maxval = 0.05, seed = None).
    explicit RandomUniform(double minval = -0.05, double maxval = 0.05, seed_t seed = std::nullopt);
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "RandomUniform"; }
    json get_config() const override;

private:
    double m_minval, m_maxval;
};

/// Normal(mean, stddev) with values more than two stddev from the mean drawn again (so the
/// result's standard deviation is 0.8796 * stddev).
template <class T>
class TruncatedNormal : public RandomInitializer<T> {
public:
    /// TruncatedNormal(mean = 0.0, stddev = 0.05, seed = None).
    explicit TruncatedNormal(double mean = 0.0, double stddev = 0.05, seed_t seed = std::nullopt);
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "TruncatedNormal"; }
    json get_config() const override;

private:
    double m_mean, m_stddev;
};

/// stddev (or uniform limit) from scale / n, n = fan_in, fan_out or their mean (compute_fans,
/// each at least 1). distribution "truncated_normal" divides the stddev by 0.87962566103423978 so
/// that the truncated result has variance scale / n; "untruncated_normal" does not; "uniform"
/// uses limit sqrt(3 scale / n). "normal" means "truncated_normal" (Keras 2).
/// requires: scale > 0, a known mode and distribution (ValueError otherwise).
template <class T>
class VarianceScaling : public RandomInitializer<T> {
public:
    /// VarianceScaling(scale = 1.0, mode = "fan_in", distribution = "truncated_normal", seed = None).
    explicit VarianceScaling(double scale = 1.0, std::string mode = "fan_in",
                             std::string distribution = "truncated_normal", seed_t seed = std::nullopt);
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "VarianceScaling"; }
    json get_config() const override;
    /// The target variance times n: stddev^2 (or limit^2 / 3) = scale / n.
    double scale() const { return m_scale; }
    /// "fan_in", "fan_out" or "fan_avg": the n that scale is divided by.
    const std::string& mode() const { return m_mode; }
    /// "truncated_normal", "untruncated_normal" or "uniform" (Keras 2's "normal" read as "truncated_normal").
    const std::string& distribution() const { return m_distribution; }

private:
    double m_scale;
    std::string m_mode, m_distribution;
};

// The named variance-scaling presets; their config holds only the seed, as in Keras.

/// limit sqrt(6 / (fan_in + fan_out)).
template <class T>
class GlorotUniform : public VarianceScaling<T> {
public:
    /// GlorotUniform(seed = None) = VarianceScaling(1.0, "fan_avg", "uniform", seed): Keras's default kernel initializer.
    explicit GlorotUniform(seed_t seed = std::nullopt)
        : VarianceScaling<T>(1.0, "fan_avg", "uniform", seed)
    {
    }
    std::string class_name() const override { return "GlorotUniform"; }
    json get_config() const override { return RandomInitializer<T>::get_config(); }
};

/// stddev sqrt(2 / (fan_in + fan_out)).
template <class T>
class GlorotNormal : public VarianceScaling<T> {
public:
    /// GlorotNormal(seed = None) = VarianceScaling(1.0, "fan_avg", "truncated_normal", seed).
    explicit GlorotNormal(seed_t seed = std::nullopt)
        : VarianceScaling<T>(1.0, "fan_avg", "truncated_normal", seed)
    {
    }
    std::string class_name() const override { return "GlorotNormal"; }
    json get_config() const override { return RandomInitializer<T>::get_config(); }
};

/// limit sqrt(6 / fan_in).
template <class T>
class HeUniform : public VarianceScaling<T> {
public:
    /// HeUniform(seed = None) = VarianceScaling(2.0, "fan_in", "uniform", seed).
    explicit HeUniform(seed_t seed = std::nullopt)
        : VarianceScaling<T>(2.0, "fan_in", "uniform", seed)
    {
    }
    std::string class_name() const override { return "HeUniform"; }
    json get_config() const override { return RandomInitializer<T>::get_config(); }
};

/// stddev sqrt(2 / fan_in).
template <class T>
class HeNormal : public VarianceScaling<T> {
public:
    /// HeNormal(seed = None) = VarianceScaling(2.0, "fan_in", "truncated_normal", seed).
    explicit HeNormal(seed_t seed = std::nullopt)
        : VarianceScaling<T>(2.0, "fan_in", "truncated_normal", seed)
    {
    }
    std::string class_name() const override { return "HeNormal"; }
    json get_config() const override { return RandomInitializer<T>::get_config(); }
};

/// limit sqrt(3 / fan_in).
template <class T>
class LecunUniform : public VarianceScaling<T> {
public:
    /// LecunUniform(seed = None) = VarianceScaling(1.0, "fan_in", "uniform", seed).
    explicit LecunUniform(seed_t seed = std::nullopt)
        : VarianceScaling<T>(1.0, "fan_in", "uniform", seed)
    {
    }
    std::string class_name() const override { return "LecunUniform"; }
    json get_config() const override { return RandomInitializer<T>::get_config(); }
};

/// stddev sqrt(1 / fan_in).
template <class T>
class LecunNormal : public VarianceScaling<T> {
public:
    /// LecunNormal(seed = None) = VarianceScaling(1.0, "fan_in", "truncated_normal", seed).
    explicit LecunNormal(seed_t seed = std::nullopt)
        : VarianceScaling<T>(1.0, "fan_in", "truncated_normal", seed)
    {
    }
    std::string class_name() const override { return "LecunNormal"; }
    json get_config() const override { return RandomInitializer<T>::get_config(); }
};

/// gain * Q, Q from the QR decomposition (R's diagonal made positive) of a normal matrix of shape
/// (max(r, c), min(r, c)), with r = product of all dims but the last and c = the last; transposed
/// when r < c so rows (or columns) are orthonormal. requires: rank >= 2 (ValueError otherwise).
template <class T>
class Orthogonal : public RandomInitializer<T> {
public:
    /// Orthogonal(gain = 1.0, seed = None): an orthogonal matrix times gain.
    explicit Orthogonal(double gain = 1.0, seed_t seed = std::nullopt);
    array_t<T> operator()(const shape_t& shape) const override;
    std::string class_name() const override { return "Orthogonal"; }
    json get_config() const override;

private:
    double m_gain;
};

} // namespace xtape
