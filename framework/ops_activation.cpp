// Activations with Keras's definitions and defaults. The elementwise ones are a forward
// formula and a local derivative handed to kernels::unary_op; softmax and log_softmax are
// fused ops with closed-form backward (Note [Softmax backward]).
// gcc 12's avx512fintrin.h trips -W(maybe-)uninitialized on _mm512_undefined_* once xsimd's exp
// is inlined (a false positive); the pragma must precede every include to reach that header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "framework/kernels/axes.hpp"
#include "framework/kernels/elementwise.hpp"
#include "framework/kernels/rowmath.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <vector>

namespace xtape {

using kernels::unary_op;

namespace {

/// exp(-|v|) never overflows, so both branches stay finite for any v.
template <class T>
T stable_sigmoid(T v)
{
    if (v >= 0)
        return T(1) / (T(1) + std::exp(-v));
    const T e = std::exp(v);
    return e / (T(1) + e);
}

} // namespace

template <class T>
Tensor<T> relu(const Tensor<T>& x)
{
    return unary_op<T>(
        "relu", x, [](T v) { return v <= 0 ? T(0) : v; }, [](T v, T) { return T(v > 0); }); // NaN stays NaN, as tf.nn.relu
}

template <class T>
Tensor<T> relu(const Tensor<T>& x, T negative_slope, T max_value, T threshold)
{
    const bool clip_max = max_value >= 0;
    if (negative_slope != 0 && !clip_max && threshold == 0)
        return leaky_relu(x, negative_slope);
    if (negative_slope == 0 && threshold == 0 && !clip_max)
        return relu(x);
    // Keras's ReLU.static_call, term by term:
    //   pos = threshold != 0 ? x * (x > threshold) : max(x, 0), then clipped to [0, max_value];
    //   y   = pos - negative_slope * max(threshold - x, 0).
    // Note that with threshold != 0 values in (threshold, 0) pass through pos unclipped.
    auto pos = [=](T v) { return threshold != 0 ? (v > threshold ? v : T(0)) : (v > 0 ? v : T(0)); };
    auto f = [=](T v) {
        T p = pos(v);
        if (clip_max)
            p = std::min(std::max(p, T(0)), max_value);
        const T neg = threshold - v > 0 ? threshold - v : T(0);
        return p - negative_slope * neg;
    };
    auto df = [=](T v, T) {
        T d = threshold != 0 ? T(v > threshold) : T(v > 0);
        if (clip_max) {
            const T p = pos(v);
            if (!(p > 0 && p < max_value))
                d = 0;
        }
        // d/dv of -slope * max(threshold - v, 0)
        if (threshold - v > 0)
            d += negative_slope;
        return d;
    };
    return unary_op<T>("relu", x, f, df);
}

template <class T>
Tensor<T> leaky_relu(const Tensor<T>& x, T negative_slope)
{
    return unary_op<T>(
        "leaky_relu", x, [negative_slope](T v) { return v > 0 ? v : negative_slope * v; },
        [negative_slope](T v, T) { return v > 0 ? T(1) : negative_slope; });
}

template <class T>
Tensor<T> elu(const Tensor<T>& x, T alpha)
{
    // For v <= 0: y = alpha * (e^v - 1), so dy/dv = alpha * e^v = y + alpha.
    return unary_op<T>(
        "elu", x, [alpha](T v) { return v > 0 ? v : alpha * std::expm1(v); },
        [alpha](T v, T y) { return v > 0 ? T(1) : y + alpha; });
}

template <class T>
Tensor<T> selu(const Tensor<T>& x)
{
    // Keras's constants (Klambauer et al., 2017).
    const T alpha = T(1.6732632423543772848170429916717);
    const T scale = T(1.0507009873554804934193349852946);
    return unary_op<T>(
        "selu", x, [=](T v) { return v > 0 ? scale * v : scale * alpha * std::expm1(v); },
        [=](T v, T y) { return v > 0 ? scale : y + scale * alpha; });
}

template <class T>
Tensor<T> sigmoid(const Tensor<T>& x)
{
    // Vectorized forward (kernels::sigmoid_row), so not through unary_op; dy/dx = y (1 - y).
    array_t<T> out = array_t<T>::from_shape(x.value().shape());
    const T* xp = x.data();
    T* op = out.data();
    parallel_for(x.size(),
                 [&](std::size_t b, std::size_t e) { kernels::sigmoid_row(xp + b, op + b, e - b); });
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>("sigmoid", { x }, y, [yw = y](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
        if (!dx[0])
            return;
        const T* yp = yw.data();
        const T* g = dy.data();
        T* d = dx[0]->data();
        parallel_for(dy.size(), [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i)
                d[i] += g[i] * yp[i] * (T(1) - yp[i]);
        });
    });
    return y;
}

