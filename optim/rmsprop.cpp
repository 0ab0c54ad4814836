#include "optim/rmsprop.hpp"

#include "framework/parallel.hpp"

#include <cmath>

namespace xtape {
namespace {

// One loop per variant, so none branches per element (Note [Restrict kernels] in adam.cpp).
template <class T, bool Centered, bool Momentum>
void rmsprop_rows(std::size_t b, std::size_t e, const T* __restrict g, T* __restrict w, T* __restrict v,
                  T* __restrict avg, T* __restrict m, T a, T rho, T one_minus_rho, T eps, T mu)
{
    for (std::size_t i = b; i < e; ++i) {
        v[i] = rho * v[i] + one_minus_rho * (g[i] * g[i]);
        T denominator;
        if constexpr (Centered) {
            avg[i] = rho * avg[i] + one_minus_rho * g[i];
            denominator = v[i] - avg[i] * avg[i] + eps;
        } else {
            denominator = v[i] + eps;
        }
        const T increment = a * g[i] / std::sqrt(denominator);
        if constexpr (Momentum) {
            m[i] = mu * m[i] + increment;
            w[i] -= m[i];
        } else {
            w[i] -= increment;
        }
    }
}

} // namespace

template <class T>
RMSprop<T>::RMSprop(LearningRate learning_rate, double rho, double momentum, double epsilon, bool centered,
                    const OptimizerArgs& args)
    : OptimizerBase<T>(std::move(learning_rate), "rmsprop")
    , m_rho(rho)
    , m_momentum(momentum)
    , m_epsilon(epsilon)
    , m_centered(centered)
{
    this->set_args(args);
}

template <class T>
std::shared_ptr<RMSprop<T>> RMSprop<T>::from_config(const json& config)
{
    LearningRate lr(0.001);
    OptimizerArgs args =
        OptimizerBase<T>::parse_base_config(config, { "rho", "momentum", "epsilon", "centered" }, "RMSprop", lr);
    return std::make_shared<RMSprop<T>>(lr, config_number(config, "rho", 0.9), config_number(config, "momentum", 0.0),
                                        config_number(config, "epsilon", 1e-7), config_bool(config, "centered", false),
                                        args);
}

template <class T>
json RMSprop<T>::get_config() const
{
    json c = OptimizerBase<T>::get_config();
    c["rho"] = m_rho;
    c["momentum"] = m_momentum;
    c["epsilon"] = m_epsilon;
    c["centered"] = m_centered;
    return c;
}

template <class T>
void RMSprop<T>::build_slots()
{
    m_v_slot = this->add_slots("velocity");
    if (m_momentum > 0.0)
        m_m_slot = this->add_slots("momentum");
    if (m_centered)
        m_a_slot = this->add_slots("average_gradient");
}

template <class T>
void RMSprop<T>::update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr)
{
    const T a = static_cast<T>(lr), rho = static_cast<T>(m_rho), one_minus_rho = static_cast<T>(1.0 - m_rho);
    const T eps = static_cast<T>(m_epsilon), mu = static_cast<T>(m_momentum);
    T* v = this->slot(m_v_slot, index);
    T* m = m_momentum > 0.0 ? this->slot(m_m_slot, index) : nullptr;
    T* avg = m_centered ? this->slot(m_a_slot, index) : nullptr;
    parallel_for(n, [=](std::size_t b, std::size_t e) {
        if (avg && m)
            rmsprop_rows<T, true, true>(b, e, g, w, v, avg, m, a, rho, one_minus_rho, eps, mu);
        else if (avg)
            rmsprop_rows<T, true, false>(b, e, g, w, v, avg, m, a, rho, one_minus_rho, eps, mu);
        else if (m)
            rmsprop_rows<T, false, true>(b, e, g, w, v, avg, m, a, rho, one_minus_rho, eps, mu);
        else
            rmsprop_rows<T, false, false>(b, e, g, w, v, avg, m, a, rho, one_minus_rho, eps, mu);
    });
}

template class RMSprop<float>;
template class RMSprop<double>;

} // namespace xtape
