// Keras 3's SGD (keras/src/optimizers/sgd.py), defaults learning_rate 0.01, momentum 0, nesterov false.
//
//   momentum == 0:  w -= lr * g
//   momentum  > 0:  m = momentum * m - lr * g;  w += m                     (slot "momentum")
//   nesterov:       m = momentum * m - lr * g;  w += momentum * m - lr * g
#pragma once

#include "optim/optimizer_base.hpp"

namespace xtape {

/// Keras 3's SGD, with momentum and Nesterov momentum (the update at the top of this file).
template <class T>
class SGD : public OptimizerBase<T> {
public:
    /// requires: 0 <= momentum <= 1 (ValueError otherwise).
    explicit SGD(LearningRate learning_rate = 0.01, double momentum = 0.0, bool nesterov = false,
                 const OptimizerArgs& args = {});
    /// From Keras's config keys (also Keras 1/2 forms, see OptimizerBase::parse_base_config).
    static std::shared_ptr<SGD> from_config(const json& config);

    /// "SGD".
    std::string class_name() const override { return "SGD"; }
    json get_config() const override;
    /// The momentum factor (0: plain SGD).
    double momentum() const { return m_momentum; }
    /// Whether the momentum is Nesterov's.
    bool nesterov() const { return m_nesterov; }

protected:
    void build_slots() override;
    void update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr) override;

private:
    double m_momentum;
    bool m_nesterov;
    std::size_t m_momentum_slot = 0;
};

} // namespace xtape