template <class T>
Tensor<T> tanh(const Tensor<T>& x)
{
    return unary_op<T>(
        "tanh", x, [](T v) { return std::tanh(v); }, [](T, T y) { return T(1) - y * y; });
}

template <class T>
Tensor<T> softplus(const Tensor<T>& x)
{
    // log(1 + e^v) = max(v, 0) + log1p(e^-|v|): no overflow for large v, no loss for small.
    return unary_op<T>(
        "softplus", x, [](T v) { return std::max(v, T(0)) + std::log1p(std::exp(-std::abs(v))); },
        [](T v, T) { return stable_sigmoid(v); });
}

template <class T>
Tensor<T> softsign(const Tensor<T>& x)
{
    // d/dv v / (1 + |v|) = 1 / (1 + |v|)^2
    return unary_op<T>(
        "softsign", x, [](T v) { return v / (T(1) + std::abs(v)); },
        [](T v, T) {
            const T d = T(1) + std::abs(v);
            return T(1) / (d * d);
        });
}

template <class T>
Tensor<T> gelu(const Tensor<T>& x, bool approximate)
{
    if (approximate) {
        // 0.5 v (1 + tanh(u)), u = c (v + 0.044715 v^3);
        // dy/dv = 0.5 (1 + t) + 0.5 v (1 - t^2) c (1 + 3 * 0.044715 v^2).
        const T c = T(0.79788456080286535587989211986876); // sqrt(2 / pi)
        const T k = T(0.044715);
        return unary_op<T>(
            "gelu", x, [=](T v) { return T(0.5) * v * (T(1) + std::tanh(c * (v + k * v * v * v))); },
            [=](T v, T) {
                const T t = std::tanh(c * (v + k * v * v * v));
                return T(0.5) * (T(1) + t) + T(0.5) * v * (T(1) - t * t) * c * (T(1) + T(3) * k * v * v);
            });
    }
    // v Phi(v) with Phi(v) = (1 + erf(v / sqrt 2)) / 2; dy/dv = Phi(v) + v phi(v).
    const T inv_sqrt2 = T(0.70710678118654752440084436210485);
    const T inv_sqrt_2pi = T(0.39894228040143267793994605993438);
    return unary_op<T>(
        "gelu", x, [=](T v) { return T(0.5) * v * (T(1) + std::erf(v * inv_sqrt2)); },
        [=](T v, T) {
            const T cdf = T(0.5) * (T(1) + std::erf(v * inv_sqrt2));
            return cdf + v * inv_sqrt_2pi * std::exp(T(-0.5) * v * v);
        });
}

template <class T>
Tensor<T> swish(const Tensor<T>& x)
{
    // y = v s(v); dy/dv = s + v s (1 - s)
    return unary_op<T>(
        "swish", x, [](T v) { return v * stable_sigmoid(v); },
        [](T v, T) {
            const T s = stable_sigmoid(v);
            return s * (T(1) + v * (T(1) - s));
        });
}

template <class T>
Tensor<T> hard_sigmoid(const Tensor<T>& x)
{
    // Keras 3: relu6(v + 3) / 6 (Keras 2 used 0.2 v + 0.5).
    return unary_op<T>(
        "hard_sigmoid", x, [](T v) { return std::min(std::max(v + T(3), T(0)), T(6)) / T(6); },
        [](T v, T) { return v > T(-3) && v < T(3) ? T(1) / T(6) : T(0); });
}

// ---- softmax / log_softmax --------------------------------------------------------------
//
// Note [Softmax backward]: with y = softmax(x) along an axis, dx = y * (dy - sum(dy * y));
// with y = log_softmax(x), dx = dy - softmax(x) * sum(dy), where softmax(x) = exp(y). Both
// sums run along the same axis, so forward and backward each touch a lane once or twice.
//
// The tensor is viewed as (outer, n, inner) around the axis. For the last axis (inner == 1,
// the hot path: a Dense softmax output) each lane is a contiguous row; otherwise the `inner`
// lanes of one outer block are processed together so the innermost loop stays contiguous.

