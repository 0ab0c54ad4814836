#include "layers/activation.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

namespace xtape {

std::string activation_from_config(const json& spec)
{
    std::string name;
    if (spec.is_null())
        return "linear";
    if (spec.is_string()) {
        name = spec.get<std::string>();
    } else if (spec.is_object()) {
        // Keras 3 may serialize a built-in function as {"class_name": "function", "config": "relu"}.
        auto c = spec.find("config");
        if (c != spec.end() && c->is_string())
            name = c->get<std::string>();
        else if (spec.contains("class_name") && spec["class_name"].is_string())
            name = spec["class_name"].get<std::string>();
    }
    if (name.empty())
        throw ValueError("Could not interpret activation function identifier: " + spec.dump());
    if (!is_activation_name(name))
        throw KeyError("Unknown activation function: '" + name +
                       "'. xtape knows Keras's built-in activations "
                       "(relu, sigmoid, softmax, tanh, linear, ...)");
    return name;
}

template<class T>
Activation<T>::Activation(const std::string& activation, const std::string& name, bool trainable)
  : Layer<T>("Activation", name, trainable)
  , m_activation(activation_from_config(json(activation)))
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
}

template<class T>
std::shared_ptr<Activation<T>> Activation<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    if (!config.contains("activation"))
        throw KeyError("Activation.from_config: the config has no 'activation' key: " + config.dump());
    return std::make_shared<Activation<T>>(activation_from_config(config["activation"]), a.name, a.trainable);
}

template<class T>
json Activation<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["activation"] = m_activation;
    return c;
}

template<class T>
Tensor<T> Activation<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return m_activation == "linear" ? x : xtape::activation<T>(m_activation, x);
}

template class Activation<float>;
template class Activation<double>;

} // namespace xtape
