// Keras's SpatialDropout1D and SpatialDropout2D: dropout of whole feature maps. In training each
// (sample, channel) pair is kept with probability 1 - rate, for every step or pixel at once, and the
// kept ones are scaled by 1 / (1 - rate) (Keras's inverted dropout); inference is the identity.
// The noise has shape (batch, 1, C) for (batch, steps, C), and (batch, 1, 1, C) or, channels_first,
// (batch, C, 1, 1) for images; it is the dropout op of layers/dropout.hpp with that noise shape.
//
// Randomness as Dropout: a generator per layer seeded from `seed`, or from xtape::next_seed() when
// none is given (so set_random_seed() fixes every draw); draws are serial, so they do not depend on
// the thread count. A mask passes through unchanged (Keras 3's Dropout supports masking).
#pragma once

#include "framework/layer.hpp"
#include "framework/random.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace xtape {

template <class T>
/// The spatial dropouts' common implementation: drops whole channels of each sample during training (see the top of this file).
class SpatialDropout : public Layer<T> {
public:
    /// Restarts the mask generator from `seed` (Layer::reseed).
    void reseed(std::uint64_t seed) override { m_rng.seed(seed); }
    std::string random_state() const override { return rng_state(m_rng); }
    void set_random_state(const std::string& s) override { set_rng_state(m_rng, s, "layer \"" + this->name() + "\""); }
    /// The fraction of channels dropped in training, in [0, 1].
    double rate() const { return m_rate; }
    /// The seed given at construction; nullopt means one drawn from xtape::next_seed().
    std::optional<std::uint64_t> seed() const { return m_seed; }
    /// "channels_last" or "channels_first" (always channels_last for SpatialDropout1D).
    const std::string& data_format() const { return m_data_format; }

    /// Keras 3's keys: rate, seed, and data_format for SpatialDropout2D.
    json get_config() const override;

protected:
    /// requires: 0 <= rate <= 1 (ValueError, Keras's message), data_format channels_last/first.
    SpatialDropout(const char* class_name, std::size_t spatial_axes, double rate, std::optional<std::uint64_t> seed,
                   const std::string& data_format, const std::string& name, bool trainable);
    /// rate (Keras 1: p), seed, data_format or dim_ordering.
    struct Args {
        double rate;
        std::optional<std::uint64_t> seed;
        std::string data_format;
        std::string name;
        bool trainable;
    };
    /// Reads rate (Keras 1: p), seed, data_format (Keras 1: dim_ordering), name and trainable; ValueError naming `class_name` for bad values.
    static Args args_from_config(const json& config, const char* class_name);

    /// Identity unless training and rate > 0.
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank spatial_axes + 2, any sizes (ShapeError naming the layer).
    void check_input(const shape_t& x) const override;

private:
    std::size_t m_spatial_axes;
    double m_rate;
    std::optional<std::uint64_t> m_seed;
    std::string m_data_format;
    rng_t m_rng;
};

template <class T>
/// keras.layers.SpatialDropout1D: drops whole channels of (batch, steps, C), noise shape (batch, 1, C).
class SpatialDropout1D : public SpatialDropout<T> {
public:
    /// SpatialDropout1D(rate, seed = None); ValueError unless 0 <= rate <= 1.
    explicit SpatialDropout1D(double rate, std::optional<std::uint64_t> seed = std::nullopt,
                              const std::string& name = "", bool trainable = true)
        : SpatialDropout<T>("SpatialDropout1D", 1, rate, seed, "channels_last", name, trainable)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config.
    static std::shared_ptr<SpatialDropout1D> from_config(const json& config)
    {
        const auto a = SpatialDropout<T>::args_from_config(config, "SpatialDropout1D");
        return std::make_shared<SpatialDropout1D>(a.rate, a.seed, a.name, a.trainable);
    }
};

template <class T>
/// keras.layers.SpatialDropout2D: drops whole feature maps of images, noise (batch, 1, 1, C) or (batch, C, 1, 1).
class SpatialDropout2D : public SpatialDropout<T> {
public:
    /// SpatialDropout2D(rate, data_format = "channels_last", seed = None); ValueError unless 0 <= rate <= 1.
    explicit SpatialDropout2D(double rate, const std::string& data_format = "channels_last",
                              std::optional<std::uint64_t> seed = std::nullopt, const std::string& name = "",
                              bool trainable = true)
        : SpatialDropout<T>("SpatialDropout2D", 2, rate, seed, data_format, name, trainable)
    {
    }
    /// Builds the layer from a Keras 1, 2 or 3 config.
    static std::shared_ptr<SpatialDropout2D> from_config(const json& config)
    {
        const auto a = SpatialDropout<T>::args_from_config(config, "SpatialDropout2D");
        return std::make_shared<SpatialDropout2D>(a.rate, a.data_format, a.seed, a.name, a.trainable);
    }
};

} // namespace xtape
