#include "optim/adam.hpp"

#include "framework/parallel.hpp"

#include <algorithm>
#include <cmath>

namespace xtape {
namespace {

// Note [Restrict kernels]: the update loops live in functions whose pointers are __restrict (a
// variable, its gradient and its slots never overlap), so the compiler vectorizes them without
// runtime overlap checks.
template <class T, bool Amsgrad>
void adam_rows(std::size_t b, std::size_t e, const T* __restrict g, T* __restrict w, T* __restrict m,
               T* __restrict v, T* __restrict vh, T c1, T c2, T alpha, T eps)
{
    for (std::size_t i = b; i < e; ++i) {
        m[i] += (g[i] - m[i]) * c1;
        v[i] += (g[i] * g[i] - v[i]) * c2;
        T denom_v = v[i];
        if constexpr (Amsgrad) {
            vh[i] = std::max(vh[i], v[i]);
            denom_v = vh[i];
        }
        w[i] -= m[i] * alpha / (std::sqrt(denom_v) + eps);
    }
}

} // namespace

template <class T>
Adam<T>::Adam(const std::string& default_name, LearningRate learning_rate, double beta_1, double beta_2,
              double epsilon, bool amsgrad)
    : OptimizerBase<T>(std::move(learning_rate), default_name)
    , m_beta_1(beta_1)
    , m_beta_2(beta_2)
    , m_epsilon(epsilon)
    , m_amsgrad(amsgrad)
{
}

template <class T>
Adam<T>::Adam(LearningRate learning_rate, double beta_1, double beta_2, double epsilon, bool amsgrad,
              const OptimizerArgs& args)
    : Adam("adam", std::move(learning_rate), beta_1, beta_2, epsilon, amsgrad)
{
    this->set_args(args);
}

template <class T>
std::shared_ptr<Adam<T>> Adam<T>::from_config(const json& config)
{
    LearningRate lr(0.001);
    OptimizerArgs args =
        OptimizerBase<T>::parse_base_config(config, { "beta_1", "beta_2", "epsilon", "amsgrad" }, "Adam", lr);
    return std::make_shared<Adam<T>>(lr, config_number(config, "beta_1", 0.9), config_number(config, "beta_2", 0.999),
                                     config_number(config, "epsilon", 1e-7), config_bool(config, "amsgrad", false),
                                     args);
}

template <class T>
json Adam<T>::get_config() const
{
    json c = OptimizerBase<T>::get_config();
    c["beta_1"] = m_beta_1;
    c["beta_2"] = m_beta_2;
    c["epsilon"] = m_epsilon;
    c["amsgrad"] = m_amsgrad;
    return c;
}

template <class T>
void Adam<T>::build_slots()
{
    m_m_slot = this->add_slots("momentum");
    m_v_slot = this->add_slots("velocity");
    if (m_amsgrad)
        m_vhat_slot = this->add_slots("velocity_hat");
}

template <class T>
void Adam<T>::update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr)
{
    const double t = static_cast<double>(this->iterations() + 1);
    const T alpha = static_cast<T>(lr * std::sqrt(1.0 - std::pow(m_beta_2, t)) / (1.0 - std::pow(m_beta_1, t)));
    const T c1 = static_cast<T>(1.0 - m_beta_1), c2 = static_cast<T>(1.0 - m_beta_2);
    const T eps = static_cast<T>(m_epsilon);
    T* m = this->slot(m_m_slot, index);
    T* v = this->slot(m_v_slot, index);
    T* vh = m_amsgrad ? this->slot(m_vhat_slot, index) : nullptr;
    parallel_for(n, [=](std::size_t b, std::size_t e) {
        if (vh)
            adam_rows<T, true>(b, e, g, w, m, v, vh, c1, c2, alpha, eps);
        else
            adam_rows<T, false>(b, e, g, w, m, v, vh, c1, c2, alpha, eps);
    });
}

template class Adam<float>;
template class Adam<double>;

} // namespace xtape
