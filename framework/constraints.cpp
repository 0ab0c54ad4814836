#include "framework/constraints.hpp"

#include "framework/keras_object.hpp"
#include "framework/kernels/axes.hpp"
#include "framework/kernels/broadcast.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <cmath>

namespace xtape {
namespace {

constexpr double keras_epsilon = 1e-7;

std::vector<int> axes_from_json(const json& axis)
{
    if (axis.is_number_integer())
        return { axis.get<int>() };
    if (axis.is_array()) {
        std::vector<int> out;
        for (const auto& a : axis) {
            if (!a.is_number_integer())
                throw ValueError("constraint axis: expected integers, got " + axis.dump());
            out.push_back(a.get<int>());
        }
        if (out.empty())
            throw ValueError("constraint axis: expected at least one axis, got []");
        return out;
    }
    throw ValueError("constraint axis: expected an integer or a list of integers, got " + axis.dump());
}

} // namespace

template <class T>
void NonNeg<T>::apply(array_t<T>& w) const
{
    T* p = w.data();
    parallel_for(w.size(), [p](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i)
            p[i] = std::max(p[i], T(0));
    });
}

template <class T>
NormConstraint<T>::NormConstraint(json axis)
    : m_axis(std::move(axis))
    , m_axes(axes_from_json(m_axis))
{
}

template <class T>
template <class F>
void NormConstraint<T>::rescale(array_t<T>& w, F&& scale) const
{
    const shape_t sx = shape_of(w);
    const std::string op = this->class_name();
    const auto axes = kernels::normalize_axes(m_axes, sx.size(), op.c_str());
    const shape_t sk = kernels::keep_shape(sx, axes);
    std::vector<double> factor(shape_size(sk), 0.0);
    T* p = w.data();
    kernels::for_each_broadcast_serial(sx, sx, sk, [&](std::size_t, std::size_t ia, std::size_t ib) {
        factor[ib] += static_cast<double>(p[ia]) * static_cast<double>(p[ia]);
    });
    for (auto& f : factor)
        f = scale(std::sqrt(f));
    kernels::for_each_broadcast_serial(sx, sx, sk, [&](std::size_t, std::size_t ia, std::size_t ib) {
        p[ia] = static_cast<T>(static_cast<double>(p[ia]) * factor[ib]);
    });
}

template <class T>
MaxNorm<T>::MaxNorm(double max_value, json axis)
    : NormConstraint<T>(std::move(axis))
    , m_max_value(max_value)
{
}

template <class T>
void MaxNorm<T>::apply(array_t<T>& w) const
{
    const double hi = m_max_value;
    this->rescale(w, [hi](double n) { return std::min(n, hi) / (keras_epsilon + n); });
}

template <class T>
MinMaxNorm<T>::MinMaxNorm(double min_value, double max_value, double rate, json axis)
    : NormConstraint<T>(std::move(axis))
    , m_min_value(min_value)
    , m_max_value(max_value)
    , m_rate(rate)
{
}

template <class T>
void MinMaxNorm<T>::apply(array_t<T>& w) const
{
    const double lo = m_min_value, hi = m_max_value, r = m_rate;
    this->rescale(w, [=](double n) { return (r * std::min(std::max(n, lo), hi) + (1.0 - r) * n) / (keras_epsilon + n); });
}

template <class T>
UnitNorm<T>::UnitNorm(json axis)
    : NormConstraint<T>(std::move(axis))
{
}

template <class T>
void UnitNorm<T>::apply(array_t<T>& w) const
{
    this->rescale(w, [](double n) { return 1.0 / (keras_epsilon + n); });
}

template <class T>
ConstraintPtr<T> get_constraint(const json& spec)
{
    if (spec.is_null())
        return nullptr;
    KerasSpec s = split_keras_spec(spec, "constraint");
    const json& c = s.config;
    const std::string& n = s.class_name;
    auto axis = [&c]() { return c.contains("axis") && !c["axis"].is_null() ? c["axis"] : json(0); };
    if (n == "NonNeg" || n == "non_neg" || n == "nonneg")
        return std::make_shared<NonNeg<T>>();
    if (n == "MaxNorm" || n == "max_norm" || n == "maxnorm") {
        // Keras 1 called max_value "m".
        const double m = config_number(c, "max_value", config_number(c, "m", 2.0));
        return std::make_shared<MaxNorm<T>>(m, axis());
    }
    if (n == "MinMaxNorm" || n == "min_max_norm")
        return std::make_shared<MinMaxNorm<T>>(config_number(c, "min_value", 0.0), config_number(c, "max_value", 1.0),
                                               config_number(c, "rate", 1.0), axis());
    if (n == "UnitNorm" || n == "unit_norm" || n == "unitnorm")
        return std::make_shared<UnitNorm<T>>(axis());
    throw KeyError("Unknown constraint: '" + n + "'. Known: non_neg, max_norm, min_max_norm, unit_norm (NonNeg, "
                   "MaxNorm, MinMaxNorm, UnitNorm)");
}

template <class T>
json serialize(const ConstraintPtr<T>& p)
{
    if (!p)
        return nullptr;
    return keras3_serialized("keras.constraints", p->class_name(), p->get_config());
}

#define XTAPE_INSTANTIATE(T)                                                                                     \
    template class NonNeg<T>;                                                                                    \
    template class NormConstraint<T>;                                                                            \
    template class MaxNorm<T>;                                                                                   \
    template class MinMaxNorm<T>;                                                                                \
    template class UnitNorm<T>;                                                                                  \
    template ConstraintPtr<T> get_constraint<T>(const json&);                                                    \
    template json serialize<T>(const ConstraintPtr<T>&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
