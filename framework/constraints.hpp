// Keras's weight constraints: projections applied to a variable right after each optimizer
// update. Norms are taken over `axes` (Keras's `axis`: an int or a list; negative counts from
// the end) with the reduced dimensions kept, so each slice along the other axes is scaled on its
// own; for a Dense kernel (in, out) the default axis 0 constrains each unit's incoming weights.
//
//   NonNeg                  w = max(w, 0)
//   MaxNorm(m, axis)        w *= clip(n, 0, m) / (eps + n)
//   MinMaxNorm(lo, hi, r)   w *= (r * clip(n, lo, hi) + (1 - r) * n) / (eps + n)
//   UnitNorm(axis)          w /= eps + n
// with n = sqrt(sum(w^2, axes)) accumulated in double and eps = 1e-7 (Keras's backend.epsilon()).
#pragma once

#include "framework/initializer.hpp"

#include <vector>

namespace xtape {

template <class T>
/// keras.constraints.NonNeg: negative weights set to 0 after each update.
class NonNeg : public Constraint<T> {
public:
    void apply(array_t<T>& w) const override;
    std::string class_name() const override { return "NonNeg"; }
    json get_config() const override { return json::object(); }
};

/// Shared by the norm constraints: the axes as given (an int or a list, written back unchanged).
template <class T>
class NormConstraint : public Constraint<T> {
public:
    /// `axis` is a json int or list of ints (ValueError otherwise).
    explicit NormConstraint(json axis);
    /// The axes the norm is taken over, as ints (negative count from the end).
    const std::vector<int>& axes() const { return m_axes; }

protected:
    /// Calls scale(norm) for each slice and multiplies the slice by the result.
    template <class F>
    void rescale(array_t<T>& w, F&& scale) const;
    json m_axis;
    std::vector<int> m_axes;
};

template <class T>
/// keras.constraints.MaxNorm(max_value = 2, axis = 0): slices whose L2 norm exceeds max_value are scaled down to it.
class MaxNorm : public NormConstraint<T> {
public:
    /// MaxNorm(max_value = 2.0, axis = 0); ValueError for an axis that is not an int or a list of ints.
    explicit MaxNorm(double max_value = 2.0, json axis = 0);
    void apply(array_t<T>& w) const override;
    std::string class_name() const override { return "MaxNorm"; }
    json get_config() const override { return { { "max_value", m_max_value }, { "axis", this->m_axis } }; }

private:
    double m_max_value;
};

template <class T>
/// keras.constraints.MinMaxNorm: slices' L2 norms moved into [min_value, max_value] at `rate`.
class MinMaxNorm : public NormConstraint<T> {
public:
    /// MinMaxNorm(min_value = 0.0, max_value = 1.0, rate = 1.0, axis = 0); rate 1 enforces the bounds strictly.
    explicit MinMaxNorm(double min_value = 0.0, double max_value = 1.0, double rate = 1.0, json axis = 0);
    void apply(array_t<T>& w) const override;
    std::string class_name() const override { return "MinMaxNorm"; }
    json get_config() const override
    {
        return { { "min_value", m_min_value }, { "max_value", m_max_value }, { "rate", m_rate }, { "axis", this->m_axis } };
    }

private:
    double m_min_value, m_max_value, m_rate;
};

template <class T>
/// keras.constraints.UnitNorm(axis = 0): each slice scaled to unit L2 norm.
class UnitNorm : public NormConstraint<T> {
public:
    /// UnitNorm(axis = 0); ValueError for an axis that is not an int or a list of ints.
    explicit UnitNorm(json axis = 0);
    void apply(array_t<T>& w) const override;
    std::string class_name() const override { return "UnitNorm"; }
    json get_config() const override { return { { "axis", this->m_axis } }; }
};

} // namespace xtape
