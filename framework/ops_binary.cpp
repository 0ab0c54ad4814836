// Broadcasting binary ops and their scalar variants. Backward beside forward: each op's
// lambda states the local derivatives; broadcast inputs get their gradient summed back.
#include "framework/kernels/broadcast.hpp"
#include "framework/kernels/elementwise.hpp"
#include "framework/ops.hpp"

#include <cmath>

namespace xtape {
namespace {

using kernels::broadcast_shapes;
using kernels::for_each_broadcast;
using kernels::for_each_broadcast_serial;

/// out = f(a, b) with broadcasting; backward da += dy * dfa(a, b, y), db += dy * dfb(a, b, y).
template <class T, class F, class DA, class DB>
Tensor<T> binary_op(const char* name, const Tensor<T>& a, const Tensor<T>& b, F f, DA dfa, DB dfb)
{
    const shape_t sa = a.shape(), sb = b.shape();
    const shape_t so = broadcast_shapes(sa, sb, name);
    array_t<T> out = array_t<T>::from_shape(so);
    const T* ap = a.data();
    const T* bp = b.data();
    T* op = out.data();
    if (sa == sb) {
        parallel_for(out.size(), [&](std::size_t lo, std::size_t hi) {
            for (std::size_t i = lo; i < hi; ++i)
                op[i] = f(ap[i], bp[i]);
        });
    } else {
        for_each_broadcast(so, sa, sb,
                           [&](std::size_t i, std::size_t ia, std::size_t ib) { op[i] = f(ap[ia], bp[ib]); });
    }
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &a, &b }))
        return y;
    record_op<T>(name, { a, b }, y,
                 [a, b, yw = y, sa, sb, so, dfa, dfb](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     const T* ap = a.data();
                     const T* bp = b.data();
                     const T* yp = yw.data();
                     const T* gp = dy.data();
                     T* da = dx[0] ? dx[0]->data() : nullptr;
                     T* db = dx[1] ? dx[1]->data() : nullptr;
                     if (da == db && da) {
                         // a and b are the same tensor: add both contributions serially.
                         for_each_broadcast_serial(so, sa, sb, [&](std::size_t i, std::size_t ia, std::size_t ib) {
                             da[ia] += gp[i] * dfa(ap[ia], bp[ib], yp[i]);
                             db[ib] += gp[i] * dfb(ap[ia], bp[ib], yp[i]);
                         });
                         return;
                     }
                     // An input with the output's shape takes each element once: parallel is safe.
                     if (da) {
                         auto fa = [&](std::size_t i, std::size_t ia, std::size_t ib) {
                             da[ia] += gp[i] * dfa(ap[ia], bp[ib], yp[i]);
                         };
                         if (sa == so)
                             for_each_broadcast(so, sa, sb, fa);
                         else
                             for_each_broadcast_serial(so, sa, sb, fa);
                     }
                     if (db) {
                         auto fb = [&](std::size_t i, std::size_t ia, std::size_t ib) {
                             db[ib] += gp[i] * dfb(ap[ia], bp[ib], yp[i]);
                         };
                         if (sb == so)
                             for_each_broadcast(so, sa, sb, fb);
                         else
                             for_each_broadcast_serial(so, sa, sb, fb);
                     }
                 });
    return y;
}

} // namespace

template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b)
{
    return binary_op<T>(
        "add", a, b, [](T x, T y) { return x + y; }, [](T, T, T) { return T(1); }, [](T, T, T) { return T(1); });
}

template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b)
{
    return binary_op<T>(
        "sub", a, b, [](T x, T y) { return x - y; }, [](T, T, T) { return T(1); }, [](T, T, T) { return T(-1); });
}

template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b)
{
    return binary_op<T>(
        "mul", a, b, [](T x, T y) { return x * y; }, [](T, T y, T) { return y; }, [](T x, T, T) { return x; });
}

template <class T>
Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b)
{
    // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b
    return binary_op<T>(
        "div", a, b, [](T x, T y) { return x / y; }, [](T, T y, T) { return T(1) / y; },
        [](T, T y, T o) { return -o / y; });
}

template <class T>
Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b)
{
    // Ties send the gradient to a, as a subgradient choice.
    return binary_op<T>(
        "maximum", a, b, [](T x, T y) { return x >= y ? x : y; }, [](T x, T y, T) { return T(x >= y); },
        [](T x, T y, T) { return T(!(x >= y)); });
}

template <class T>
Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b)
{
    return binary_op<T>(
        "minimum", a, b, [](T x, T y) { return x <= y ? x : y; }, [](T x, T y, T) { return T(x <= y); },
        [](T x, T y, T) { return T(!(x <= y)); });
}

template <class T>
Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b)
{
    // d(a^b)/da = b a^(b-1); d(a^b)/db = a^b log(a), defined as 0 where a^b == 0.
    return binary_op<T>(
        "pow", a, b, [](T x, T y) { return std::pow(x, y); }, [](T x, T y, T) { return y * std::pow(x, y - T(1)); },
        [](T x, T, T o) { return o == T(0) ? T(0) : o * std::log(x); });
}

template <class T>
Tensor<T> add_scalar(const Tensor<T>& a, T s)
{
    return kernels::unary_op<T>(
        "add_scalar", a, [s](T x) { return x + s; }, [](T, T) { return T(1); });
}

template <class T>
Tensor<T> mul_scalar(const Tensor<T>& a, T s)
{
    return kernels::unary_op<T>(
        "mul_scalar", a, [s](T x) { return x * s; }, [s](T, T) { return s; });
}

template <class T>
Tensor<T> pow_scalar(const Tensor<T>& a, T p)
{
    return kernels::unary_op<T>(
        "pow_scalar", a, [p](T x) { return std::pow(x, p); }, [p](T x, T) { return p * std::pow(x, p - T(1)); });
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> add(const Tensor<T>&, const Tensor<T>&);                                              \
    template Tensor<T> sub(const Tensor<T>&, const Tensor<T>&);                                              \
    template Tensor<T> mul(const Tensor<T>&, const Tensor<T>&);                                              \
    template Tensor<T> div(const Tensor<T>&, const Tensor<T>&);                                              \
    template Tensor<T> maximum(const Tensor<T>&, const Tensor<T>&);                                          \
    template Tensor<T> minimum(const Tensor<T>&, const Tensor<T>&);                                          \
    template Tensor<T> pow(const Tensor<T>&, const Tensor<T>&);                                              \
    template Tensor<T> add_scalar(const Tensor<T>&, T);                                                      \
    template Tensor<T> mul_scalar(const Tensor<T>&, T);                                                      \
    template Tensor<T> pow_scalar(const Tensor<T>&, T);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
