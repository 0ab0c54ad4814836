// Per-sample losses with Keras 3's formulas (keras/src/losses/losses.py and the backends'
// nn.py). Each returns one value per sample: the input shape without its last axis (or
// without `axis` for categorical_crossentropy). Reducing over the batch is the caller's job.
//
// Shapes follow Keras's LossFunctionWrapper: when the ranks of y_true and y_pred differ by one
// and the longer has a trailing 1, that axis is dropped (or, when the shorter has rank 1, a
// trailing 1 is added to it); see same_rank(). Regression losses then broadcast; the
// crossentropies require equal shapes, as Keras's backends do.
//
// Numerics: values are computed in T with Keras's epsilon 1e-7 (so float results match
// Keras's float32 numbers), and sums along the reduced axis accumulate in double.
// gcc 12's avx512fintrin.h trips -W(maybe-)uninitialized on _mm512_undefined_* once xsimd's exp
// is inlined (a false positive); the pragma must precede every include to reach that header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "framework/kernels/axes.hpp"
#include "framework/kernels/broadcast.hpp"
#include "framework/kernels/rowmath.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

namespace xtape {
namespace {

/// Keras's backend.epsilon().
template <class T>
constexpr T keras_epsilon()
{
    return T(1e-7);
}

template <class T>
T clamp(T v, T lo, T hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

template <class T>
T sigmoid_of(T v)
{
    if (v >= 0)
        return T(1) / (T(1) + std::exp(-v));
    const T e = std::exp(v);
    return e / (T(1) + e);
}

/// Keras's squeeze_or_expand_to_same_rank on shapes; the data layout does not change.
void same_rank(shape_t& st, shape_t& sp)
{
    if (st.size() == sp.size() + 1 && st.back() == 1) {
        if (sp.size() == 1)
            sp.push_back(1);
        else
            st.pop_back();
    } else if (sp.size() == st.size() + 1 && sp.back() == 1) {
        if (st.size() == 1)
            st.push_back(1);
        else
            sp.pop_back();
    }
}

std::string pair_str(const shape_t& st, const shape_t& sp)
{
    return "y_true " + shape_str(st) + " and y_pred " + shape_str(sp);
}

/// loss[row] = scale * sum over the last axis of f(t, p), with NumPy broadcasting of y_true
/// against y_pred. Backward: dp += dy[row] * scale * dfp(t, p), dt likewise with dft.
template <class T, class F, class DP, class DT>
Tensor<T> pairwise_loss(const char* name, const Tensor<T>& y_true, const Tensor<T>& y_pred, bool same_shape,
                        bool average, F f, DP dfp, DT dft)
{
    shape_t st = y_true.shape(), sp = y_pred.shape();
    same_rank(st, sp);
    if (same_shape && st != sp)
        throw ShapeError(std::string(name) + ": y_true and y_pred must have the same shape, got " +
                         pair_str(y_true.shape(), y_pred.shape()));
    const shape_t so = kernels::broadcast_shapes(st, sp, name);
    if (so.empty())
        throw ShapeError(std::string(name) +
                         ": expected tensors of rank >= 1 (the loss reduces the last axis), got " +
                         pair_str(y_true.shape(), y_pred.shape()));
    const std::size_t n = so.back(), rows = kernels::row_count(so);
    const T scale = average ? T(1) / static_cast<T>(n) : T(1);
    array_t<T> out = array_t<T>::from_shape(shape_t(so.begin(), so.end() - 1));
    T* op = out.data();
    const T* tp = y_true.data();
    const T* pp = y_pred.data();
    const bool equal = st == sp;
    const auto sa = kernels::broadcast_strides(st, so), sb = kernels::broadcast_strides(sp, so);
    parallel_for(
        rows,
        [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                double acc = 0.0;
                if (equal) {
                    for (std::size_t k = r * n; k < (r + 1) * n; ++k)
                        acc += f(tp[k], pp[k]);
                } else {
                    kernels::walk_rows(
                        so, sa, sb, r, r + 1,
                        [&](std::size_t, std::size_t ia, std::size_t ib) { acc += f(tp[ia], pp[ib]); });
                }
                op[r] = static_cast<T>(acc) * scale;
            }
        },
        n);
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &y_true, &y_pred }))
        return y;
    record_op<T>(name, { y_true, y_pred }, y,
                 [y_true, y_pred, st, sp, so, n, scale, dfp, dft](const array_t<T>& dy,
                                                                  const std::vector<array_t<T>*>& dx) {
                     const T* tp = y_true.data();
                     const T* pp = y_pred.data();
                     const T* g = dy.data();
                     T* dt = dx[0] ? dx[0]->data() : nullptr;
                     T* dp = dx[1] ? dx[1]->data() : nullptr;
                     auto body = [&](std::size_t i, std::size_t ia, std::size_t ib) {
                         const T gi = g[i / n] * scale;
                         if (dt)
                             dt[ia] += gi * dft(tp[ia], pp[ib]);
                         if (dp)
                             dp[ib] += gi * dfp(tp[ia], pp[ib]);
                     };
                     // An input with the output's shape takes each element once: parallel is safe.
                     // A broadcast input (or one tensor in both roles) accumulates serially.
                     const bool parallel = dt != dp && (!dt || st == so) && (!dp || sp == so);
                     if (parallel)
                         kernels::for_each_broadcast(so, st, sp, body);
                     else
                         kernels::for_each_broadcast_serial(so, st, sp, body);
                 });
    return y;
}

