// Dropout: Keras's keras.layers.Dropout. In training, each unit is zeroed with probability
// `rate` and the survivors are scaled by 1 / (1 - rate) (inverted dropout), so inference is
// the identity and needs no rescaling.
//
// Randomness: each layer owns a generator seeded from `seed`, or from xtape::next_seed() when
// no seed is given (so set_random_seed() before building a model fixes every mask). Masks are
// drawn serially, so they do not depend on the thread count; each training call draws a new mask.
#pragma once

#include "framework/layer.hpp"
#include "framework/random.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace xtape {

/// The dropout op: x * keep / (1 - rate), keep ~ Bernoulli(1 - rate) drawn from `rng` in
/// row-major order over `noise_shape` and broadcast to x's shape (empty noise_shape: x's shape).
/// requires: 0 <= rate <= 1; noise_shape of x's rank, each dimension 1 or x's (ShapeError).
/// ensures:  the backward multiplies dy by the same mask; rate 1 gives zeros.
template<class T>
Tensor<T> dropout(const Tensor<T>& x, double rate, const shape_t& noise_shape, rng_t& rng);

/// Keras's Dropout arguments: rate, noise_shape, seed, name, trainable.
struct DropoutOptions
{
    double rate = 0.0;
    /// The mask's shape, one entry per input dimension; none_dim takes the input's dimension.
    std::optional<dims_t> noise_shape;
    std::optional<std::uint64_t> seed;
    std::string name;
    bool trainable = true;
};

template<class T>
/// keras.layers.Dropout: zeroes a fraction `rate` of the inputs while training and scales the rest by 1 / (1 - rate).
class Dropout : public Layer<T>
{
public:
    /// requires: 0 <= rate <= 1 and noise_shape dimensions positive or none_dim (ValueError).
    explicit Dropout(const DropoutOptions& options);
    /// Dropout(rate, seed), no noise_shape.
    explicit Dropout(double rate, std::optional<std::uint64_t> seed = std::nullopt)
      : Dropout(make_options(rate, seed))
    {
    }

    /// Keras 2/3 "rate", "noise_shape", "seed" and Keras 1 "p".
    static std::shared_ptr<Dropout> from_config(const json& config);
    json get_config() const override;

    /// The fraction of inputs dropped.
    double rate() const { return m_rate; }
    /// The mask's shape, when not the input's.
    const std::optional<dims_t>& noise_shape() const { return m_noise_shape; }
    /// The seed given at construction, if any.
    std::optional<std::uint64_t> seed() const { return m_seed; }
    /// Restarts the mask generator from `seed`: a gradient check replays the same masks at every
    /// evaluation of the loss, so its differences measure the model, not the noise.
    void reseed(std::uint64_t seed) override { m_rng.seed(seed); }
    std::string random_state() const override { return rng_state(m_rng); }
    void set_random_state(const std::string& s) override { set_rng_state(m_rng, s, "layer \"" + this->name() + "\""); }

protected:
    /// Identity unless training and rate > 0.
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Any shape: dropout is elementwise (noise_shape is checked when the noise is drawn).
    void check_input(const shape_t&) const override {}

private:
    static DropoutOptions make_options(double rate, std::optional<std::uint64_t> seed)
    {
        DropoutOptions o;
        o.rate = rate;
        o.seed = seed;
        return o;
    }
    double m_rate;
    std::optional<dims_t> m_noise_shape;
    std::optional<std::uint64_t> m_seed;
    rng_t m_rng;
};

} // namespace xtape
