#include "optim/adamw.hpp"

namespace xtape {

template <class T>
AdamW<T>::AdamW(LearningRate learning_rate, double weight_decay, double beta_1, double beta_2, double epsilon,
                bool amsgrad, const OptimizerArgs& args)
    : Adam<T>("adamw", std::move(learning_rate), beta_1, beta_2, epsilon, amsgrad)
{
    OptimizerArgs a = args;
    a.weight_decay = weight_decay;
    this->set_args(a);
}

template <class T>
std::shared_ptr<AdamW<T>> AdamW<T>::from_config(const json& config)
{
    LearningRate lr(0.001);
    OptimizerArgs args =
        OptimizerBase<T>::parse_base_config(config, { "beta_1", "beta_2", "epsilon", "amsgrad" }, "AdamW", lr);
    double wd = 0.004;
    if (config.contains("weight_decay")) {
        if (!args.weight_decay)
            throw ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None");
        wd = *args.weight_decay;
    }
    return std::make_shared<AdamW<T>>(lr, wd, config_number(config, "beta_1", 0.9),
                                      config_number(config, "beta_2", 0.999), config_number(config, "epsilon", 1e-7),
                                      config_bool(config, "amsgrad", false), args);
}

template class AdamW<float>;
template class AdamW<double>;

} // namespace xtape
