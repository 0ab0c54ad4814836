#include "layers/leaky_relu.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

#include <sstream>

namespace xtape {

template<class T>
LeakyReLU<T>::LeakyReLU(double negative_slope, const std::string& name, bool trainable)
  : Layer<T>("LeakyReLU", name, trainable)
  , m_negative_slope(negative_slope)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (!(negative_slope >= 0.0)) {
        std::ostringstream os;
        os << "The negative_slope value of a Leaky ReLU layer cannot be None or negative value. Expected a "
              "float. Received: negative_slope="
           << negative_slope;
        throw ValueError(os.str());
    }
}

template<class T>
std::shared_ptr<LeakyReLU<T>> LeakyReLU<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json slope = config_first(config, { "negative_slope", "alpha" });
    double s = 0.3;
    if (!slope.is_null()) {
        if (!slope.is_number())
            throw ValueError("LeakyReLU config: negative_slope must be a number, got " + slope.dump());
        s = slope.get<double>();
    }
    return std::make_shared<LeakyReLU<T>>(s, a.name, a.trainable);
}

template<class T>
json LeakyReLU<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["negative_slope"] = m_negative_slope;
    return c;
}

template<class T>
Tensor<T> LeakyReLU<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return leaky_relu(x, static_cast<T>(m_negative_slope));
}

template class LeakyReLU<float>;
template class LeakyReLU<double>;

} // namespace xtape