/// The tensor seen as (outer, n, inner) lanes around `axis`; lane L starts at
/// (L / inner) * n * inner + L % inner and steps by inner.
struct Lanes
{
    std::size_t outer = 1, n = 1, inner = 1;
    std::size_t count() const { return outer * inner; }
    std::size_t base(std::size_t lane) const { return (lane / inner) * n * inner + lane % inner; }
};

Lanes lanes_of(const shape_t& s, std::size_t axis)
{
    Lanes l;
    for (std::size_t i = 0; i < axis; ++i)
        l.outer *= s[i];
    l.n = s[axis];
    for (std::size_t i = axis + 1; i < s.size(); ++i)
        l.inner *= s[i];
    return l;
}

/// Per-lane results of the fused softmax crossentropy that the backward needs.
struct LogitsLane
{
    double lse;   ///< log-sum-exp of the logits
    double t_sum; ///< sum of y_true (1 for one-hot labels)
};

/// Forward of -sum t log softmax(z) on one lane: the loss, and (if probs) the softmax written
/// out for the backward. The last-axis hot path instantiates contiguous = true (stride 1).
template <bool contiguous, class T>
double cce_logits_lane(const T* z, const T* t, std::size_t n, std::size_t stride_in, T* probs,
                       LogitsLane& lane)
{
    const std::size_t st = contiguous ? 1 : stride_in;
    double s = 0.0, tz = 0.0, ts = 0.0;
    T m;
    if (contiguous) {
        m = kernels::row_max(z, n);
        s = kernels::exp_shifted(z, probs, n, m);
    } else {
        m = z[0];
        for (std::size_t k = 1; k < n; ++k)
            m = z[k * st] > m ? z[k * st] : m;
        for (std::size_t k = 0; k < n; ++k) {
            const T e = std::exp(z[k * st] - m);
            if (probs)
                probs[k * st] = e;
            s += e;
        }
    }
    if (contiguous) {
        tz = kernels::dot_row(t, z, n);
        ts = kernels::sum_row(t, n);
    } else {
        for (std::size_t k = 0; k < n; ++k) {
            tz += static_cast<double>(t[k * st]) * z[k * st];
            ts += t[k * st];
        }
    }
    if (probs) {
        const T inv = static_cast<T>(1.0 / s);
        for (std::size_t k = 0; k < n; ++k)
            probs[k * st] *= inv;
    }
    lane.lse = m + std::log(s);
    lane.t_sum = ts;
    // sum_k t_k (lse - z_k)
    return ts * lane.lse - tz;
}

