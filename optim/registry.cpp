#include "optim/registry.hpp"

#include "framework/keras_object.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace xtape {

namespace {

// Note [Optimizer defaults by version]: a config leaves out the keys its writer had at their
// defaults (Keras 1 and 2 wrote only their own arguments, hand-written configs fewer), and some
// defaults changed between versions. The keys left out get the defaults of the version that wrote
// the file (its keras_version attribute; saving/keras_h5.cpp passes it), here and nowhere else:
//   Keras 1.x:              epsilon 1e-8 (Adam, Nadam, RMSprop, Adagrad); Adagrad lr 0.01 and
//                           accumulators from 0; Nadam lr 0.002 and schedule_decay 0.004
//   Keras 2.0-2.3:          the same with epsilon None, i.e. the backend's 1e-7
//   tf.keras 2 ("-tf", 2.4 and later) and Keras 3: the classes' own defaults (Adagrad lr 0.001
//                           and initial_accumulator_value 0.1, epsilon 1e-7; tf.keras's legacy
//                           Nadam always wrote its schedule decay as `decay`)
// RMSprop's rho (0.9), SGD's learning rate (0.01) and Adam's (0.001) never changed. A null
// epsilon (Keras 2's None) reads as 1e-7 in every class.
enum class KerasLine { keras1, keras2, current };

KerasLine keras_line(const std::string& version)
{
    if (version.empty())
        return KerasLine::current;
    const int major = std::atoi(version.c_str());
    if (major == 1)
        return KerasLine::keras1;
    if (major != 2 || version.find("-tf") != std::string::npos)
        return KerasLine::current;
    const auto dot = version.find('.');
    const int minor = dot == std::string::npos ? 0 : std::atoi(version.c_str() + dot + 1);
    return minor < 4 ? KerasLine::keras2 : KerasLine::current; // Keras 2.4 was tf.keras
}

json with_version_defaults(json config, const std::string& key, const std::string& keras_version)
{
    const KerasLine line = keras_line(keras_version);
    if (line == KerasLine::current || !config.is_object())
        return config;
    auto fill = [&config](const char* k, double v) {
        if (!config.contains(k))
            config[k] = v;
    };
    auto fill_lr = [&config](double v) {
        if (!config.contains("learning_rate") && !config.contains("lr"))
            config["lr"] = v;
    };
    if (line == KerasLine::keras1 && (key == "adam" || key == "nadam" || key == "rmsprop" || key == "adagrad"))
        fill("epsilon", 1e-8);
    if (key == "adagrad") {
        fill_lr(0.01);
        fill("initial_accumulator_value", 0.0);
    } else if (key == "nadam") {
        fill_lr(0.002);
        fill("schedule_decay", 0.004);
    }
    return config;
}

} // namespace

template <class T>
OptimizerPtr<T> get_optimizer(const json& spec, const std::string& keras_version)
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
    const json c = with_version_defaults(s.config, key, keras_version);
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

template OptimizerPtr<float> get_optimizer<float>(const json&, const std::string&);
template OptimizerPtr<double> get_optimizer<double>(const json&, const std::string&);
template json serialize_optimizer<float>(const Optimizer<float>&);
template json serialize_optimizer<double>(const Optimizer<double>&);

} // namespace xtape
