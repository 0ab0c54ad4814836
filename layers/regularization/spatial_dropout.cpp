#include "layers/regularization/spatial_dropout.hpp"

#include "layers/dropout.hpp"
#include "layers/layer_config.hpp"
#include "layers/spatial_config.hpp"

#include <sstream>

namespace xtape {

template <class T>
SpatialDropout<T>::SpatialDropout(const char* class_name, std::size_t spatial_axes, double rate,
                                  std::optional<std::uint64_t> seed, const std::string& data_format,
                                  const std::string& name, bool trainable)
    : Layer<T>(class_name, name, trainable)
    , m_spatial_axes(spatial_axes)
    , m_rate(rate)
    , m_seed(seed)
    , m_data_format(standardize_data_format(data_format))
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (!(rate >= 0.0 && rate <= 1.0)) {
        std::ostringstream os;
        os << "Invalid value received for argument `rate`. Expected a float value between 0 and 1. Received: rate="
           << rate;
        throw ValueError(os.str());
    }
    // As Dropout: only a layer that drops anything owns a seeded generator (and draws a global seed).
    if (m_rate > 0.0)
        m_rng.seed(m_seed ? *m_seed : next_seed());
}

template <class T>
typename SpatialDropout<T>::Args SpatialDropout<T>::args_from_config(const json& config, const char* class_name)
{
    const LayerArgs a = layer_args_from_config(config);
    const json rate = config_first(config, { "rate", "p" });
    if (!rate.is_number())
        throw ValueError(std::string(class_name) + " config: expected a numeric 'rate' (Keras 1: 'p'), got " +
                         config.dump());
    std::optional<std::uint64_t> seed;
    auto s = config.find("seed");
    if (s != config.end() && !s->is_null()) {
        if (!s->is_number_integer())
            throw ValueError(std::string(class_name) + " config: seed must be an integer or null, got " + s->dump());
        seed = s->get<std::uint64_t>();
    }
    return Args{ rate.get<double>(), seed, data_format_from_config(config), a.name, a.trainable };
}

template <class T>
json SpatialDropout<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["rate"] = m_rate;
    c["seed"] = m_seed ? json(*m_seed) : json();
    if (m_spatial_axes == 2)
        c["data_format"] = m_data_format;
    return c;
}

template <class T>
void SpatialDropout<T>::check_input(const shape_t& x) const
{
    if (x.size() != m_spatial_axes + 2)
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(m_spatial_axes + 2) + ", found ndim=" + std::to_string(x.size()) +
                         ". Full shape received: " + shape_str(x));
}

template <class T>
Tensor<T> SpatialDropout<T>::call(const Tensor<T>& x, bool training, const Tensor<T>&)
{
    if (!training || m_rate == 0.0)
        return x;
    // One draw per (sample, channel): every spatial axis of the noise is 1.
    const shape_t xs = x.shape();
    shape_t noise(xs.size(), 1);
    noise[0] = xs[0];
    const std::size_t channel_axis = m_data_format == "channels_first" ? 1 : xs.size() - 1;
    noise[channel_axis] = xs[channel_axis];
    return dropout(x, m_rate, noise, m_rng);
}

template class SpatialDropout<float>;
template class SpatialDropout<double>;

} // namespace xtape