template <class T>
Tensor<T> cce_from_logits(const Tensor<T>& y_true, const Tensor<T>& y_pred, const Lanes& l, shape_t out_shape)
{
    const bool record = should_record<T>({ &y_true, &y_pred });
    array_t<T> out = array_t<T>::from_shape(out_shape);
    array_t<T> probs = record ? array_t<T>::from_shape(y_pred.value().shape()) : array_t<T>();
    std::vector<LogitsLane> lanes(l.count());
    const T* z = y_pred.data();
    const T* t = y_true.data();
    T* op = out.data();
    T* pp = record ? probs.data() : nullptr;
    parallel_for(
        l.count(),
        [&](std::size_t a, std::size_t b) {
            for (std::size_t L = a; L < b; ++L) {
                const std::size_t o = l.base(L);
                op[L] =
                    static_cast<T>(l.inner == 1 ? cce_logits_lane<true>(z + o, t + o, l.n, 1,
                                                                        pp ? pp + o : nullptr, lanes[L])
                                                : cce_logits_lane<false>(z + o, t + o, l.n, l.inner,
                                                                         pp ? pp + o : nullptr, lanes[L]));
            }
        },
        l.n);
    Tensor<T> y(std::move(out));
    if (!record)
        return y;
    record_op<T>("categorical_crossentropy", { y_true, y_pred }, y,
                 [y_true, y_pred, l, lanes = std::move(lanes), probs = Tensor<T>(std::move(probs))](
                     const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     // dz_k = g (softmax_k * sum(t) - t_k)   (= softmax - y for one-hot y)
                     // dt_k = g (lse - z_k)                  (= -g log softmax_k)
                     const T* z = y_pred.data();
                     const T* t = y_true.data();
                     const T* p = probs.data();
                     const T* g = dy.data();
                     T* dt = dx[0] ? dx[0]->data() : nullptr;
                     T* dz = dx[1] ? dx[1]->data() : nullptr;
                     // Lanes are disjoint and each lane is handled by one thread, so one tensor
                     // passed as both y_true and y_pred still accumulates both parts safely.
                     parallel_for(
                         l.count(),
                         [&](std::size_t a, std::size_t b) {
                             for (std::size_t L = a; L < b; ++L) {
                                 const std::size_t o = l.base(L);
                                 const T gl = g[L], ts = static_cast<T>(lanes[L].t_sum);
                                 if (dz) {
                                     if (l.inner == 1)
                                         for (std::size_t k = o; k < o + l.n; ++k)
                                             dz[k] += gl * (p[k] * ts - t[k]);
                                     else
                                         for (std::size_t k = 0, i = o; k < l.n; ++k, i += l.inner)
                                             dz[i] += gl * (p[i] * ts - t[i]);
                                 }
                                 if (dt)
                                     for (std::size_t k = 0, i = o; k < l.n; ++k, i += l.inner)
                                         dt[i] += gl * static_cast<T>(lanes[L].lse - z[i]);
                             }
                         },
                         l.n);
                 });
    return y;
}

