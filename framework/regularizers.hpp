// Keras's weight regularizers. The penalty is built from ops (abs, square, sum, mul_scalar,
// add), so under a live tape it is differentiable like any loss term.
//
//   L1(l1)      l1 * sum(|w|)                 default l1 = 0.01
//   L2(l2)      l2 * sum(w^2)                 default l2 = 0.01
//   L1L2(l1,l2) l1 * sum(|w|) + l2 * sum(w^2) defaults 0 and 0 (the string "l1_l2" means 0.01, 0.01)
//
// requires: factors finite and >= 0 (ValueError otherwise, as Keras's validate_float_arg).
#pragma once

#include "framework/initializer.hpp"

namespace xtape {

template <class T>
/// keras.regularizers.L1L2: l1 * sum(|w|) + l2 * sum(w^2), both factors 0 by default.
class L1L2 : public Regularizer<T> {
public:
    /// L1L2(l1 = 0.0, l2 = 0.0); ValueError for a negative or non-finite factor.
    explicit L1L2(double l1 = 0.0, double l2 = 0.0);
    /// Terms whose factor is 0 are left out (a scalar 0 when both are).
    Tensor<T> operator()(const Tensor<T>& w) const override;
    std::string class_name() const override { return "L1L2"; }
    json get_config() const override { return { { "l1", m_l1 }, { "l2", m_l2 } }; }
    /// The factor of sum(|w|).
    double l1() const { return m_l1; }
    /// The factor of sum(w^2).
    double l2() const { return m_l2; }

protected:
    double m_l1, m_l2;
};

template <class T>
/// keras.regularizers.L1(l1 = 0.01): l1 * sum(|w|).
class L1 : public L1L2<T> {
public:
    /// L1(l1 = 0.01); ValueError for a negative or non-finite factor.
    explicit L1(double l1 = 0.01)
        : L1L2<T>(l1, 0.0)
    {
    }
    std::string class_name() const override { return "L1"; }
    json get_config() const override { return { { "l1", this->m_l1 } }; }
};

template <class T>
/// keras.regularizers.L2(l2 = 0.01): l2 * sum(w^2).
class L2 : public L1L2<T> {
public:
    /// L2(l2 = 0.01); ValueError for a negative or non-finite factor.
    explicit L2(double l2 = 0.01)
        : L1L2<T>(0.0, l2)
    {
    }
    std::string class_name() const override { return "L2"; }
    json get_config() const override { return { { "l2", this->m_l2 } }; }
};

} // namespace xtape