namespace {

struct AxisLayout
{
    std::size_t outer = 1, n = 1, inner = 1;
};

AxisLayout axis_layout(const shape_t& s, std::size_t axis)
{
    AxisLayout l;
    for (std::size_t i = 0; i < axis; ++i)
        l.outer *= s[i];
    l.n = s[axis];
    for (std::size_t i = axis + 1; i < s.size(); ++i)
        l.inner *= s[i];
    return l;
}

template <class T>
void softmax_forward(const AxisLayout& l, const T* x, T* y, bool log_form)
{
    const std::size_t n = l.n, inner = l.inner;
    if (n == 0)
        return;
    if (inner == 1) {
        parallel_for(
            l.outer,
            [&](std::size_t r0, std::size_t r1) {
                for (std::size_t r = r0; r < r1; ++r) {
                    const T* xr = x + r * n;
                    T* yr = y + r * n;
                    const T m = kernels::row_max(xr, n);
                    if (log_form) {
                        const T ls = static_cast<T>(
                            std::log(kernels::exp_shifted(xr, static_cast<T*>(nullptr), n, m)));
                        for (std::size_t k = 0; k < n; ++k)
                            yr[k] = (xr[k] - m) - ls;
                    } else {
                        const T inv = static_cast<T>(1.0 / kernels::exp_shifted(xr, yr, n, m));
                        for (std::size_t k = 0; k < n; ++k)
                            yr[k] *= inv;
                    }
                }
            },
            n);
        return;
    }
    parallel_for(
        l.outer,
        [&](std::size_t o0, std::size_t o1) {
            std::vector<T> m(inner);
            std::vector<double> s(inner);
            for (std::size_t o = o0; o < o1; ++o) {
                const T* xo = x + o * n * inner;
                T* yo = y + o * n * inner;
                std::copy(xo, xo + inner, m.begin());
                for (std::size_t k = 1; k < n; ++k)
                    for (std::size_t j = 0; j < inner; ++j)
                        m[j] = xo[k * inner + j] > m[j] ? xo[k * inner + j] : m[j];
                std::fill(s.begin(), s.end(), 0.0);
                for (std::size_t k = 0; k < n; ++k)
                    for (std::size_t j = 0; j < inner; ++j) {
                        const T e = std::exp(xo[k * inner + j] - m[j]);
                        if (!log_form)
                            yo[k * inner + j] = e;
                        s[j] += e;
                    }
                for (std::size_t k = 0; k < n; ++k)
                    for (std::size_t j = 0; j < inner; ++j) {
                        if (log_form)
                            yo[k * inner + j] = (xo[k * inner + j] - m[j]) - static_cast<T>(std::log(s[j]));
                        else
                            yo[k * inner + j] *= static_cast<T>(1.0 / s[j]);
                    }
            }
        },
        n * inner);
}

/// dx += closed-form backward of softmax (log_form = false) or log_softmax (true).
template <class T>
void softmax_backward(const AxisLayout& l, const T* y, const T* dy, T* dx, bool log_form)
{
    const std::size_t n = l.n, inner = l.inner;
    if (n == 0)
        return;
    if (inner == 1) {
        parallel_for(
            l.outer,
            [&](std::size_t r0, std::size_t r1) {
                std::vector<T> p(log_form ? n : 0); // softmax = exp(log_softmax), one row at a time
                for (std::size_t r = r0; r < r1; ++r) {
                    const T* yr = y + r * n;
                    const T* gr = dy + r * n;
                    T* dr = dx + r * n;
                    if (log_form) {
                        const T sg = static_cast<T>(kernels::sum_row(gr, n));
                        kernels::exp_shifted(yr, p.data(), n, T(0));
                        for (std::size_t k = 0; k < n; ++k)
                            dr[k] += gr[k] - p[k] * sg;
                    } else {
                        const T dot = static_cast<T>(kernels::dot_row(gr, yr, n));
                        for (std::size_t k = 0; k < n; ++k)
                            dr[k] += yr[k] * (gr[k] - dot);
                    }
                }
            },
            n);
        return;
    }
    parallel_for(
        l.outer,
        [&](std::size_t o0, std::size_t o1) {
            std::vector<double> acc(inner);
            for (std::size_t o = o0; o < o1; ++o) {
                const std::size_t base = o * n * inner;
                std::fill(acc.begin(), acc.end(), 0.0);
                for (std::size_t k = 0; k < n; ++k)
                    for (std::size_t j = 0; j < inner; ++j) {
                        const std::size_t i = base + k * inner + j;
                        acc[j] += log_form ? dy[i] : dy[i] * y[i];
                    }
                for (std::size_t k = 0; k < n; ++k)
                    for (std::size_t j = 0; j < inner; ++j) {
                        const std::size_t i = base + k * inner + j;
                        const T a = static_cast<T>(acc[j]);
                        dx[i] += log_form ? dy[i] - std::exp(y[i]) * a : y[i] * (dy[i] - a);
                    }
            }
        },
        n * inner);
}

template <class T>
Tensor<T> softmax_op(const char* name, const Tensor<T>& x, int axis, bool log_form)
{
    const shape_t sx = x.shape();
    if (sx.empty())
        throw ShapeError(std::string(name) + ": expected a tensor of rank >= 1, got shape ()");
    const AxisLayout l = axis_layout(sx, kernels::normalize_axis(axis, sx.size(), name));
    array_t<T> out = array_t<T>::from_shape(sx);
    softmax_forward(l, x.data(), out.data(), log_form);
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>(name, { x }, y,
                 [l, yw = y, log_form](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     if (dx[0])
                         softmax_backward(l, yw.data(), dy.data(), dx[0]->data(), log_form);
                 });
    return y;
}

} // namespace

