#include "optim/nadam.hpp"

#include "framework/keras_object.hpp"
#include "framework/parallel.hpp"

#include <cmath>

namespace xtape {
namespace {

// Note [Restrict kernels] in adam.cpp.
template <class T>
void nadam_rows(std::size_t b, std::size_t e, const T* __restrict g, T* __restrict w, T* __restrict m,
                T* __restrict v, T c1, T c2, T cm, T cg, T v_corr, T a, T eps)
{
    for (std::size_t i = b; i < e; ++i) {
        m[i] += (g[i] - m[i]) * c1;
        v[i] += (g[i] * g[i] - v[i]) * c2;
        const T m_hat = cm * m[i] + cg * g[i];
        const T v_hat = v[i] / v_corr;
        w[i] -= m_hat * a / (std::sqrt(v_hat) + eps);
    }
}

} // namespace

template <class T>
Nadam<T>::Nadam(LearningRate learning_rate, double beta_1, double beta_2, double epsilon, const OptimizerArgs& args)
    : OptimizerBase<T>(std::move(learning_rate), "nadam")
    , m_beta_1(beta_1)
    , m_beta_2(beta_2)
    , m_epsilon(epsilon)
{
    this->set_args(args);
}

template <class T>
std::shared_ptr<Nadam<T>> Nadam<T>::from_config(const json& config)
{
    LearningRate lr(0.001);
    // tf.keras 2's legacy Nadam stored Keras 2's schedule_decay under `decay`; it never decayed
    // the learning rate (its update reads the rate directly).
    json c = config;
    if (c.is_object() && c.contains("decay") && !c.contains("schedule_decay")) {
        c["schedule_decay"] = c["decay"];
        c.erase("decay");
    }
    OptimizerArgs args =
        OptimizerBase<T>::parse_base_config(c, { "beta_1", "beta_2", "epsilon", "schedule_decay" }, "Nadam", lr);
    auto n = std::make_shared<Nadam<T>>(lr, config_number(c, "beta_1", 0.9), config_number(c, "beta_2", 0.999),
                                        config_number(c, "epsilon", 1e-7), args);
    n->set_schedule_decay(config_optional_number(c, "schedule_decay"));
    return n;
}

template <class T>
json Nadam<T>::get_config() const
{
    json c = OptimizerBase<T>::get_config();
    c["beta_1"] = m_beta_1;
    c["beta_2"] = m_beta_2;
    c["epsilon"] = m_epsilon;
    if (m_schedule_decay)
        c["decay"] = *m_schedule_decay;
    return c;
}

template <class T>
double Nadam<T>::mu(double step) const
{
    return m_beta_1 * (1.0 - 0.5 * std::pow(0.96, m_schedule_decay ? *m_schedule_decay * step : step));
}

template <class T>
void Nadam<T>::build_slots()
{
    m_m_slot = this->add_slots("momentum");
    m_v_slot = this->add_slots("velocity");
    m_u_product = this->add_extra_variable("u_product", array_t<T>(T(1)));
}

template <class T>
void Nadam<T>::before_update_steps(double)
{
    // Kept in T like Keras's variable, so the product rounds the same way step after step.
    T& u = this->extra(m_u_product).mutable_value().data()[0];
    u = static_cast<T>(static_cast<double>(u) * mu(static_cast<double>(this->iterations() + 1)));
}

template <class T>
void Nadam<T>::update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr)
{
    const double t = static_cast<double>(this->iterations() + 1);
    const double u_t = mu(t), u_t1 = mu(t + 1);
    const double u_product_t = static_cast<double>(this->extra(m_u_product).value().data()[0]);
    const double u_product_t1 = u_product_t * u_t1;
    const T cm = static_cast<T>(u_t1 / (1.0 - u_product_t1));
    const T cg = static_cast<T>((1.0 - u_t) / (1.0 - u_product_t));
    const T v_corr = static_cast<T>(1.0 - std::pow(m_beta_2, t));
    const T c1 = static_cast<T>(1.0 - m_beta_1), c2 = static_cast<T>(1.0 - m_beta_2);
    const T a = static_cast<T>(lr), eps = static_cast<T>(m_epsilon);
    T* m = this->slot(m_m_slot, index);
    T* v = this->slot(m_v_slot, index);
    parallel_for(n, [=](std::size_t b, std::size_t e) { nadam_rows(b, e, g, w, m, v, c1, c2, cm, cg, v_corr, a, eps); });
}

template class Nadam<float>;
template class Nadam<double>;

} // namespace xtape
