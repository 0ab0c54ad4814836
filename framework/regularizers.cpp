#include "framework/regularizers.hpp"

#include "framework/keras_object.hpp"
#include "framework/ops.hpp"

#include <cmath>

namespace xtape {
namespace {

double validate_factor(double v, const char* name)
{
    if (!std::isfinite(v) || v < 0.0)
        throw ValueError(std::string("Invalid value for argument ") + name +
                         ": expected a non-negative float.Received: " + name + "=" + std::to_string(v));
    return v;
}

} // namespace

template <class T>
L1L2<T>::L1L2(double l1, double l2)
    : m_l1(validate_factor(l1, "l1"))
    , m_l2(validate_factor(l2, "l2"))
{
}

template <class T>
Tensor<T> L1L2<T>::operator()(const Tensor<T>& w) const
{
    Tensor<T> penalty;
    if (m_l1 != 0.0)
        penalty = mul_scalar(sum(abs(w)), static_cast<T>(m_l1));
    if (m_l2 != 0.0) {
        Tensor<T> p2 = mul_scalar(sum(square(w)), static_cast<T>(m_l2));
        penalty = penalty.defined() ? add(penalty, p2) : p2;
    }
    return penalty.defined() ? penalty : Tensor<T>::scalar(T(0));
}

template <class T>
RegularizerPtr<T> get_regularizer(const json& spec)
{
    if (spec.is_null())
        return nullptr;
    KerasSpec s = split_keras_spec(spec, "regularizer");
    const json& c = s.config;
    const std::string& n = s.class_name;
    // A bare string means the Keras 2 shortcut functions l1(0.01), l2(0.01), l1_l2(0.01, 0.01);
    // class names take their constructors' defaults.
    const bool bare = spec.is_string();
    if (n == "L1" || n == "l1")
        return std::make_shared<L1<T>>(config_number(c, "l1", 0.01));
    if (n == "L2" || n == "l2")
        return std::make_shared<L2<T>>(config_number(c, "l2", 0.01));
    if (n == "l1_l2" && bare)
        return std::make_shared<L1L2<T>>(0.01, 0.01);
    // Keras 1.0/1.1 serialized every regularizer as WeightRegularizer or ActivityRegularizer
    // {"name", "l1", "l2"} (defaults 0): the penalty l1 * sum|w| + l2 * sum w^2 of L1L2. Which
    // tensor it applies to is told by the layer config key (W_regularizer, activity_regularizer).
    if (n == "L1L2" || n == "l1_l2" || n == "l1l2" || n == "L1L2Regularizer" || n == "WeightRegularizer" ||
        n == "ActivityRegularizer")
        return std::make_shared<L1L2<T>>(config_number(c, "l1", 0.0), config_number(c, "l2", 0.0));
    if (n == "OrthogonalRegularizer" || n == "orthogonal_regularizer")
        throw NotImplementedError("regularizer '" + n + "' is not implemented in xtape (L1, L2 and L1L2 are)");
    throw KeyError("Unknown regularizer: '" + n + "'. Known: l1, l2, l1_l2 (L1, L2, L1L2)");
}

template <class T>
json serialize(const RegularizerPtr<T>& p)
{
    if (!p)
        return nullptr;
    return keras3_serialized("keras.regularizers", p->class_name(), p->get_config());
}

template class L1L2<float>;
template class L1L2<double>;
template RegularizerPtr<float> get_regularizer<float>(const json&);
template RegularizerPtr<double> get_regularizer<double>(const json&);
template json serialize<float>(const RegularizerPtr<float>&);
template json serialize<double>(const RegularizerPtr<double>&);

} // namespace xtape
