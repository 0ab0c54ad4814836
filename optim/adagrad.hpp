// Keras 3's Adagrad (keras/src/optimizers/adagrad.py), defaults learning_rate 0.001,
// initial_accumulator_value 0.1, epsilon 1e-7.
//
//   acc += g^2                              (slot "accumulator", starts at initial_accumulator_value)
//   w -= lr * g / sqrt(acc + epsilon)
#pragma once

#include "optim/optimizer_base.hpp"

namespace xtape {

template <class T>
/// keras.optimizers.Adagrad: per-element steps scaled by the accumulated squared gradients (the update at the top of this file).
class Adagrad : public OptimizerBase<T> {
public:
    /// Adagrad(learning_rate = 0.001, initial_accumulator_value = 0.1, epsilon = 1e-7); `args` holds clipping and weight decay.
    explicit Adagrad(LearningRate learning_rate = 0.001, double initial_accumulator_value = 0.1,
                     double epsilon = 1e-7, const OptimizerArgs& args = {});
    /// From Keras's config keys (also Keras 1/2 forms, see OptimizerBase::parse_base_config); ValueError for unknown keys.
    static std::shared_ptr<Adagrad> from_config(const json& config);

    std::string class_name() const override { return "Adagrad"; }
    json get_config() const override;

protected:
    void build_slots() override;
    void update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr) override;

private:
    double m_initial_accumulator_value, m_epsilon;
    std::size_t m_acc_slot = 0;
};

} // namespace xtape
