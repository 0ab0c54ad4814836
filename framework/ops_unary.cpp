// Elementwise math ops, one line each: forward formula and local derivative
// (see kernels/elementwise.hpp for the loop and the recording).
#include "framework/kernels/elementwise.hpp"
#include "framework/ops.hpp"

#include <cmath>

namespace xtape {

using kernels::unary_op;

template <class T>
Tensor<T> neg(const Tensor<T>& x)
{
    return unary_op<T>("neg", x, [](T v) { return -v; }, [](T, T) { return T(-1); });
}
template <class T>
Tensor<T> exp(const Tensor<T>& x)
{
    return unary_op<T>("exp", x, [](T v) { return std::exp(v); }, [](T, T y) { return y; });
}
template <class T>
Tensor<T> log(const Tensor<T>& x)
{
    return unary_op<T>("log", x, [](T v) { return std::log(v); }, [](T v, T) { return T(1) / v; });
}
template <class T>
Tensor<T> sqrt(const Tensor<T>& x)
{
    // d sqrt(x) = 1 / (2 sqrt(x))
    return unary_op<T>("sqrt", x, [](T v) { return std::sqrt(v); }, [](T, T y) { return T(0.5) / y; });
}
template <class T>
Tensor<T> square(const Tensor<T>& x)
{
    return unary_op<T>("square", x, [](T v) { return v * v; }, [](T v, T) { return T(2) * v; });
}
template <class T>
Tensor<T> abs(const Tensor<T>& x)
{
    // sign(x), with 0 at 0 as tf.abs's gradient
    return unary_op<T>("abs", x, [](T v) { return std::abs(v); }, [](T v, T) { return T((v > 0) - (v < 0)); });
}
template <class T>
Tensor<T> clip(const Tensor<T>& x, T lo, T hi)
{
    if (lo > hi)
        throw ValueError("clip: lower bound " + std::to_string(lo) + " is greater than upper bound " +
                         std::to_string(hi));
    return unary_op<T>(
        "clip", x, [lo, hi](T v) { return v < lo ? lo : (v > hi ? hi : v); },
        [lo, hi](T v, T) { return T(v > lo && v < hi); });
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> neg(const Tensor<T>&);                                                                \
    template Tensor<T> exp(const Tensor<T>&);                                                                \
    template Tensor<T> log(const Tensor<T>&);                                                                \
    template Tensor<T> sqrt(const Tensor<T>&);                                                               \
    template Tensor<T> square(const Tensor<T>&);                                                             \
    template Tensor<T> abs(const Tensor<T>&);                                                                \
    template Tensor<T> clip(const Tensor<T>&, T, T);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