template <class T>
Tensor<T> cce_from_probabilities(const Tensor<T>& y_true, const Tensor<T>& y_pred, const Lanes& l,
                                 shape_t out_shape)
{
    // Keras: p / sum(p) along the axis, clipped to [eps, 1 - eps], then -sum(t log p).
    const T eps = keras_epsilon<T>(), hi = T(1) - keras_epsilon<T>();
    array_t<T> out = array_t<T>::from_shape(out_shape);
    const T* p = y_pred.data();
    const T* t = y_true.data();
    T* op = out.data();
    parallel_for(
        l.count(),
        [&](std::size_t a, std::size_t b) {
            for (std::size_t L = a; L < b; ++L) {
                const std::size_t o = l.base(L);
                double s = 0.0, loss = 0.0;
                for (std::size_t k = 0, i = o; k < l.n; ++k, i += l.inner)
                    s += p[i];
                for (std::size_t k = 0, i = o; k < l.n; ++k, i += l.inner)
                    loss -= static_cast<double>(t[i]) * std::log(clamp(static_cast<T>(p[i] / s), eps, hi));
                op[L] = static_cast<T>(loss);
            }
        },
        l.n);
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &y_true, &y_pred }))
        return y;
    record_op<T>("categorical_crossentropy", { y_true, y_pred }, y,
                 [y_true, y_pred, l, eps, hi](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     // q = p / S, c = clip(q). With G_k = -t_k / c_k where the clip is inactive
                     // (else 0): dL/dp_j = (G_j - sum_k G_k q_k) / S, and dL/dt_k = -log c_k.
                     const T* p = y_pred.data();
                     const T* t = y_true.data();
                     const T* g = dy.data();
                     T* dt = dx[0] ? dx[0]->data() : nullptr;
                     T* dp = dx[1] ? dx[1]->data() : nullptr;
                     // Lanes are disjoint and each lane's updates to dt and dp come from one
                     // thread, so this is safe even when one tensor plays both roles.
                     parallel_for(
                         l.count(),
                         [&](std::size_t a, std::size_t b) {
                             for (std::size_t L = a; L < b; ++L) {
                                 const std::size_t o = l.base(L);
                                 double s = 0.0, gq = 0.0;
                                 for (std::size_t k = 0, i = o; k < l.n; ++k, i += l.inner)
                                     s += p[i];
                                 auto G = [&](std::size_t i) {
                                     const T q = static_cast<T>(p[i] / s);
                                     return q > eps && q < hi ? -static_cast<double>(t[i]) / q : 0.0;
                                 };
                                 for (std::size_t k = 0, i = o; k < l.n; ++k, i += l.inner)
                                     gq += G(i) * (p[i] / s);
                                 for (std::size_t k = 0, i = o; k < l.n; ++k, i += l.inner) {
                                     if (dp)
                                         dp[i] += g[L] * static_cast<T>((G(i) - gq) / s);
                                     if (dt)
                                         dt[i] -= g[L] * std::log(clamp(static_cast<T>(p[i] / s), eps, hi));
                                 }
                             }
                         },
                         l.n);
                 });
    return y;
}

} // namespace

template <class T>
Tensor<T> mean_squared_error(const Tensor<T>& y_true, const Tensor<T>& y_pred)
{
    return pairwise_loss<T>(
        "mean_squared_error", y_true, y_pred, false, true, [](T t, T p) { return (p - t) * (p - t); },
        [](T t, T p) { return T(2) * (p - t); }, [](T t, T p) { return T(2) * (t - p); });
}

template <class T>
Tensor<T> mean_absolute_error(const Tensor<T>& y_true, const Tensor<T>& y_pred)
{
    // sign(p - t), 0 at 0 as tf.abs's gradient
    return pairwise_loss<T>(
        "mean_absolute_error", y_true, y_pred, false, true, [](T t, T p) { return std::abs(p - t); },
        [](T t, T p) { return T((p > t) - (p < t)); }, [](T t, T p) { return T((t > p) - (t < p)); });
}

template <class T>
Tensor<T> binary_crossentropy(const Tensor<T>& y_true, const Tensor<T>& y_pred, bool from_logits)
{
    if (from_logits) {
        // max(z, 0) - z t + log(1 + e^-|z|): finite for any z. d/dz = sigmoid(z) - t, d/dt = -z.
        return pairwise_loss<T>(
            "binary_crossentropy", y_true, y_pred, true, true,
            [](T t, T z) { return std::max(z, T(0)) - z * t + std::log1p(std::exp(-std::abs(z))); },
            [](T t, T z) { return sigmoid_of(z) - t; }, [](T, T z) { return -z; });
    }
    // Keras clips p to [eps, 1 - eps] (in the working precision), then -(t log p + (1-t) log(1-p)).
    const T eps = keras_epsilon<T>(), hi = T(1) - keras_epsilon<T>();
    return pairwise_loss<T>(
        "binary_crossentropy", y_true, y_pred, true, true,
        [=](T t, T p) {
            const T c = clamp(p, eps, hi);
            return -(t * std::log(c) + (T(1) - t) * std::log(T(1) - c));
        },
        [=](T t, T p) { return p > eps && p < hi ? (T(1) - t) / (T(1) - p) - t / p : T(0); },
        [=](T, T p) {
            const T c = clamp(p, eps, hi);
            return std::log(T(1) - c) - std::log(c);
        });
}

