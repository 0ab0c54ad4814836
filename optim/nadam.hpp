// Keras 3's Nadam (keras/src/optimizers/nadam.py), defaults learning_rate 0.001, beta_1 0.9,
// beta_2 0.999, epsilon 1e-7. With t = iterations() + 1 and mu(s) = beta_1 * (1 - 0.5 * 0.96^s):
//
//   once per step: u_product *= mu(t)          (extra variable "u_product", starts at 1)
//   m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)    (slots "momentum", "velocity")
//   m_hat = mu(t+1) * m / (1 - u_product * mu(t+1)) + (1 - mu(t)) * g / (1 - u_product)
//   v_hat = v / (1 - beta_2^t)
//   w -= m_hat * lr / (sqrt(v_hat) + epsilon)
#pragma once

#include "optim/optimizer_base.hpp"

namespace xtape {

template <class T>
/// keras.optimizers.Nadam: Adam with Nesterov momentum (the update at the top of this file).
class Nadam : public OptimizerBase<T> {
public:
    /// Nadam(learning_rate = 0.001, beta_1 = 0.9, beta_2 = 0.999, epsilon = 1e-7); `args` holds clipping and weight decay.
    explicit Nadam(LearningRate learning_rate = 0.001, double beta_1 = 0.9, double beta_2 = 0.999,
                   double epsilon = 1e-7, const OptimizerArgs& args = {});
    /// From Keras's config keys (also Keras 1/2 forms, see OptimizerBase::parse_base_config); ValueError for unknown keys.
    static std::shared_ptr<Nadam> from_config(const json& config);

    std::string class_name() const override { return "Nadam"; }
    json get_config() const override;
    /// Keras 1/2's schedule_decay (tf.keras 2's legacy Nadam wrote it as `decay`, 0.004 by
    /// default): mu(s) = beta_1 * (1 - 0.5 * 0.96^(schedule_decay * s)). nullopt: Keras 3's
    /// 0.96^s. Written back as `decay`, the key tf.keras 2 reads.
    void set_schedule_decay(std::optional<double> d) { m_schedule_decay = d; }
    /// Keras 1/2's schedule_decay (momentum cache decay), none for Keras 3's Nadam.
    std::optional<double> schedule_decay() const { return m_schedule_decay; }

protected:
    void build_slots() override;
    void before_update_steps(double lr) override;
    void update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr) override;

private:
    double mu(double step) const;
    double m_beta_1, m_beta_2, m_epsilon;
    std::optional<double> m_schedule_decay;
    std::size_t m_m_slot = 0, m_v_slot = 0, m_u_product = 0;
};

} // namespace xtape
