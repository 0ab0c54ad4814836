#include "layers/relu.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

#include <sstream>

namespace xtape {

namespace {
std::string num(double v)
{
    std::ostringstream os;
    os << v;
    return os.str();
}
} // namespace

template<class T>
ReLU<T>::ReLU(const ReLUOptions& o)
  : Layer<T>("ReLU", o.name, o.trainable)
  , m_max_value(o.max_value)
  , m_negative_slope(o.negative_slope)
  , m_threshold(o.threshold)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (m_max_value && *m_max_value < 0.0)
        throw ValueError("max_value of a ReLU layer cannot be a negative value. Received: max_value=" +
                         num(*m_max_value));
    if (m_negative_slope < 0.0)
        throw ValueError(
          "negative_slope of a ReLU layer cannot be a negative value. Received: negative_slope=" +
          num(m_negative_slope));
    if (m_threshold < 0.0)
        throw ValueError("threshold of a ReLU layer cannot be a negative value. Received: threshold=" +
                         num(m_threshold));
}

template<class T>
std::shared_ptr<ReLU<T>> ReLU<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    ReLUOptions o;
    auto mv = config.find("max_value");
    if (mv != config.end() && !mv->is_null())
        o.max_value = config_number(config, "max_value", 0.0);
    o.negative_slope = config_number(config, "negative_slope", 0.0);
    o.threshold = config_number(config, "threshold", 0.0);
    o.name = a.name;
    o.trainable = a.trainable;
    return std::make_shared<ReLU<T>>(o);
}

template<class T>
json ReLU<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["max_value"] = m_max_value ? json(*m_max_value) : json();
    c["negative_slope"] = m_negative_slope;
    c["threshold"] = m_threshold;
    return c;
}

template<class T>
Tensor<T> ReLU<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    if (!m_max_value && m_negative_slope == 0.0 && m_threshold == 0.0)
        return relu(x);
    return relu(x,
                static_cast<T>(m_negative_slope),
                m_max_value ? static_cast<T>(*m_max_value) : T(-1),
                static_cast<T>(m_threshold));
}

template class ReLU<float>;
template class ReLU<double>;

} // namespace xtape