template <class T>
Tensor<T> categorical_crossentropy(const Tensor<T>& y_true, const Tensor<T>& y_pred, bool from_logits,
                                   int axis)
{
    shape_t st = y_true.shape(), sp = y_pred.shape();
    same_rank(st, sp);
    if (st != sp)
        throw ShapeError("categorical_crossentropy: y_true and y_pred must have the same shape, got " +
                         pair_str(y_true.shape(), y_pred.shape()));
    if (sp.empty())
        throw ShapeError("categorical_crossentropy: expected tensors of rank >= 1, got " + pair_str(st, sp));
    const std::size_t a = kernels::normalize_axis(axis, sp.size(), "categorical_crossentropy");
    if (sp[a] == 0)
        throw ShapeError("categorical_crossentropy: the class axis is empty in " + pair_str(st, sp));
    shape_t so = sp;
    so.erase(so.begin() + static_cast<long>(a));
    const Lanes l = lanes_of(sp, a);
    return from_logits ? cce_from_logits(y_true, y_pred, l, so)
                       : cce_from_probabilities(y_true, y_pred, l, so);
}

template <class T>
Tensor<T> sparse_categorical_crossentropy(const Tensor<T>& y_true, const Tensor<T>& y_pred, bool from_logits)
{
    const char* name = "sparse_categorical_crossentropy";
    const shape_t sp = y_pred.shape();
    shape_t st = y_true.shape();
    if (sp.empty())
        throw ShapeError(std::string(name) + ": y_pred must have rank >= 1, got " + pair_str(st, sp));
    if (st.size() == sp.size() && !st.empty() && st.back() == 1)
        st.pop_back();
    const shape_t so(sp.begin(), sp.end() - 1);
    if (st != so)
        throw ShapeError(std::string(name) + ": y_true must have y_pred's shape without the class axis " +
                         shape_str(so) + " (or with a trailing 1), got " + pair_str(y_true.shape(), sp));
    const std::size_t c = sp.back(), rows = shape_size(so);
    const T* lab = y_true.data();
    std::vector<std::size_t> labels(rows);
    for (std::size_t r = 0; r < rows; ++r) {
        const T v = lab[r];
        if (!(v >= 0 && v < static_cast<T>(c) && v == std::floor(v))) {
            // Keras (TensorFlow's kernel) says "Received a label value of 5 which is outside the
            // valid range of [0, 3)"; the row is the row of y_true given to the loss (of the batch in fit).
            std::ostringstream label;
            label << v;
            throw ValueError(std::string(name) + ": Received a label value of " + label.str() +
                             " which is outside the valid range of [0, " + std::to_string(c) + "): label " +
                             label.str() + " in row " + std::to_string(r) + " is not a class index for " +
                             std::to_string(c) + " classes (expected an integer in 0.." +
                             std::to_string(c == 0 ? 0 : c - 1) + ")");
        }
        labels[r] = static_cast<std::size_t>(v);
    }
    const bool record = should_record<T>({ &y_true, &y_pred });
    const T eps = keras_epsilon<T>(), hi = T(1) - keras_epsilon<T>();
    array_t<T> out = array_t<T>::from_shape(so);
    array_t<T> probs = record && from_logits ? array_t<T>::from_shape(sp) : array_t<T>();
    const T* z = y_pred.data();
    T* op = out.data();
    T* pp = record && from_logits ? probs.data() : nullptr;
    parallel_for(
        rows,
        [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                const T* zr = z + r * c;
                if (from_logits) {
                    // lse(z) - z_label, with the softmax kept for the backward
                    const T m = kernels::row_max(zr, c);
                    T* pr = pp ? pp + r * c : nullptr;
                    const double s = kernels::exp_shifted(zr, pr, c, m);
                    if (pr) {
                        const T inv = static_cast<T>(1.0 / s);
                        for (std::size_t k = 0; k < c; ++k)
                            pr[k] *= inv;
                    }
                    op[r] = static_cast<T>(m + std::log(s) - zr[labels[r]]);
                } else {
                    double s = 0.0;
                    for (std::size_t k = 0; k < c; ++k)
                        s += zr[k];
                    op[r] = -std::log(clamp(static_cast<T>(zr[labels[r]] / s), eps, hi));
                }
            }
        },
        c);
    Tensor<T> y(std::move(out));
    if (!record)
        return y;
    record_op<T>(
        name, { y_true, y_pred }, y,
        [y_pred, labels = std::move(labels), c, from_logits, eps, hi,
         probs = Tensor<T>(std::move(probs))](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
            // Labels are indices: no gradient flows to y_true (dx[0] stays as it is).
            if (!dx[1])
                return;
            const T* z = y_pred.data();
            const T* g = dy.data();
            T* dz = dx[1]->data();
            parallel_for(
                labels.size(),
                [&](std::size_t r0, std::size_t r1) {
                    for (std::size_t r = r0; r < r1; ++r) {
                        T* dr = dz + r * c;
                        const std::size_t k0 = labels[r];
                        if (from_logits) {
                            // dz = g (softmax - onehot)
                            const T* pr = probs.data() + r * c;
                            for (std::size_t k = 0; k < c; ++k)
                                dr[k] += g[r] * pr[k];
                            dr[k0] -= g[r];
                            continue;
                        }
                        // L = -log clip(q_k0), q = p / S: with G = -1/q_k0 (0 if clipped),
                        // dL/dp_j = G (delta_j,k0 - q_k0) / S.
                        const T* zr = z + r * c;
                        double s = 0.0;
                        for (std::size_t k = 0; k < c; ++k)
                            s += zr[k];
                        const T q = static_cast<T>(zr[k0] / s);
                        if (!(q > eps && q < hi))
                            continue;
                        const T gs = g[r] * (T(-1) / q) / static_cast<T>(s);
                        for (std::size_t k = 0; k < c; ++k)
                            dr[k] -= gs * q;
                        dr[k0] += gs;
                    }
                },
                c);
        });
    return y;
}

