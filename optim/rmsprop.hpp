// Keras 3's RMSprop (keras/src/optimizers/rmsprop.py), defaults learning_rate 0.001, rho 0.9,
// momentum 0, epsilon 1e-7, centered false.
//
//   v = rho * v + (1 - rho) * g^2                                  (slot "velocity")
//   centered: a = rho * a + (1 - rho) * g;  d = v - a^2 + eps       (slot "average_gradient")
//   else:     d = v + eps
//   inc = lr * g / sqrt(d)
//   momentum > 0: m = momentum * m + inc; w -= m                   (slot "momentum")
//   else:         w -= inc
// Slots are created in Keras's order: velocity, momentum, average_gradient.
#pragma once

#include "optim/optimizer_base.hpp"

namespace xtape {

template <class T>
/// keras.optimizers.RMSprop: steps divided by a moving root mean square of the gradients (the update at the top of this file).
class RMSprop : public OptimizerBase<T> {
public:
    /// RMSprop(learning_rate = 0.001, rho = 0.9, momentum = 0.0, epsilon = 1e-7, centered = false); `args` holds clipping and weight decay.
    explicit RMSprop(LearningRate learning_rate = 0.001, double rho = 0.9, double momentum = 0.0,
                     double epsilon = 1e-7, bool centered = false, const OptimizerArgs& args = {});
    /// From Keras's config keys (also Keras 1/2 forms, see OptimizerBase::parse_base_config); ValueError for unknown keys.
    static std::shared_ptr<RMSprop> from_config(const json& config);

    std::string class_name() const override { return "RMSprop"; }
    json get_config() const override;

protected:
    void build_slots() override;
    void update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr) override;

private:
    double m_rho, m_momentum, m_epsilon;
    bool m_centered;
    std::size_t m_v_slot = 0, m_m_slot = 0, m_a_slot = 0;
};

} // namespace xtape
