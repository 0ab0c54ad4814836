// Keras 3's AdamW (keras/src/optimizers/adamw.py): Adam with decoupled weight decay, applied by
// the base before each update as w -= w * weight_decay * lr. Defaults as Adam, weight_decay 0.004.
#pragma once

#include "optim/adam.hpp"

namespace xtape {

template <class T>
/// keras.optimizers.AdamW: Adam with decoupled weight decay (default 0.004).
class AdamW : public Adam<T> {
public:
    /// args.weight_decay is ignored: the weight_decay argument is the one used.
    explicit AdamW(LearningRate learning_rate = 0.001, double weight_decay = 0.004, double beta_1 = 0.9,
                   double beta_2 = 0.999, double epsilon = 1e-7, bool amsgrad = false, const OptimizerArgs& args = {});
    /// requires: weight_decay not null (ValueError, as Keras).
    static std::shared_ptr<AdamW> from_config(const json& config);
    std::string class_name() const override { return "AdamW"; }
};

} // namespace xtape