template <class T>
Tensor<T> huber(const Tensor<T>& y_true, const Tensor<T>& y_pred, T delta)
{
    if (!(delta >= 0))
        throw ValueError("huber: delta must be >= 0, got " + std::to_string(delta));
    // e = p - t: 0.5 e^2 where |e| <= delta, else delta |e| - 0.5 delta^2.
    auto dp = [delta](T t, T p) {
        const T e = p - t;
        return std::abs(e) <= delta ? e : delta * T((e > 0) - (e < 0));
    };
    return pairwise_loss<T>(
        "huber", y_true, y_pred, false, true,
        [delta](T t, T p) {
            const T e = std::abs(p - t);
            return e <= delta ? T(0.5) * e * e : delta * e - T(0.5) * delta * delta;
        },
        dp, [dp](T t, T p) { return -dp(t, p); });
}

template <class T>
Tensor<T> kl_divergence(const Tensor<T>& y_true, const Tensor<T>& y_pred)
{
    // Keras clips both to [eps, 1], then sums t log(t / p) over the last axis.
    const T eps = keras_epsilon<T>();
    return pairwise_loss<T>(
        "kl_divergence", y_true, y_pred, false, false,
        [eps](T t, T p) {
            const T tc = clamp(t, eps, T(1)), pc = clamp(p, eps, T(1));
            return tc * std::log(tc / pc);
        },
        [eps](T t, T p) { return p > eps && p < T(1) ? -clamp(t, eps, T(1)) / p : T(0); },
        [eps](T t, T p) { return t > eps && t < T(1) ? std::log(t / clamp(p, eps, T(1))) + T(1) : T(0); });
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> mean_squared_error(const Tensor<T>&, const Tensor<T>&);                               \
    template Tensor<T> mean_absolute_error(const Tensor<T>&, const Tensor<T>&);                              \
    template Tensor<T> binary_crossentropy(const Tensor<T>&, const Tensor<T>&, bool);                        \
    template Tensor<T> categorical_crossentropy(const Tensor<T>&, const Tensor<T>&, bool, int);              \
    template Tensor<T> sparse_categorical_crossentropy(const Tensor<T>&, const Tensor<T>&, bool);            \
    template Tensor<T> huber(const Tensor<T>&, const Tensor<T>&, T);                                         \
    template Tensor<T> kl_divergence(const Tensor<T>&, const Tensor<T>&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