template <class T>
Tensor<T> softmax(const Tensor<T>& x, int axis)
{
    return softmax_op("softmax", x, axis, false);
}

template <class T>
Tensor<T> log_softmax(const Tensor<T>& x, int axis)
{
    return softmax_op("log_softmax", x, axis, true);
}

// ---- lookup by Keras name -----------------------------------------------------------------

namespace {

template <class T>
using activation_fn = std::function<Tensor<T>(const Tensor<T>&)>;

template <class T>
const std::map<std::string, activation_fn<T>>& activation_table()
{
    static const std::map<std::string, activation_fn<T>> table = {
        { "linear", [](const Tensor<T>& x) { return x; } },
        { "relu", [](const Tensor<T>& x) { return relu(x); } },
        { "relu6", [](const Tensor<T>& x) { return relu(x, T(0), T(6), T(0)); } },
        { "leaky_relu", [](const Tensor<T>& x) { return leaky_relu(x); } },
        { "elu", [](const Tensor<T>& x) { return elu(x); } },
        { "selu", [](const Tensor<T>& x) { return selu(x); } },
        { "sigmoid", [](const Tensor<T>& x) { return sigmoid(x); } },
        { "hard_sigmoid", [](const Tensor<T>& x) { return hard_sigmoid(x); } },
        { "tanh", [](const Tensor<T>& x) { return tanh(x); } },
        { "softplus", [](const Tensor<T>& x) { return softplus(x); } },
        { "softsign", [](const Tensor<T>& x) { return softsign(x); } },
        { "gelu", [](const Tensor<T>& x) { return gelu(x); } },
        { "swish", [](const Tensor<T>& x) { return swish(x); } },
        { "silu", [](const Tensor<T>& x) { return swish(x); } },
        { "exponential", [](const Tensor<T>& x) { return exp(x); } },
        { "softmax", [](const Tensor<T>& x) { return softmax(x); } },
        { "log_softmax", [](const Tensor<T>& x) { return log_softmax(x); } },
    };
    return table;
}

std::string known_activation_names()
{
    std::string s;
    for (const auto& kv : activation_table<float>())
        s += (s.empty() ? "" : ", ") + kv.first;
    return s;
}

} // namespace

template <class T>
Tensor<T> activation(const std::string& name, const Tensor<T>& x)
{
    const auto& table = activation_table<T>();
    auto it = table.find(name);
    if (it == table.end())
        throw KeyError("activation: unknown activation function '" + name +
                       "'; known names: " + known_activation_names());
    return it->second(x);
}

bool is_activation_name(const std::string& name)
{
    return activation_table<float>().count(name) > 0;
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> relu(const Tensor<T>&);                                                               \
    template Tensor<T> relu(const Tensor<T>&, T, T, T);                                                      \
    template Tensor<T> leaky_relu(const Tensor<T>&, T);                                                      \
    template Tensor<T> elu(const Tensor<T>&, T);                                                             \
    template Tensor<T> selu(const Tensor<T>&);                                                               \
    template Tensor<T> sigmoid(const Tensor<T>&);                                                            \
    template Tensor<T> tanh(const Tensor<T>&);                                                               \
    template Tensor<T> softplus(const Tensor<T>&);                                                           \
    template Tensor<T> softsign(const Tensor<T>&);                                                           \
    template Tensor<T> gelu(const Tensor<T>&, bool);                                                         \
    template Tensor<T> swish(const Tensor<T>&);                                                              \
    template Tensor<T> hard_sigmoid(const Tensor<T>&);                                                       \
    template Tensor<T> softmax(const Tensor<T>&, int);                                                       \
    template Tensor<T> log_softmax(const Tensor<T>&, int);                                                   \
    template Tensor<T> activation(const std::string&, const Tensor<T>&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
