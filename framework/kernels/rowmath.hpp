// Vectorized row kernels for the exp-bound hot paths (softmax, log_softmax, softmax
// crossentropy, sigmoid). gcc does not vectorize std::exp without -ffast-math, and a scalar expf
// costs 5-15x more than xsimd's polynomial exp (measured 25 ms vs 1.6-8 ms on 4M floats), whose
// error is within about one ulp (1.1e-7 relative in float). Internal to framework/.
//
// Every element goes through the same batch code (the tail is padded, not handled by std::exp),
// and sums accumulate in double in a fixed order that depends only on n, never on threads.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstddef>

namespace xtape::kernels {

/// Largest element of x[0..n); requires n > 0. NaNs are not propagated (as a plain `>` scan).
template <class T>
T row_max(const T* x, std::size_t n)
{
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    T m = x[0];
    std::size_t i = 0;
    if (n >= W) {
        B vm = B::load_unaligned(x);
        for (i = W; i + W <= n; i += W)
            vm = xsimd::max(vm, B::load_unaligned(x + i));
        alignas(64) T lanes[W];
        vm.store_aligned(lanes);
        for (std::size_t k = 0; k < W; ++k)
            m = lanes[k] > m ? lanes[k] : m;
    }
    for (; i < n; ++i)
        m = x[i] > m ? x[i] : m;
    return m;
}

/// sum of x[0..n) in double. Eight independent accumulators keep the adds from waiting on each
/// other (one chain is latency-bound: about 4 cycles per element); they combine in a fixed order.
template <class T>
double sum_row(const T* x, std::size_t n)
{
    double a[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t k = 0; k < 8; ++k)
            a[k] += x[i + k];
    for (std::size_t k = 0; i < n; ++i, ++k)
        a[k] += x[i];
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/// sum of a[i] * b[i] over [0, n), products and sums in double, combined as in sum_row.
template <class T>
double dot_row(const T* a, const T* b, std::size_t n)
{
    double s[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t k = 0; k < 8; ++k)
            s[k] += static_cast<double>(a[i + k]) * b[i + k];
    for (std::size_t k = 0; i < n; ++i, ++k)
        s[k] += static_cast<double>(a[i]) * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/// y[i] = exp(x[i] - shift) for i < n (y may be null: only the sum is wanted; y may equal x).
/// Returns the sum of those values, accumulated in double.
template <class T>
double exp_shifted(const T* x, T* y, std::size_t n, T shift)
{
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    alignas(64) T buf[W];
    double acc[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    const B s(shift);
    std::size_t i = 0;
    for (; i + W <= n; i += W) {
        const B e = xsimd::exp(B::load_unaligned(x + i) - s);
        T* out = y ? y + i : buf;
        e.store_unaligned(out);
        for (std::size_t k = 0; k < W; ++k)
            acc[k & 7] += out[k];
    }
    if (i < n) {
        const std::size_t r = n - i;
        std::fill(buf, buf + W, shift);
        std::copy(x + i, x + n, buf);
        xsimd::exp(B::load_aligned(buf) - s).store_aligned(buf);
        for (std::size_t k = 0; k < r; ++k) {
            if (y)
                y[i + k] = buf[k];
            acc[k & 7] += buf[k];
        }
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/// y[i] = 1 / (1 + exp(-x[i])). Finite for any x: exp(-x) = inf gives 0, exp(-x) = 0 gives 1.
template <class T>
void sigmoid_row(const T* x, T* y, std::size_t n)
{
    using B = xsimd::batch<T>;
    constexpr std::size_t W = B::size;
    const B one(T(1));
    std::size_t i = 0;
    for (; i + W <= n; i += W)
        (one / (one + xsimd::exp(-B::load_unaligned(x + i)))).store_unaligned(y + i);
    if (i < n) {
        alignas(64) T buf[W] = {};
        std::copy(x + i, x + n, buf);
        (one / (one + xsimd::exp(-B::load_aligned(buf)))).store_aligned(buf);
        std::copy(buf, buf + (n - i), y + i);
    }
}

} // namespace xtape::kernels
