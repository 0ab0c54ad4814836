#include "optim/registry.hpp"

#include "framework/keras_object.hpp"

#include <algorithm>
#include <cctype>

namespace xtape {

template <class T>
OptimizerPtr<T> get_optimizer(const json& spec)
{
    if (spec.is_null())
        throw ValueError("Could not interpret optimizer identifier: null");
    KerasSpec s = split_keras_spec(spec, "optimizer");
    // "Custom>Adam" (tf.keras 2.13+ files) and dotted paths name the same classes.
    std::string n = s.class_name;
    if (auto p = n.find_last_of(">."); p != std::string::npos)
        n = n.substr(p + 1);
    std::string key = n;
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const json& c = s.config;
    if (key == "sgd")
        return SGD<T>::from_config(c);
    if (key == "adam")
        return Adam<T>::from_config(c);
    if (key == "adamw")
        return AdamW<T>::from_config(c);
    if (key == "rmsprop")
        return RMSprop<T>::from_config(c);
    if (key == "adagrad")
        return Adagrad<T>::from_config(c);
    if (key == "nadam")
        return Nadam<T>::from_config(c);
    throw KeyError("Could not interpret optimizer identifier: '" + s.class_name +
                   "'. Known: sgd, adam, adamw, rmsprop, adagrad, nadam");
}

template <class T>
json serialize_optimizer(const Optimizer<T>& optimizer)
{
    return keras3_serialized("keras.optimizers", optimizer.class_name(), optimizer.get_config());
}

template OptimizerPtr<float> get_optimizer<float>(const json&);
template OptimizerPtr<double> get_optimizer<double>(const json&);
template json serialize_optimizer<float>(const Optimizer<float>&);
template json serialize_optimizer<double>(const Optimizer<double>&);

} // namespace xtape
