// Keras 3's Adam (keras/src/optimizers/adam.py), defaults learning_rate 0.001, beta_1 0.9,
// beta_2 0.999, epsilon 1e-7, amsgrad false. With t = iterations() + 1:
//
//   alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
//   m += (g - m) * (1 - beta_1)                       (slot "momentum")
//   v += (g^2 - v) * (1 - beta_2)                     (slot "velocity")
//   amsgrad: v_hat = max(v_hat, v), used for v        (slot "velocity_hat")
//   w -= m * alpha / (sqrt(v) + epsilon)
#pragma once

#include "optim/optimizer_base.hpp"

namespace xtape {

/// Keras 3's Adam (the update at the top of this file).
template <class T>
class Adam : public OptimizerBase<T> {
public:
    /// Keras's arguments and defaults; `args` holds the arguments every optimizer takes.
    explicit Adam(LearningRate learning_rate = 0.001, double beta_1 = 0.9, double beta_2 = 0.999,
                  double epsilon = 1e-7, bool amsgrad = false, const OptimizerArgs& args = {});
    /// From Keras's config keys (also Keras 1/2 forms, see OptimizerBase::parse_base_config).
    static std::shared_ptr<Adam> from_config(const json& config);

    /// "Adam".
    std::string class_name() const override { return "Adam"; }
    json get_config() const override;
    /// Decay of the first moment.
    double beta_1() const { return m_beta_1; }
    /// Decay of the second moment.
    double beta_2() const { return m_beta_2; }
    /// Added to sqrt(v) in the denominator.
    double epsilon() const { return m_epsilon; }
    /// Whether the maximum of the second moments is used (AMSGrad).
    bool amsgrad() const { return m_amsgrad; }

protected:
    /// For AdamW: the same optimizer under another default name.
    Adam(const std::string& default_name, LearningRate learning_rate, double beta_1, double beta_2, double epsilon,
         bool amsgrad);
    void build_slots() override;
    void update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr) override;

private:
    double m_beta_1, m_beta_2, m_epsilon;
    bool m_amsgrad;
    std::size_t m_m_slot = 0, m_v_slot = 0, m_vhat_slot = 0;
};

} // namespace xtape
