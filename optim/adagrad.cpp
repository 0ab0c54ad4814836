#include "optim/adagrad.hpp"

#include "framework/parallel.hpp"

#include <cmath>

namespace xtape {
namespace {

// Note [Restrict kernels] in adam.cpp.
template <class T>
void adagrad_rows(std::size_t b, std::size_t e, const T* __restrict g, T* __restrict w, T* __restrict acc, T a, T eps)
{
    for (std::size_t i = b; i < e; ++i) {
        acc[i] += g[i] * g[i];
        w[i] -= a * g[i] / std::sqrt(acc[i] + eps);
    }
}

} // namespace

template <class T>
Adagrad<T>::Adagrad(LearningRate learning_rate, double initial_accumulator_value, double epsilon,
                    const OptimizerArgs& args)
    : OptimizerBase<T>(std::move(learning_rate), "adagrad")
    , m_initial_accumulator_value(initial_accumulator_value)
    , m_epsilon(epsilon)
{
    this->set_args(args);
}

template <class T>
std::shared_ptr<Adagrad<T>> Adagrad<T>::from_config(const json& config)
{
    LearningRate lr(0.001);
    OptimizerArgs args =
        OptimizerBase<T>::parse_base_config(config, { "initial_accumulator_value", "epsilon" }, "Adagrad", lr);
    return std::make_shared<Adagrad<T>>(lr, config_number(config, "initial_accumulator_value", 0.1),
                                        config_number(config, "epsilon", 1e-7), args);
}

template <class T>
json Adagrad<T>::get_config() const
{
    json c = OptimizerBase<T>::get_config();
    c["initial_accumulator_value"] = m_initial_accumulator_value;
    c["epsilon"] = m_epsilon;
    return c;
}

template <class T>
void Adagrad<T>::build_slots()
{
    m_acc_slot = this->add_slots("accumulator", m_initial_accumulator_value);
}

template <class T>
void Adagrad<T>::update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr)
{
    const T a = static_cast<T>(lr), eps = static_cast<T>(m_epsilon);
    T* acc = this->slot(m_acc_slot, index);
    parallel_for(n, [=](std::size_t b, std::size_t e) { adagrad_rows(b, e, g, w, acc, a, eps); });
}

template class Adagrad<float>;
template class Adagrad<double>;

} // namespace xtape
