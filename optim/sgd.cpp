#include "optim/sgd.hpp"

#include "framework/parallel.hpp"

namespace xtape {

template <class T>
SGD<T>::SGD(LearningRate learning_rate, double momentum, bool nesterov, const OptimizerArgs& args)
    : OptimizerBase<T>(std::move(learning_rate), "SGD")
    , m_momentum(momentum)
    , m_nesterov(nesterov)
{
    if (!(momentum >= 0.0 && momentum <= 1.0))
        throw ValueError("`momentum` must be a float between [0, 1]. Received: momentum=" + std::to_string(momentum));
    this->set_args(args);
}

template <class T>
std::shared_ptr<SGD<T>> SGD<T>::from_config(const json& config)
{
    LearningRate lr(0.01);
    OptimizerArgs args = OptimizerBase<T>::parse_base_config(config, { "momentum", "nesterov" }, "SGD", lr);
    return std::make_shared<SGD<T>>(lr, config_number(config, "momentum", 0.0), config_bool(config, "nesterov", false),
                                    args);
}

template <class T>
json SGD<T>::get_config() const
{
    json c = OptimizerBase<T>::get_config();
    c["momentum"] = m_momentum;
    c["nesterov"] = m_nesterov;
    return c;
}

template <class T>
void SGD<T>::build_slots()
{
    if (m_momentum != 0.0)
        m_momentum_slot = this->add_slots("momentum");
}

template <class T>
void SGD<T>::update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr)
{
    const T a = static_cast<T>(lr);
    if (m_momentum == 0.0) {
        parallel_for(n, [=](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i)
                w[i] -= g[i] * a;
        });
        return;
    }
    T* m = this->slot(m_momentum_slot, index);
    const T mu = static_cast<T>(m_momentum);
    if (m_nesterov) {
        parallel_for(n, [=](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i) {
                m[i] = m[i] * mu - g[i] * a;
                w[i] += m[i] * mu - g[i] * a;
            }
        });
    } else {
        parallel_for(n, [=](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i) {
                m[i] = m[i] * mu - g[i] * a;
                w[i] += m[i];
            }
        });
    }
}

template class SGD<float>;
template class SGD<double>;

} // namespace xtape
