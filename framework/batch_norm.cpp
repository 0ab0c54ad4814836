// Fused batch normalization: kernels over (outer, C, inner) problems and the differentiable op.
// See the Notes in batch_norm.hpp for the layouts, the numerics and determinism.
#include "framework/batch_norm.hpp"

#include "framework/errors.hpp"
#include "framework/kernels/grad_slot.hpp"
#include "framework/kernels/simd.hpp"
#include "framework/parallel.hpp"

#include <xsimd/xsimd.hpp>
#include <xtensor/xbroadcast.hpp>

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <string>
#include <type_traits>

namespace xtape {
namespace bn {
namespace {

/// Rows per channel-last tile and elements per channel-first segment (Note [Batch norm numerics]).
/// Each tile ends in a per-channel merge in double, as costly as a few rows of loads: 64 rows
/// instead of 16 took the forward on 12544x256 from 980-998 to 885-899 us and the backward from
/// 1724-1750 to 1645-1661 (2 threads, configurations alternated within one process), 4096x256 and
/// 100352x64 gained 4-10% alike.
constexpr std::size_t tile_rows_default = 64;
constexpr std::size_t run_segment = 1024;
/// Work per chunk and the caps that keep the per-chunk partial sums small.
constexpr std::size_t chunk_elements = 1 << 15;
constexpr std::size_t max_chunks = 16;
constexpr std::size_t max_partials = 1 << 14;

using kernels::vec;

/// Chunks over the outer axis; depends only on the layout (Note [Batch norm determinism]).
std::size_t chunk_count(const Layout& l)
{
    std::size_t n = std::max<std::size_t>(1, l.size() / chunk_elements);
    n = std::min({ n, max_chunks, std::max<std::size_t>(1, max_partials / std::max<std::size_t>(l.channels, 1)),
                   l.outer });
    return std::max<std::size_t>(n, 1);
}

std::size_t chunk_begin(const Layout& l, std::size_t nchunks, std::size_t ch) { return l.outer * ch / nchunks; }

int thread_count(const Layout& l, std::size_t nchunks)
{
#ifdef _OPENMP
    if (l.size() < parallel_threshold || omp_in_parallel())
        return 1;
    return static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(omp_get_max_threads()), nchunks));
#else
    (void)l;
    (void)nchunks;
    return 1;
#endif
}

int thread_id()
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

void barrier()
{
#ifdef _OPENMP
#pragma omp barrier
#endif
}

/// Runs f(t, nt) on nt threads (f may call barrier()).
template <class F>
void run_threads(int nt, F&& f)
{
    if (nt <= 1) {
        f(0, 1);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
    f(thread_id(), omp_get_num_threads());
#endif
}

/// The channel-first forward streams only from twice stream_min_bytes (Note [Streaming stores] in
/// framework/kernels/simd.hpp): measured on 64x256x14x14 (12.8 MB,
/// x and y together within this machine's 32 MB L3) normal stores were faster (median 480-625 us
/// against 545-760), on the same size channel-last they were 2x slower, and the backward, which
/// also reads dy, kept streaming faster at 12.8 MB in both layouts.
constexpr std::size_t stream_min_bytes_cf_forward = std::size_t(16) << 20;

using kernels::blend_lanes;
using kernels::hsum;
using kernels::is_aligned;
using kernels::load_partial;
using kernels::store;
using kernels::stream_fence;
using kernels::stream_min_bytes;
using kernels::stream_store;

/// Chan et al.'s pairwise merge of (mean_b, m2_b) over n_b elements into (mean, m2) over n_a:
/// the weights depend only on the counts, so a loop over channels computes them once.
struct MergeWeights {
    double f1, f2;
    MergeWeights(double n_a, double n_b)
        : f1(n_b / (n_a + n_b))
        , f2(n_a * n_b / (n_a + n_b))
    {
    }
};

inline void chan_merge(double& mean, double& m2, const MergeWeights& w, double mean_b, double m2_b)
{
    const double delta = mean_b - mean;
    mean += delta * w.f1;
    m2 += m2_b + delta * delta * w.f2;
}

/// Rows wider than this are processed row by row (see cl_rows_affine), and reduced in shorter
/// tiles: rows 4 KB apart map to the same L1 sets, and 16 of them overflow its 8 ways.
constexpr std::size_t wide_row_bytes = 2048;
constexpr std::size_t wide_tile_rows = 8;

template <class T>
std::size_t tile_rows_for(std::size_t C)
{
    return C * sizeof(T) > wide_row_bytes ? wide_tile_rows : tile_rows_default;
}

// ---- channel-first runs: `n` contiguous elements of one channel -------------------------------

/// Whole runs of one channel (consecutive rows) per statistics tile: as many as fit in
/// run_segment elements; a longer run is cut into segments instead (1).
inline std::size_t runs_per_tile(std::size_t I) { return I <= run_segment ? run_segment / I : 1; }

/// Mean and sum of squared deviations of `rows` runs of n elements each, `stride` apart, with
/// rows * n <= run_segment (or one run of n <= run_segment): their mean in T, then sums of
/// (x - that mean), which are small, so their square does not cancel. Several short runs (one
/// channel of consecutive outer rows) form one tile, so the horizontal sums and the merge are paid
/// once per tile instead of once per run: with 14x14 runs they cost as much as the loads.
template <class T>
void run_moments(const T* x0, std::size_t n, std::size_t rows, std::size_t stride, double& mean, double& m2)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    V s0(T(0)), s1(T(0)), s2(T(0)), s3(T(0));
    for (std::size_t r = 0; r < rows; ++r) {
        const T* x = x0 + r * stride;
        std::size_t i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            s0 += V::load_unaligned(x + i);
            s1 += V::load_unaligned(x + i + L);
            s2 += V::load_unaligned(x + i + 2 * L);
            s3 += V::load_unaligned(x + i + 3 * L);
        }
        for (; i + L <= n; i += L)
            s0 += V::load_unaligned(x + i);
        if (i < n)
            s1 += load_partial(x + i, n - i, T(0));
    }
    const std::size_t total = n * rows;
    const T shift = hsum<T>((s0 + s1) + (s2 + s3)) / static_cast<T>(total);
    const V vs(shift);
    V a0(T(0)), a1(T(0)), q0(T(0)), q1(T(0));
    for (std::size_t r = 0; r < rows; ++r) {
        const T* x = x0 + r * stride;
        std::size_t i = 0;
        for (; i + 2 * L <= n; i += 2 * L) {
            const V d0 = V::load_unaligned(x + i) - vs;
            const V d1 = V::load_unaligned(x + i + L) - vs;
            a0 += d0;
            a1 += d1;
            q0 = xsimd::fma(d0, d0, q0);
            q1 = xsimd::fma(d1, d1, q1);
        }
        for (; i + L <= n; i += L) {
            const V d0 = V::load_unaligned(x + i) - vs;
            a0 += d0;
            q0 = xsimd::fma(d0, d0, q0);
        }
        if (i < n) {
            // Missing lanes read as the shift, so they add 0.
            const V d1 = load_partial(x + i, n - i, shift) - vs;
            a1 += d1;
            q1 = xsimd::fma(d1, d1, q1);
        }
    }
    const double s = static_cast<double>(hsum<T>(a0 + a1));
    const double q = static_cast<double>(hsum<T>(q0 + q1));
    const double dn = static_cast<double>(total);
    mean = static_cast<double>(shift) + s / dn;
    m2 = std::max(0.0, q - s * s / dn);
}

/// sum(dy) and sum(dy * (x - m)) over `rows` runs of n elements, `stride` apart, added to (sdy,
/// sdyx): summed in T over segments of at most run_segment elements (a segment is part of one run,
/// or several whole runs when rows * n <= run_segment), then in double.
template <class T>
void run_grad_sums(const T* x0, const T* dy0, std::size_t n, std::size_t rows, std::size_t stride, T m, double& sdy,
                   double& sdyx)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    const V vm(m);
    const std::size_t seg = rows > 1 ? n : run_segment;
    for (std::size_t s0 = 0; s0 < n; s0 += seg) {
        const std::size_t e = std::min(n, s0 + seg);
        V g0(T(0)), g1(T(0)), h0(T(0)), h1(T(0));
        for (std::size_t r = 0; r < rows; ++r) {
            const T* x = x0 + r * stride;
            const T* dy = dy0 + r * stride;
            std::size_t i = s0;
            for (; i + 2 * L <= e; i += 2 * L) {
                const V d0 = V::load_unaligned(dy + i), d1 = V::load_unaligned(dy + i + L);
                g0 += d0;
                g1 += d1;
                h0 = xsimd::fma(d0, V::load_unaligned(x + i) - vm, h0);
                h1 = xsimd::fma(d1, V::load_unaligned(x + i + L) - vm, h1);
            }
            for (; i + L <= e; i += L) {
                const V d0 = V::load_unaligned(dy + i);
                g0 += d0;
                h0 = xsimd::fma(d0, V::load_unaligned(x + i) - vm, h0);
            }
            if (i < e) {
                // Missing lanes: dy 0, so they add 0 to both sums.
                const V d1 = load_partial(dy + i, e - i, T(0));
                g1 += d1;
                h1 = xsimd::fma(d1, load_partial(x + i, e - i, m) - vm, h1);
            }
        }
        sdy += static_cast<double>(hsum<T>(g0 + g1));
        sdyx += static_cast<double>(hsum<T>(h0 + h1));
    }
}

// Scalar tails use std::fma in the vector code's order, so an element's value does not depend on
// whether a vector or a scalar path computed it (alignment peels differ between calls).

/// One outer row of a channel-first layout is C runs of I >= L elements, contiguous: it is
/// written as one stream of full vectors (aligned, so they can be streaming stores), and a vector
/// that straddles two runs takes its coefficients lane by lane.
template <class T>
void cf_row_affine(const T* x, std::size_t C, std::size_t I, const T* m, const T* a, const T* b, T* y, bool stream)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    const std::size_t n = C * I;
    std::size_t k = 0;
    auto one = [&](std::size_t k) {
        const std::size_t c = k / I;
        y[k] = std::fma(x[k] - m[c], a[c], b[c]);
    };
    if (stream)
        for (; k < n && !is_aligned(y + k); ++k)
            one(k);
    for (std::size_t c = k / I; k + L <= n; ++c) {
        const std::size_t e = (c + 1) * I;
        const V vm(m[c]), va(a[c]), vb(b[c]);
        for (; k + L <= e; k += L)
            store(y + k, xsimd::fma(V::load_unaligned(x + k) - vm, va, vb), stream);
        if (k + L > n)
            break;
        if (k < e) {
            const std::size_t j = e - k;
            const V sm = blend_lanes(j, vm, V(m[c + 1])), sa = blend_lanes(j, va, V(a[c + 1]));
            const V sb = blend_lanes(j, vb, V(b[c + 1]));
            store(y + k, xsimd::fma(V::load_unaligned(x + k) - sm, sa, sb), stream);
            k += L;
        }
    }
    for (; k < n; ++k)
        one(k);
}

template <class T>
void cf_row_dx(const T* x, const T* dy, std::size_t C, std::size_t I, const T* m, const T* kdy, const T* kx,
               const T* k0, T* dx, bool accumulate, bool stream)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    const std::size_t n = C * I;
    std::size_t k = 0;
    auto one = [&](std::size_t k) {
        const std::size_t c = k / I;
        const T v = std::fma(kx[c], x[k] - m[c], std::fma(kdy[c], dy[k], k0[c]));
        dx[k] = accumulate ? dx[k] + v : v;
    };
    auto put = [&](std::size_t k, const V& v) {
        if (accumulate)
            (V::load_unaligned(dx + k) + v).store_unaligned(dx + k);
        else
            store(dx + k, v, stream);
    };
    if (stream)
        for (; k < n && !is_aligned(dx + k); ++k)
            one(k);
    for (std::size_t c = k / I; k + L <= n; ++c) {
        const std::size_t e = (c + 1) * I;
        const V vm(m[c]), vdy(kdy[c]), vx(kx[c]), v0(k0[c]);
        for (; k + L <= e; k += L)
            put(k, xsimd::fma(vx, V::load_unaligned(x + k) - vm, xsimd::fma(vdy, V::load_unaligned(dy + k), v0)));
        if (k + L > n)
            break;
        if (k < e) {
            const std::size_t j = e - k;
            const V sm = blend_lanes(j, vm, V(m[c + 1])), sdy = blend_lanes(j, vdy, V(kdy[c + 1]));
            const V sx = blend_lanes(j, vx, V(kx[c + 1])), s0 = blend_lanes(j, v0, V(k0[c + 1]));
            put(k, xsimd::fma(sx, V::load_unaligned(x + k) - sm, xsimd::fma(sdy, V::load_unaligned(dy + k), s0)));
            k += L;
        }
    }
    for (; k < n; ++k)
        one(k);
}

/// Runs shorter than a vector (I < L): plain loops.
template <class T>
void cf_row_affine_short(const T* x, std::size_t C, std::size_t I, const T* m, const T* a, const T* b, T* y)
{
    for (std::size_t c = 0; c < C; ++c)
        for (std::size_t i = 0; i < I; ++i)
            y[c * I + i] = std::fma(x[c * I + i] - m[c], a[c], b[c]);
}

template <class T>
void cf_row_dx_short(const T* x, const T* dy, std::size_t C, std::size_t I, const T* m, const T* kdy, const T* kx,
                     const T* k0, T* dx, bool accumulate)
{
    for (std::size_t c = 0; c < C; ++c)
        for (std::size_t i = 0; i < I; ++i) {
            const std::size_t k = c * I + i;
            const T v = std::fma(kx[c], x[k] - m[c], std::fma(kdy[c], dy[k], k0[c]));
            dx[k] = accumulate ? dx[k] + v : v;
        }
}

// ---- channel-last tiles: nr rows of a (rows, C) matrix, channels [c, c + NV*L) ----------------

/// Tile statistics merged (weights w) into (mean, m2)[c ...], which summarize the earlier rows of
/// the chunk. The chunk's first tile takes two passes: its own mean, then sums of x minus it.
/// Later tiles (one_pass) take one, shifted by the chunk's mean so far rounded to T: that shift is
/// as close to the data as the tile's own mean would be (both estimate the channel's mean), so
/// x - shift does not cancel either, and the second read of the tile - from L2 for 64 rows of
/// 1 KB, which overflow L1's sets - is saved.
template <class T, int NV>
void tile_moments(const T* x, std::size_t C, std::size_t nr, std::size_t c, const MergeWeights& w, bool one_pass,
                  double* mean, double* m2)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    V sh[NV];
    if (one_pass) {
        alignas(64) T b[NV * L];
        for (std::size_t j = 0; j < NV * L; ++j)
            b[j] = static_cast<T>(mean[c + j]);
#pragma GCC unroll 8
        for (int k = 0; k < NV; ++k)
            sh[k] = V::load_aligned(b + k * L);
    } else {
        V s[NV];
#pragma GCC unroll 8
        for (int k = 0; k < NV; ++k)
            s[k] = V(T(0));
        for (std::size_t r = 0; r < nr; ++r) {
            const T* p = x + r * C + c;
#pragma GCC unroll 8
            for (int k = 0; k < NV; ++k)
                s[k] += V::load_unaligned(p + k * L);
        }
        const V inv_n(T(1) / static_cast<T>(nr));
#pragma GCC unroll 8
        for (int k = 0; k < NV; ++k)
            sh[k] = s[k] * inv_n;
    }
    V a[NV], q[NV];
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
        a[k] = V(T(0));
        q[k] = V(T(0));
    }
    for (std::size_t r = 0; r < nr; ++r) {
        const T* p = x + r * C + c;
#pragma GCC unroll 8
        for (int k = 0; k < NV; ++k) {
            const V d = V::load_unaligned(p + k * L) - sh[k];
            a[k] += d;
            q[k] = xsimd::fma(d, d, q[k]);
        }
    }
    alignas(64) T bs[NV * L], ba[NV * L], bq[NV * L];
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
        sh[k].store_aligned(bs + k * L);
        a[k].store_aligned(ba + k * L);
        q[k].store_aligned(bq + k * L);
    }
    const double inv_dn = 1.0 / static_cast<double>(nr);
    for (std::size_t j = 0; j < NV * L; ++j) {
        const double sj = ba[j];
        const double mt = static_cast<double>(bs[j]) + sj * inv_dn;
        const double m2t = std::max(0.0, static_cast<double>(bq[j]) - sj * sj * inv_dn);
        chan_merge(mean[c + j], m2[c + j], w, mt, m2t);
    }
}

template <class T>
void tile_moments_scalar(const T* x, std::size_t C, std::size_t nr, std::size_t c, const MergeWeights& w, double* mean,
                         double* m2)
{
    T s = 0;
    for (std::size_t r = 0; r < nr; ++r)
        s += x[r * C + c];
    const T sh = s / static_cast<T>(nr);
    double a = 0, q = 0;
    for (std::size_t r = 0; r < nr; ++r) {
        const double d = static_cast<double>(x[r * C + c] - sh);
        a += d;
        q += d * d;
    }
    const double dn = static_cast<double>(nr);
    chan_merge(mean[c], m2[c], w, static_cast<double>(sh) + a / dn, std::max(0.0, q - a * a / dn));
}

template <class T, int NV>
void tile_grad_sums(const T* x, const T* dy, std::size_t C, std::size_t nr, std::size_t c, const T* m, double* sdy,
                    double* sdyx)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    V g[NV], h[NV], vm[NV];
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
        g[k] = V(T(0));
        h[k] = V(T(0));
        vm[k] = V::load_aligned(m + c + k * L);
    }
    for (std::size_t r = 0; r < nr; ++r) {
        const T* px = x + r * C + c;
        const T* pd = dy + r * C + c;
#pragma GCC unroll 8
        for (int k = 0; k < NV; ++k) {
            const V d = V::load_unaligned(pd + k * L);
            g[k] += d;
            h[k] = xsimd::fma(d, V::load_unaligned(px + k * L) - vm[k], h[k]);
        }
    }
    alignas(64) T bg[NV * L], bh[NV * L];
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
        g[k].store_aligned(bg + k * L);
        h[k].store_aligned(bh + k * L);
    }
    for (std::size_t j = 0; j < NV * L; ++j) {
        sdy[c + j] += bg[j];
        sdyx[c + j] += bh[j];
    }
}

template <class T>
void tile_grad_sums_scalar(const T* x, const T* dy, std::size_t C, std::size_t nr, std::size_t c, const T* m,
                           double* sdy, double* sdyx)
{
    double a = 0, b = 0;
    for (std::size_t r = 0; r < nr; ++r) {
        const T d = dy[r * C + c];
        a += d;
        b += static_cast<double>(d) * static_cast<double>(x[r * C + c] - m[c]);
    }
    sdy[c] += a;
    sdyx[c] += b;
}


/// y = (x - m) * a + b over rows [r0, r1) of a (rows, C) matrix. Channels go in blocks of NV
/// vectors whose coefficients stay in registers across the rows (one load per data vector, not
/// four); stores stream when asked and every row is aligned.
template <class T, int NV>
void cl_block_affine(const T* x, std::size_t C, std::size_t r0, std::size_t r1, std::size_t c, const T* m, const T* a,
                     const T* b, T* y, bool stream)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    V vm[NV], va[NV], vb[NV];
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
        vm[k] = V::load_aligned(m + c + k * L);
        va[k] = V::load_aligned(a + c + k * L);
        vb[k] = V::load_aligned(b + c + k * L);
    }
    for (std::size_t r = r0; r < r1; ++r) {
        const T* px = x + r * C + c;
        T* py = y + r * C + c;
#pragma GCC unroll 8
        for (int k = 0; k < NV; ++k)
            store(py + k * L, xsimd::fma(V::load_unaligned(px + k * L) - vm[k], va[k], vb[k]), stream);
    }
}

template <class T>
void cl_rows_affine(const T* x, std::size_t C, std::size_t r0, std::size_t r1, const T* m, const T* a, const T* b, T* y,
                    bool stream)
{
    constexpr std::size_t L = vec<T>::size;
    stream = stream && C % L == 0 && is_aligned(y);
    std::size_t c = 0;
    if (C * sizeof(T) > wide_row_bytes) {
        for (std::size_t r = r0; r < r1; ++r)
            for (c = 0; c + 4 * L <= C; c += 4 * L)
                cl_block_affine<T, 4>(x, C, r, r + 1, c, m, a, b, y, stream);
    } else {
        for (; c + 4 * L <= C; c += 4 * L)
            cl_block_affine<T, 4>(x, C, r0, r1, c, m, a, b, y, stream);
    }
    for (; c + L <= C; c += L)
        cl_block_affine<T, 1>(x, C, r0, r1, c, m, a, b, y, stream);
    if (c < C)
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t j = c; j < C; ++j)
                y[r * C + j] = std::fma(x[r * C + j] - m[j], a[j], b[j]);
}

template <class T, int NV>
void cl_block_dx(const T* x, const T* dy, std::size_t C, std::size_t r0, std::size_t r1, std::size_t c, const T* m,
                 const T* kdy, const T* kx, const T* k0, T* dx, bool accumulate, bool stream)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    V vm[NV], vdy[NV], vx[NV], v0[NV];
#pragma GCC unroll 8
    for (int k = 0; k < NV; ++k) {
        vm[k] = V::load_aligned(m + c + k * L);
        vdy[k] = V::load_aligned(kdy + c + k * L);
        vx[k] = V::load_aligned(kx + c + k * L);
        v0[k] = V::load_aligned(k0 + c + k * L);
    }
    for (std::size_t r = r0; r < r1; ++r) {
        const std::size_t off = r * C + c;
#pragma GCC unroll 8
        for (int k = 0; k < NV; ++k) {
            const std::size_t o = off + k * L;
            const V g =
                xsimd::fma(vx[k], V::load_unaligned(x + o) - vm[k], xsimd::fma(vdy[k], V::load_unaligned(dy + o), v0[k]));
            if (accumulate)
                (V::load_unaligned(dx + o) + g).store_unaligned(dx + o);
            else
                store(dx + o, g, stream);
        }
    }
}

template <class T>
void cl_rows_dx(const T* x, const T* dy, std::size_t C, std::size_t r0, std::size_t r1, const T* m, const T* kdy,
                const T* kx, const T* k0, T* dx, bool accumulate, bool stream)
{
    constexpr std::size_t L = vec<T>::size;
    stream = stream && !accumulate && C % L == 0 && is_aligned(dx);
    std::size_t c = 0;
    if (C * sizeof(T) > wide_row_bytes) {
        // Wide rows: row by row (a channel block visiting rows 4 KB apart aliases in L1).
        for (std::size_t r = r0; r < r1; ++r)
            for (c = 0; c + 4 * L <= C; c += 4 * L)
                cl_block_dx<T, 4>(x, dy, C, r, r + 1, c, m, kdy, kx, k0, dx, accumulate, stream);
    } else {
        for (; c + 4 * L <= C; c += 4 * L)
            cl_block_dx<T, 4>(x, dy, C, r0, r1, c, m, kdy, kx, k0, dx, accumulate, stream);
    }
    for (; c + L <= C; c += L)
        cl_block_dx<T, 1>(x, dy, C, r0, r1, c, m, kdy, kx, k0, dx, accumulate, stream);
    if (c < C)
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t j = c; j < C; ++j) {
                const std::size_t k = r * C + j;
                const T v = std::fma(kx[j], x[k] - m[j], std::fma(kdy[j], dy[k], k0[j]));
                dx[k] = accumulate ? dx[k] + v : v;
            }
}

// ---- phases over a chunk or a range of rows ---------------------------------------------------

/// Statistics of rows [o0, o1) into (mean, m2)[C].
template <class T>
void chunk_moments(const Layout& l, const T* x, std::size_t o0, std::size_t o1, double* mean, double* m2)
{
    const std::size_t C = l.channels, I = l.inner;
    std::fill(mean, mean + C, 0.0);
    std::fill(m2, m2 + C, 0.0);
    constexpr std::size_t L = vec<T>::size;
    double n_prev = 0;
    if (I == 1) {
        const std::size_t tile_rows = tile_rows_for<T>(C);
        for (std::size_t r = o0; r < o1; r += tile_rows) {
            const std::size_t nr = std::min(tile_rows, o1 - r);
            const MergeWeights w(n_prev, static_cast<double>(nr));
            const T* xt = x + r * C;
            std::size_t c = 0;
            for (; c + 4 * L <= C; c += 4 * L)
                tile_moments<T, 4>(xt, C, nr, c, w, n_prev > 0, mean, m2);
            for (; c + L <= C; c += L)
                tile_moments<T, 1>(xt, C, nr, c, w, n_prev > 0, mean, m2);
            for (; c < C; ++c)
                tile_moments_scalar(xt, C, nr, c, w, mean, m2);
            n_prev += static_cast<double>(nr);
        }
        return;
    }
    if (I <= run_segment) {
        const std::size_t g = runs_per_tile(I);
        for (std::size_t o = o0; o < o1; o += g) {
            const std::size_t nr = std::min(g, o1 - o);
            const MergeWeights w(n_prev, static_cast<double>(nr * I));
            for (std::size_t c = 0; c < C; ++c) {
                double mt, m2t;
                run_moments(x + (o * C + c) * I, I, nr, C * I, mt, m2t);
                chan_merge(mean[c], m2[c], w, mt, m2t);
            }
            n_prev += static_cast<double>(nr * I);
        }
        return;
    }
    // Long runs: segment by segment along each run, so a row is read in memory order (visiting
    // one segment of every channel first jumped I elements per step and tripled the pass's time
    // on 32x64x56x56). The merge order per channel is the same either way.
    for (std::size_t o = o0; o < o1; ++o) {
        for (std::size_t c = 0; c < C; ++c) {
            double n_c = n_prev;
            for (std::size_t s = 0; s < I; s += run_segment) {
                const std::size_t n = std::min(run_segment, I - s);
                double mt, m2t;
                run_moments(x + (o * C + c) * I + s, n, 1, 0, mt, m2t);
                chan_merge(mean[c], m2[c], MergeWeights(n_c, static_cast<double>(n)), mt, m2t);
                n_c += static_cast<double>(n);
            }
        }
        n_prev += static_cast<double>(I);
    }
}

template <class T>
void chunk_grad_sums(const Layout& l, const T* x, const T* dy, const T* m, std::size_t o0, std::size_t o1, double* sdy,
                     double* sdyx)
{
    const std::size_t C = l.channels, I = l.inner;
    std::fill(sdy, sdy + C, 0.0);
    std::fill(sdyx, sdyx + C, 0.0);
    constexpr std::size_t L = vec<T>::size;
    if (I == 1) {
        const std::size_t tile_rows = tile_rows_for<T>(C);
        for (std::size_t r = o0; r < o1; r += tile_rows) {
            const std::size_t nr = std::min(tile_rows, o1 - r);
            const T* xt = x + r * C;
            const T* dt = dy + r * C;
            std::size_t c = 0;
            for (; c + 4 * L <= C; c += 4 * L)
                tile_grad_sums<T, 4>(xt, dt, C, nr, c, m, sdy, sdyx);
            for (; c + L <= C; c += L)
                tile_grad_sums<T, 1>(xt, dt, C, nr, c, m, sdy, sdyx);
            for (; c < C; ++c)
                tile_grad_sums_scalar(xt, dt, C, nr, c, m, sdy, sdyx);
        }
        return;
    }
    // The same tiles as chunk_moments.
    const std::size_t g = runs_per_tile(I);
    for (std::size_t o = o0; o < o1; o += g) {
        const std::size_t nr = std::min(g, o1 - o);
        for (std::size_t c = 0; c < C; ++c) {
            const std::size_t off = (o * C + c) * I;
            run_grad_sums(x + off, dy + off, I, nr, C * I, m[c], sdy[c], sdyx[c]);
        }
    }
}

/// Rows are visited in blocks of about this many elements, last block first when reversing, so
/// a pass that follows a reduction starts on the data the reduction touched last (still cached).
constexpr std::size_t block_elements = 1 << 13;

template <class F>
void for_row_blocks(const Layout& l, std::size_t o0, std::size_t o1, bool reverse, F&& f)
{
    const std::size_t row = l.channels * l.inner;
    const std::size_t br = std::max<std::size_t>(1, block_elements / std::max<std::size_t>(row, 1));
    const std::size_t nb = (o1 - o0 + br - 1) / br;
    for (std::size_t k = 0; k < nb; ++k) {
        const std::size_t b = reverse ? nb - 1 - k : k;
        const std::size_t s = o0 + b * br, e = std::min(o1, s + br);
        f(s, e);
    }
}

template <class T>
void rows_affine(const Layout& l, const T* x, const T* m, const T* a, const T* b, T* y, std::size_t o0, std::size_t o1,
                 bool reverse)
{
    const std::size_t C = l.channels, I = l.inner, row = C * I;
    const bool stream = l.size() * sizeof(T) >= (I > 1 ? stream_min_bytes_cf_forward : stream_min_bytes);
    for_row_blocks(l, o0, o1, reverse, [&](std::size_t s, std::size_t e) {
        if (I == 1)
            cl_rows_affine(x, C, s, e, m, a, b, y, stream);
        else if (I >= vec<T>::size)
            for (std::size_t o = s; o < e; ++o)
                cf_row_affine(x + o * row, C, I, m, a, b, y + o * row, stream);
        else
            for (std::size_t o = s; o < e; ++o)
                cf_row_affine_short(x + o * row, C, I, m, a, b, y + o * row);
    });
    if (stream)
        stream_fence();
}

template <class T>
void rows_dx(const Layout& l, const T* x, const T* dy, const T* m, const T* kdy, const T* kx, const T* k0, T* dx,
             bool accumulate, std::size_t o0, std::size_t o1, bool reverse)
{
    const std::size_t C = l.channels, I = l.inner, row = C * I;
    const bool stream = !accumulate && l.size() * sizeof(T) >= stream_min_bytes;
    for_row_blocks(l, o0, o1, reverse, [&](std::size_t s, std::size_t e) {
        if (I == 1)
            cl_rows_dx(x, dy, C, s, e, m, kdy, kx, k0, dx, accumulate, stream);
        else if (I >= vec<T>::size)
            for (std::size_t o = s; o < e; ++o)
                cf_row_dx(x + o * row, dy + o * row, C, I, m, kdy, kx, k0, dx + o * row, accumulate, stream);
        else
            for (std::size_t o = s; o < e; ++o)
                cf_row_dx_short(x + o * row, dy + o * row, C, I, m, kdy, kx, k0, dx + o * row, accumulate);
    });
    if (stream)
        stream_fence();
}

/// Note [Channel-major backward]: a channel-first layout with long runs and few rows holds each
/// channel in at most 1 MB (8x64x112x112: 8 runs of 49 KB, x and dy 800 KB). When x and dy
/// together exceed this machine's 32 MB L3, the backward takes one channel at a time - its sums
/// over all rows, then its dx, last run first (the first runs read are the first evicted) - so the
/// second read of x and dy comes from the core's cache instead of memory. Runs alternated within
/// one process at 2 threads: 8x64x12544 3405 -> 2606 us, 16x128x4096 5122 -> 3806, 32x64x3136
/// (the 32x64x56x56) unchanged (2318-3603 against 2459-3479); below 16 MB, where x and dy
/// stay in L3 between the passes, it was slower (16x64x2048: 504 -> 644), so those keep the chunked
/// passes. A channel's sums are in the same order whoever computes them, so the result does not
/// depend on the thread count; whether this path is taken depends on the layout only.
constexpr std::size_t channel_major_min_run_bytes = 4096;
constexpr std::size_t channel_major_max_channel_bytes = std::size_t(1) << 20;
constexpr std::size_t channel_major_min_bytes = std::size_t(16) << 20;

template <class T>
bool channel_major(const Layout& l)
{
    const std::size_t run = l.inner * sizeof(T);
    return l.inner > 1 && run >= channel_major_min_run_bytes && l.channels > 1 &&
           2 * l.outer * run <= channel_major_max_channel_bytes && l.size() * sizeof(T) >= channel_major_min_bytes;
}

/// dx over one run of n elements of one channel: kx (x - m) + kdy dy + k0, streamed when the run
/// starts aligned. No scalar head is peeled off for alignment: without hardware FMA xsimd's fma
/// rounds twice where std::fma rounds once, so a peel would make an element's bits depend on
/// whether the output is streamed (the scalar tail is the same in both cases).
template <class T>
void run_dx(const T* x, const T* dy, std::size_t n, T m, T kdy, T kx, T k0, T* dx, bool accumulate, bool stream)
{
    using V = vec<T>;
    constexpr std::size_t L = V::size;
    std::size_t i = 0;
    auto one = [&](std::size_t k) {
        const T v = std::fma(kx, x[k] - m, std::fma(kdy, dy[k], k0));
        dx[k] = accumulate ? dx[k] + v : v;
    };
    stream = stream && is_aligned(dx);
    const V vm(m), vdy(kdy), vx(kx), v0(k0);
    for (; i + L <= n; i += L) {
        const V g = xsimd::fma(vx, V::load_unaligned(x + i) - vm, xsimd::fma(vdy, V::load_unaligned(dy + i), v0));
        if (accumulate)
            (V::load_unaligned(dx + i) + g).store_unaligned(dx + i);
        else
            store(dx + i, g, stream);
    }
    for (; i < n; ++i)
        one(i);
}

template <class T>
void ensure(Workspace<T>& ws, std::size_t nchunks, std::size_t C)
{
    if (ws.part_a.size() < nchunks * C) {
        ws.part_a.resize(nchunks * C);
        ws.part_b.resize(nchunks * C);
    }
    if (ws.coef_m.size() < C) {
        ws.coef_m.resize(C);
        ws.coef_a.resize(C);
        ws.coef_b.resize(C);
        ws.coef_c.resize(C);
        ws.chan_a.resize(C);
        ws.chan_b.resize(C);
        ws.chan_c.resize(C);
        ws.chan_d.resize(C);
    }
}

} // namespace

/// Renorm's (r, d) for one channel from the batch mean and variance.
inline void renorm_correction(const Renorm& rn, std::size_t c, double mean, double var, double eps, double& r,
                              double& d)
{
    const double s = std::max(rn.stddev[c], std::sqrt(eps));
    r = std::sqrt(var + eps) / s;
    d = (mean - rn.mean[c]) / s;
    r = std::min(std::max(r, rn.rmin), rn.rmax);
    d = std::min(std::max(d, -rn.dmax), rn.dmax);
}

namespace {

/// The forward's per-channel results and coefficients for channels [c0, c1), in loops without
/// branches so they vectorize (1/sqrt in xsimd): with 1024 channels a scalar loop cost as much as
/// the statistics pass itself.
template <class T>
void channel_coefficients(std::size_t c0, std::size_t c1, const double* mean, const double* m2, double inv_n,
                          double epsilon, const Renorm* renorm, const T* gamma, const T* beta, const ChannelStats& out,
                          Workspace<T>& ws)
{
    using D = vec<double>;
    constexpr std::size_t L = D::size;
    double* var = out.variance;
    double* inv = out.inv_std;
    for (std::size_t c = c0; c < c1; ++c) {
        var[c] = std::max(0.0, m2[c] * inv_n);
        out.mean[c] = mean[c];
    }
    std::size_t c = c0;
    for (; c + L <= c1; c += L)
        (D(1.0) / xsimd::sqrt(D::load_unaligned(var + c) + D(epsilon))).store_unaligned(inv + c);
    for (; c < c1; ++c)
        inv[c] = 1.0 / std::sqrt(var[c] + epsilon);
    // gamma_eff = gamma r inv, beta_eff = beta + gamma d (renorm), in the T the passes use.
    double* ga = ws.chan_c.data();
    double* be = ws.chan_d.data();
    for (c = c0; c < c1; ++c) {
        ga[c] = gamma ? static_cast<double>(gamma[c]) : 1.0;
        be[c] = beta ? static_cast<double>(beta[c]) : 0.0;
    }
    if (renorm)
        for (c = c0; c < c1; ++c) {
            double r, d;
            renorm_correction(*renorm, c, mean[c], var[c], epsilon, r, d);
            if (out.r)
                out.r[c] = r;
            if (out.d)
                out.d[c] = d;
            be[c] += ga[c] * d;
            ga[c] *= r;
        }
    else
        for (c = c0; c < c1; ++c) {
            if (out.r)
                out.r[c] = 1.0;
            if (out.d)
                out.d[c] = 0.0;
        }
    T* cm = ws.coef_m.data();
    T* ca = ws.coef_a.data();
    T* cb = ws.coef_b.data();
    for (c = c0; c < c1; ++c) {
        // The mean's rounding to T goes into the offset (Note [Batch norm numerics]).
        cm[c] = static_cast<T>(mean[c]);
        const double a = ga[c] * inv[c];
        ca[c] = static_cast<T>(a);
        cb[c] = static_cast<T>(be[c] - (mean[c] - static_cast<double>(cm[c])) * a);
    }
}

} // namespace

/// (mean, m2) of this rank's n elements per channel become the global batch's; returns the global
/// count (Note [Synchronized batch norm]). Called by one thread.
inline double merge_global_moments(const Collective& sync, std::size_t C, double n, double* mean, double* m2,
                                   std::vector<double>& buf)
{
    buf.resize(C + 1);
    for (std::size_t c = 0; c < C; ++c)
        buf[c] = n * mean[c];
    buf[C] = n;
    sync.allreduce_sum(buf.data(), C + 1);
    const double total = buf[C];
    const double inv = total > 0 ? 1.0 / total : 0.0;
    for (std::size_t c = 0; c < C; ++c) {
        const double g = buf[c] * inv;
        const double delta = mean[c] - g;
        buf[c] = m2[c] + n * delta * delta;
        mean[c] = g;
    }
    sync.allreduce_sum(buf.data(), C);
    std::copy(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(C), m2);
    return total;
}

template <class T>
void forward_training(const Layout& l, const T* x, const T* gamma, const T* beta, double epsilon,
                      const Renorm* renorm, T* y, const ChannelStats& out, Workspace<T>& ws, const Collective* sync)
{
    const std::size_t C = l.channels;
    const std::size_t nchunks = chunk_count(l);
    ensure(ws, nchunks, C);
    const int nt = thread_count(l, nchunks);
    const double per_row = static_cast<double>(l.inner);
    double n_global = 0;
    run_threads(nt, [&](int t, int n_threads) {
        const std::size_t ch0 = nchunks * t / n_threads, ch1 = nchunks * (t + 1) / n_threads;
        for (std::size_t ch = ch0; ch < ch1; ++ch)
            chunk_moments(l, x, chunk_begin(l, nchunks, ch), chunk_begin(l, nchunks, ch + 1), ws.part_a.data() + ch * C,
                          ws.part_b.data() + ch * C);
        barrier();
        // Each channel merges its chunks in chunk order, whoever does it; chunk 0 starts the sum.
        const std::size_t c0 = C * t / n_threads, c1 = C * (t + 1) / n_threads;
        double* mean = ws.chan_a.data();
        double* m2 = ws.chan_b.data();
        std::copy(ws.part_a.begin() + c0, ws.part_a.begin() + c1, mean + c0);
        std::copy(ws.part_b.begin() + c0, ws.part_b.begin() + c1, m2 + c0);
        double n = static_cast<double>(chunk_begin(l, nchunks, 1)) * per_row;
        for (std::size_t ch = 1; ch < nchunks; ++ch) {
            const double nb =
                static_cast<double>(chunk_begin(l, nchunks, ch + 1) - chunk_begin(l, nchunks, ch)) * per_row;
            const MergeWeights w(n, nb);
            const double* pa = ws.part_a.data() + ch * C;
            const double* pb = ws.part_b.data() + ch * C;
            for (std::size_t c = c0; c < c1; ++c)
                chan_merge(mean[c], m2[c], w, pa[c], pb[c]);
            n += nb;
        }
        if (sync) { // MPI from the team's first thread, the one that called (MPI_THREAD_FUNNELED)
            barrier();
            if (t == 0)
                n_global = merge_global_moments(*sync, C, n, mean, m2, ws.sync);
            barrier();
            n = n_global;
        }
        const double inv_n = n > 0 ? 1.0 / n : 0.0;
        channel_coefficients(c0, c1, mean, m2, inv_n, epsilon, renorm, gamma, beta, out, ws);
        if (!y)
            return;
        barrier();
        const std::size_t o0 = chunk_begin(l, nchunks, ch0), o1 = chunk_begin(l, nchunks, ch1);
        rows_affine(l, x, ws.coef_m.data(), ws.coef_a.data(), ws.coef_b.data(), y, o0, o1, true);
    });
}

template <class T>
void forward_inference(const Layout& l, const T* x, const T* gamma, const T* beta, const double* mean,
                       const double* inv_std, T* y, Workspace<T>& ws)
{
    const std::size_t C = l.channels;
    ensure(ws, 1, C);
    for (std::size_t c = 0; c < C; ++c) {
        const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
        const double a = g * inv_std[c];
        ws.coef_m[c] = static_cast<T>(mean[c]);
        ws.coef_a[c] = static_cast<T>(a);
        // The mean's rounding to T goes into the offset (Note [Batch norm numerics]).
        ws.coef_b[c] = static_cast<T>((beta ? static_cast<double>(beta[c]) : 0.0) -
                                      (mean[c] - static_cast<double>(ws.coef_m[c])) * a);
    }
    const T* m = ws.coef_m.data();
    const T* a = ws.coef_a.data();
    const T* b = ws.coef_b.data();
    parallel_for(
        l.outer, [&](std::size_t o0, std::size_t o1) { rows_affine(l, x, m, a, b, y, o0, o1, false); },
        C * l.inner);
}

template <class T>
void backward(const Layout& l, const T* x, const T* dy, const T* gamma, const double* mean, const double* inv_std,
              const double* r, const double* d, bool training, T* dx, bool accumulate, T* dgamma, T* dbeta,
              Workspace<T>& ws, const Collective* sync)
{
    const std::size_t C = l.channels;
    if (!training)
        sync = nullptr;
    // A synchronized backward joins the allreduce even when this rank needs nothing.
    const bool need_sums = dgamma || dbeta || (training && dx) || sync;
    if (!need_sums && !dx)
        return;
    const std::size_t nchunks = chunk_count(l);
    ensure(ws, nchunks, C);
    for (std::size_t c = 0; c < C; ++c)
        ws.coef_m[c] = static_cast<T>(mean[c]);
    const int nt = thread_count(l, nchunks);
    double n = static_cast<double>(l.outer * l.inner);
    if (training && dx && !sync && channel_major<T>(l)) {
        // Note [Channel-major backward].
        const std::size_t N = l.outer, I = l.inner, row = C * I;
        const bool stream = !accumulate;
        const int team = std::min<int>(thread_count(l, C), static_cast<int>(C));
        run_threads(team, [&](int t, int n_threads) {
            for (std::size_t c = C * t / n_threads; c < C * (t + 1) / n_threads; ++c) {
                const T m = ws.coef_m[c];
                double sdy = 0, sdyx = 0;
                for (std::size_t o = 0; o < N; ++o)
                    run_grad_sums(x + o * row + c * I, dy + o * row + c * I, I, 1, 0, m, sdy, sdyx);
                // As in the chunked path: the runs summed dy (x - m) with m the mean rounded to T.
                sdyx -= (mean[c] - static_cast<double>(m)) * sdy;
                const double inv = inv_std[c];
                if (dgamma)
                    dgamma[c] += static_cast<T>((r ? r[c] : 1.0) * inv * sdyx + (d ? d[c] * sdy : 0.0));
                if (dbeta)
                    dbeta[c] += static_cast<T>(sdy);
                const double a = (gamma ? static_cast<double>(gamma[c]) : 1.0) * (r ? r[c] : 1.0) * inv;
                const double kx = -a * inv * inv * sdyx / n;
                const T k0 = static_cast<T>(-a * sdy / n - kx * (mean[c] - static_cast<double>(m)));
                for (std::size_t o = N; o-- > 0;)
                    run_dx(x + o * row + c * I, dy + o * row + c * I, I, m, static_cast<T>(a), static_cast<T>(kx), k0,
                           dx + o * row + c * I, accumulate, stream);
            }
            if (stream)
                stream_fence(); // each thread orders its own streaming stores
        });
        return;
    }
    run_threads(nt, [&](int t, int n_threads) {
        const std::size_t ch0 = nchunks * t / n_threads, ch1 = nchunks * (t + 1) / n_threads;
        const std::size_t c0 = C * t / n_threads, c1 = C * (t + 1) / n_threads;
        double* sdy = ws.chan_a.data();
        double* sdyx = ws.chan_b.data();
        std::fill(sdy + c0, sdy + c1, 0.0);
        std::fill(sdyx + c0, sdyx + c1, 0.0);
        if (need_sums) {
            for (std::size_t ch = ch0; ch < ch1; ++ch)
                chunk_grad_sums(l, x, dy, ws.coef_m.data(), chunk_begin(l, nchunks, ch),
                                chunk_begin(l, nchunks, ch + 1), ws.part_a.data() + ch * C, ws.part_b.data() + ch * C);
            barrier();
            for (std::size_t ch = 0; ch < nchunks; ++ch) {
                const double* pa = ws.part_a.data() + ch * C;
                const double* pb = ws.part_b.data() + ch * C;
                for (std::size_t c = c0; c < c1; ++c) {
                    sdy[c] += pa[c];
                    sdyx[c] += pb[c];
                }
            }
            // The tiles summed dy (x - mean rounded to T): sum(dy (x - mean)) is that minus
            // (mean - rounded mean) sum(dy).
            for (std::size_t c = c0; c < c1; ++c)
                sdyx[c] -= (mean[c] - static_cast<double>(ws.coef_m[c])) * sdy[c];
        }
        // dgamma = sum(dy * (xhat r + d)) with xhat = (x - mean) inv; dbeta = sum(dy).
        if (dgamma)
            for (std::size_t c = c0; c < c1; ++c)
                dgamma[c] += static_cast<T>((r ? r[c] : 1.0) * inv_std[c] * sdyx[c] + (d ? d[c] * sdy[c] : 0.0));
        if (dbeta)
            for (std::size_t c = c0; c < c1; ++c)
                dbeta[c] += static_cast<T>(sdy[c]);
        if (sync) { // dx needs the global sums and count (Note [Synchronized batch norm])
            barrier();
            if (t == 0) {
                std::vector<double>& buf = ws.sync;
                buf.resize(2 * C + 1);
                std::copy(sdy, sdy + C, buf.begin());
                std::copy(sdyx, sdyx + C, buf.begin() + static_cast<std::ptrdiff_t>(C));
                buf[2 * C] = n;
                sync->allreduce_sum(buf.data(), 2 * C + 1);
                std::copy(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(C), sdy);
                std::copy(buf.begin() + static_cast<std::ptrdiff_t>(C), buf.begin() + static_cast<std::ptrdiff_t>(2 * C),
                          sdyx);
            }
            barrier();
            n = ws.sync[2 * C];
        }
        const double inv_n = n > 0 ? 1.0 / n : 0.0;
        // Training: dx = a (dy - mean(dy) - xhat mean(dy xhat)) = a dy - a inv^2 mean(dy xc) xc - a mean(dy),
        // a = gamma r inv. Inference: dx = a dy.
        T* ca = ws.coef_a.data();
        T* cb = ws.coef_b.data();
        T* cc = ws.coef_c.data();
        const double k = training ? inv_n : 0.0;
        for (std::size_t c = c0; c < c1; ++c) {
            const double inv = inv_std[c];
            const double a = (gamma ? static_cast<double>(gamma[c]) : 1.0) * (r ? r[c] : 1.0) * inv;
            const double kx = -a * inv * inv * sdyx[c] * k;
            ca[c] = static_cast<T>(a);
            cb[c] = static_cast<T>(kx);
            // The passes compute kx (x - rounded mean): the rounding goes into the constant.
            cc[c] = static_cast<T>(-a * sdy[c] * k - kx * (mean[c] - static_cast<double>(ws.coef_m[c])));
        }
        if (!dx)
            return;
        barrier();
        const std::size_t o0 = chunk_begin(l, nchunks, ch0), o1 = chunk_begin(l, nchunks, ch1);
        rows_dx(l, x, dy, ws.coef_m.data(), ws.coef_a.data(), ws.coef_b.data(), ws.coef_c.data(), dx, accumulate, o0,
                o1, need_sums);
    });
}

// ---- masked statistics: Keras 3's formulas, plain loops (a rare path) ---------------------------

namespace {

/// f(o, c, i, flat) over rows [o0, o1).
template <class F>
void for_rows(const Layout& l, std::size_t o0, std::size_t o1, F&& f)
{
    for (std::size_t o = o0; o < o1; ++o)
        for (std::size_t c = 0; c < l.channels; ++c) {
            const std::size_t base = (o * l.channels + c) * l.inner;
            for (std::size_t i = 0; i < l.inner; ++i)
                f(c, base + i);
        }
}

/// Per-chunk double sums of two per-element quantities, merged in chunk order into a[C], b[C].
template <class T, class F>
void masked_sums(const Layout& l, Workspace<T>& ws, double* a, double* b, F&& f)
{
    const std::size_t C = l.channels;
    const std::size_t nchunks = chunk_count(l);
    ensure(ws, nchunks, C);
    const int nt = thread_count(l, nchunks);
    run_threads(nt, [&](int t, int n_threads) {
        for (std::size_t ch = nchunks * t / n_threads; ch < nchunks * (t + 1) / n_threads; ++ch) {
            double* pa = ws.part_a.data() + ch * C;
            double* pb = ws.part_b.data() + ch * C;
            std::fill(pa, pa + C, 0.0);
            std::fill(pb, pb + C, 0.0);
            for_rows(l, chunk_begin(l, nchunks, ch), chunk_begin(l, nchunks, ch + 1),
                     [&](std::size_t c, std::size_t k) { f(c, k, pa[c], pb[c]); });
        }
    });
    for (std::size_t c = 0; c < C; ++c) {
        a[c] = 0;
        b[c] = 0;
        for (std::size_t ch = 0; ch < nchunks; ++ch) {
            a[c] += ws.part_a[ch * C + c];
            b[c] += ws.part_b[ch * C + c];
        }
    }
}

/// a[C] and b[C] summed over ranks in one call.
inline void allreduce_pair(const Collective& sync, std::size_t C, double* a, double* b, std::vector<double>& buf)
{
    buf.resize(2 * C);
    std::copy(a, a + C, buf.begin());
    std::copy(b, b + C, buf.begin() + static_cast<std::ptrdiff_t>(C));
    sync.allreduce_sum(buf.data(), 2 * C);
    std::copy(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(C), a);
    std::copy(buf.begin() + static_cast<std::ptrdiff_t>(C), buf.end(), b);
}

} // namespace

template <class T>
void masked_moments(const Layout& l, const T* x, const T* w, std::size_t wdiv, double* mean, double* variance,
                    double* q, double* denom, Workspace<T>& ws, const Collective* sync)
{
    const std::size_t C = l.channels;
    // Pass 1: sum(w x) and sum(w).
    masked_sums(l, ws, mean, denom, [&](std::size_t, std::size_t k, double& a, double& b) {
        const double wk = w[k / wdiv];
        a += wk * x[k];
        b += wk;
    });
    if (sync)
        allreduce_pair(*sync, C, mean, denom, ws.sync);
    for (std::size_t c = 0; c < C; ++c) {
        denom[c] += mask_epsilon;
        mean[c] /= denom[c];
    }
    // Pass 2: sum(w (w x - mean)^2) and sum(w (w x - mean)); Keras subtracts the mean from the
    // weighted input, which matters only for weights other than 0 and 1.
    masked_sums(l, ws, variance, q, [&](std::size_t c, std::size_t k, double& a, double& b) {
        const double wk = w[k / wdiv];
        const double e = wk * x[k] - mean[c];
        a += wk * e * e;
        b += wk * e;
    });
    if (sync)
        allreduce_pair(*sync, C, variance, q, ws.sync);
    for (std::size_t c = 0; c < C; ++c)
        variance[c] = std::max(0.0, variance[c] / denom[c]);
}

template <class T>
void masked_backward(const Layout& l, const T* x, const T* dy, const T* w, std::size_t wdiv, const T* gamma,
                     const double* mean, const double* inv_std, const double* q, const double* denom,
                     const double* r, const double* d, T* dx, bool accumulate, T* dgamma, T* dbeta,
                     Workspace<T>& ws, const Collective* sync)
{
    const std::size_t C = l.channels;
    ensure(ws, 1, C);
    double* sdy = ws.chan_a.data();
    double* sdyx = ws.chan_b.data();
    masked_sums(l, ws, sdy, sdyx, [&](std::size_t c, std::size_t k, double& a, double& b) {
        a += dy[k];
        b += static_cast<double>(dy[k]) * (static_cast<double>(x[k]) - mean[c]);
    });
    // dgamma and dbeta from this rank's sums; dx from the global ones (Note [Synchronized batch norm]).
    for (std::size_t c = 0; c < C; ++c) {
        const double rc = r ? r[c] : 1.0, dc = d ? d[c] : 0.0;
        if (dgamma)
            dgamma[c] += static_cast<T>(rc * inv_std[c] * sdyx[c] + dc * sdy[c]);
        if (dbeta)
            dbeta[c] += static_cast<T>(sdy[c]);
    }
    if (sync)
        allreduce_pair(*sync, C, sdy, sdyx, ws.sync);
    // With g = dy gamma r, var = sum(w (w x - m)^2) / W and m = sum(w x) / W:
    //   dL/dvar = -inv^3 / 2 * sum(g (x - m)),   dL/dm = -inv sum(g) + dL/dvar * (-2 q / W),
    //   dx_i = g_i inv + dL/dvar * 2 w_i^2 (w_i x_i - m) / W + dL/dm * w_i / W.
    double* k_var = ws.chan_c.data();
    double* k_m = ws.chan_d.data();
    for (std::size_t c = 0; c < C; ++c) {
        const double rc = r ? r[c] : 1.0, dc = d ? d[c] : 0.0;
        const double inv = inv_std[c];
        (void)dc;
        const double geff = (gamma ? static_cast<double>(gamma[c]) : 1.0) * rc;
        const double dvar = -0.5 * inv * inv * inv * geff * sdyx[c];
        const double dm = -inv * geff * sdy[c] + dvar * (-2.0 * q[c] / denom[c]);
        k_var[c] = 2.0 * dvar / denom[c];
        k_m[c] = dm / denom[c];
        ws.chan_a[c] = geff * inv; // sdy is no longer needed
    }
    if (!dx)
        return;
    const double* k_dy = ws.chan_a.data();
    parallel_for(
        l.outer,
        [&](std::size_t o0, std::size_t o1) {
            for_rows(l, o0, o1, [&](std::size_t c, std::size_t k) {
                const double wk = w[k / wdiv];
                const double v = k_dy[c] * dy[k] + k_var[c] * wk * wk * (wk * x[k] - mean[c]) + k_m[c] * wk;
                if (accumulate)
                    dx[k] += static_cast<T>(v);
                else
                    dx[k] = static_cast<T>(v);
            });
        },
        l.channels * l.inner);
}

#define XTAPE_BN_KERNELS(T)                                                                                        \
    template void forward_training<T>(const Layout&, const T*, const T*, const T*, double, const Renorm*, T*,       \
                                      const ChannelStats&, Workspace<T>&, const Collective*);                      \
    template void forward_inference<T>(const Layout&, const T*, const T*, const T*, const double*, const double*,   \
                                       T*, Workspace<T>&);                                                         \
    template void backward<T>(const Layout&, const T*, const T*, const T*, const double*, const double*,            \
                              const double*, const double*, bool, T*, bool, T*, T*, Workspace<T>&,                 \
                              const Collective*);                                                                  \
    template void masked_moments<T>(const Layout&, const T*, const T*, std::size_t, double*, double*, double*,      \
                                    double*, Workspace<T>&, const Collective*);                                    \
    template void masked_backward<T>(const Layout&, const T*, const T*, const T*, std::size_t, const T*,            \
                                     const double*, const double*, const double*, const double*, const double*,    \
                                     const double*, T*, bool, T*, T*, Workspace<T>&, const Collective*);
XTAPE_BN_KERNELS(float)
XTAPE_BN_KERNELS(double)
#undef XTAPE_BN_KERNELS

} // namespace bn

// ---- the differentiable op ----------------------------------------------------------------------
namespace {

std::string axes_str(const std::vector<std::size_t>& axes)
{
    return shape_str(axes);
}

} // namespace

namespace bn {
/// Where this process's batch lies in the global batch of a synchronized op with ghost batches
/// (Note [Synchronized ghost batches]); ranks 1: the batch is the whole batch.
struct GhostSplit {
    std::size_t offset = 0, total = 0, ranks = 1;
    std::size_t unsynchronized_ranks = 1; ///< several processes, synchronized=False: for messages only
    bool operator==(const GhostSplit& o) const
    {
        return offset == o.offset && total == o.total && ranks == o.ranks &&
               unsynchronized_ranks == o.unsynchronized_ranks;
    }
};

/// How x is laid out for the kernels (Note [Batch norm layouts]).
struct Plan {
    std::size_t channels = 1;
    std::size_t groups = 1; ///< ghost batches, each its own problem
    bool direct = true;     ///< the kernels read x in place
    Layout layout;          ///< of all the rows (rows, channels) or, direct, of x
    shape_t view;           ///< gathered path: x viewed with these dims ...
    std::vector<std::size_t> perm; ///< ... and permuted so (samples, rows, channels) is row-major
    /// Ghost batches: the gathered samples in ghost-batch order (sample j of this process is
    /// sample offset + j of the global batch, in ghost batch (offset + j) mod groups; tf.keras's
    /// reshape to (virtual_batch_size, groups, ...) puts it there), and each group's first row.
    bool ghost = false;
    bool identity = false; ///< perm is the identity: only the samples move
    std::vector<std::size_t> order, group_rows;
    std::size_t sample_elems = 0; ///< elements of one sample
    Layout group(std::size_t g) const { return ghost ? Layout{ group_rows[g + 1] - group_rows[g], channels, 1 } : layout; }
    std::size_t group_offset(std::size_t g) const { return ghost ? group_rows[g] * channels : 0; }
};
} // namespace bn

namespace {
using bn::Plan;

std::vector<std::size_t> normalized_axes(const shape_t& sx, const std::vector<int>& axes)
{
    const long rank = static_cast<long>(sx.size());
    std::vector<long> resolved;
    for (int a : axes)
        resolved.push_back(a < 0 ? a + rank : a);
    std::string received = "(";
    for (std::size_t i = 0; i < resolved.size(); ++i)
        received += (i ? ", " : "") + std::to_string(resolved[i]);
    received += resolved.size() == 1 ? ",)" : ")";
    if (axes.empty())
        throw ValueError("BatchNormalization: `axis` must name at least one axis. Received: axis=()");
    for (long a : resolved)
        if (a < 0 || a >= rank)
            throw ValueError("Invalid value for `axis` argument. Expected 0 <= axis < inputs.rank (with inputs.rank=" +
                             std::to_string(rank) + "). Received: axis=" + received + " for input shape " +
                             shape_str(sx));
    std::vector<std::size_t> out(resolved.begin(), resolved.end());
    std::sort(out.begin(), out.end());
    if (std::adjacent_find(out.begin(), out.end()) != out.end())
        throw ValueError("Duplicate axis: " + received);
    return out;
}

using bn::GhostSplit;

Plan make_plan(const shape_t& sx, const std::vector<int>& axes_in, std::size_t vbs, const GhostSplit& split)
{
    const auto axes = normalized_axes(sx, axes_in);
    Plan p;
    for (auto a : axes)
        p.channels *= sx[a];
    std::size_t ghost = 1;
    if (vbs > 0) {
        if (axes.front() == 0)
            throw ValueError("When using `virtual_batch_size`, the batch dimension must be 0 and thus axis cannot "
                             "include 0. Received axis=" +
                             axes_str(axes));
        const std::size_t total = split.ranks > 1 ? split.total : sx[0];
        if (total % vbs != 0)
            throw ValueError("`virtual_batch_size` must divide the true batch size of the input tensor. Received: "
                             "virtual_batch_size=" +
                             std::to_string(vbs) + " for input shape " + shape_str(sx) +
                             (split.ranks > 1 ? " (this process's share of a global batch of " + std::to_string(total) +
                                                  " samples over " + std::to_string(split.ranks) +
                                                  " processes: BatchNormalization(synchronized=True) counts virtual "
                                                  "batches in the global batch)"
                              : split.unsynchronized_ranks > 1
                                ? " (this process's share of the batch, one of " +
                                      std::to_string(split.unsynchronized_ranks) +
                                      " processes: with synchronized=False each takes virtual batches of its own share)"
                                : std::string()));
        ghost = total / vbs;
    }
    const bool adjacent = axes.back() - axes.front() + 1 == axes.size();
    if (adjacent && ghost == 1) {
        p.layout.outer = std::accumulate(sx.begin(), sx.begin() + axes.front(), std::size_t(1), std::multiplies<>());
        p.layout.channels = p.channels;
        p.layout.inner = std::accumulate(sx.begin() + axes.back() + 1, sx.end(), std::size_t(1), std::multiplies<>());
        return p;
    }
    // x viewed as (samples, rows, channels): the other axes in order, then the normalized ones.
    p.direct = false;
    p.view = sx;
    std::vector<std::size_t> norm;
    std::size_t rows = 1, sample_rows = 1;
    for (std::size_t a = 0; a < sx.size(); ++a) {
        if (std::binary_search(axes.begin(), axes.end(), a)) {
            norm.push_back(a);
        } else {
            p.perm.push_back(a);
            rows *= sx[a];
            if (a > 0)
                sample_rows *= sx[a];
        }
    }
    p.perm.insert(p.perm.end(), norm.begin(), norm.end());
    p.layout = bn::Layout{ rows, p.channels, 1 };
    if (ghost > 1) {
        // Note [Synchronized ghost batches]: the samples, ghost batch by ghost batch.
        p.ghost = true;
        p.groups = ghost;
        p.identity = true;
        for (std::size_t k = 0; k < p.perm.size(); ++k)
            p.identity = p.identity && p.perm[k] == k;
        p.sample_elems = sample_rows * p.channels;
        const std::size_t n = sx[0];
        p.order.reserve(n);
        p.group_rows.assign(1, 0);
        for (std::size_t g = 0; g < ghost; ++g) {
            for (std::size_t j = (g + ghost - split.offset % ghost) % ghost; j < n; j += ghost)
                p.order.push_back(j);
            p.group_rows.push_back(p.order.size() * sample_rows);
        }
    }
    return p;
}

/// dst = src viewed with `dims` and transposed by `perm` (dst axis k is src axis perm[k]);
/// dst += ... when accumulating.
template <class T>
void permute(const T* src, const shape_t& dims, const std::vector<std::size_t>& perm, T* dst, bool accumulate)
{
    const std::size_t rank = dims.size();
    std::vector<std::size_t> stride(rank, 1);
    for (std::size_t a = rank; a-- > 1;)
        stride[a - 1] = stride[a] * dims[a];
    shape_t ddims(rank);
    std::vector<std::size_t> dstride(rank);
    for (std::size_t k = 0; k < rank; ++k) {
        ddims[k] = dims[perm[k]];
        dstride[k] = stride[perm[k]];
    }
    const std::size_t total = shape_size(dims);
    if (total == 0)
        return;
    const std::size_t last = ddims[rank - 1], ls = dstride[rank - 1];
    std::vector<std::size_t> idx(rank, 0);
    std::size_t off = 0;
    for (std::size_t f = 0; f < total; f += last) {
        if (accumulate)
            for (std::size_t i = 0; i < last; ++i)
                dst[f + i] += src[off + i * ls];
        else
            for (std::size_t i = 0; i < last; ++i)
                dst[f + i] = src[off + i * ls];
        for (std::size_t k = rank - 1; k-- > 0;) {
            if (++idx[k] < ddims[k]) {
                off += dstride[k];
                break;
            }
            off -= dstride[k] * (ddims[k] - 1);
            idx[k] = 0;
        }
    }
}

std::vector<std::size_t> inverse(const std::vector<std::size_t>& perm)
{
    std::vector<std::size_t> inv(perm.size());
    for (std::size_t k = 0; k < perm.size(); ++k)
        inv[perm[k]] = k;
    return inv;
}

shape_t permuted(const shape_t& dims, const std::vector<std::size_t>& perm)
{
    shape_t out(dims.size());
    for (std::size_t k = 0; k < perm.size(); ++k)
        out[k] = dims[perm[k]];
    return out;
}

/// The mask's weights into w, one per element of x.shape[:-1] (Keras 3 broadcasts
/// expand_dims(mask, -1) to x). Throws as Keras does for a mask of the wrong rank or shape.
template <class T>
void mask_weights(const shape_t& sx, const Tensor<T>& mask, std::vector<T>& w)
{
    const shape_t sm = mask.shape();
    if (sm.size() + 1 != sx.size())
        throw ValueError("The mask provided should be one dimension less than the inputs. Received: mask.shape=" +
                         shape_str(sm) + ", inputs.shape=" + shape_str(sx));
    for (std::size_t k = 0; k < sm.size(); ++k)
        if (sm[k] != 1 && sm[k] != sx[k])
            throw ShapeError("BatchNormalization: the mask of shape " + shape_str(sm) +
                             " does not broadcast to the inputs of shape " + shape_str(sx));
    const shape_t target(sx.begin(), sx.end() - 1);
    const auto b = xt::broadcast(mask.value(), target);
    w.resize(shape_size(target));
    std::copy(b.begin(), b.end(), w.begin());
}

template <class T>
void check_param(const Tensor<T>& p, const char* name, std::size_t channels, const shape_t& sx)
{
    if (p.defined() && p.size() != channels)
        throw ShapeError(std::string("batch_norm: ") + name + " has shape " + shape_str(p.shape()) +
                         " but the normalized axes of the input of shape " + shape_str(sx) + " hold " +
                         std::to_string(channels) + " channels");
}

template <class T>
using Aligned = typename bn::Workspace<T>::template aligned_vector<T>;

template <class T>
void resize_buffer(Aligned<T>& v, std::size_t n)
{
    if (v.size() < n)
        v.resize(n);
}

/// x's layout -> the kernels' layout of a gathered plan (dst holds x.size() values): permuted and,
/// with ghost batches, the samples put in ghost-batch order (through tmp unless only they move).
template <class T>
void gather(const Plan& p, const T* src, T* dst, std::size_t n, Aligned<T>& tmp)
{
    if (!p.ghost)
        return permute(src, p.view, p.perm, dst, false);
    if (!p.identity) {
        resize_buffer<T>(tmp, n);
        permute(src, p.view, p.perm, tmp.data(), false);
        src = tmp.data();
    }
    const std::size_t e = p.sample_elems;
    for (std::size_t s = 0; s < p.order.size(); ++s)
        std::copy(src + p.order[s] * e, src + (p.order[s] + 1) * e, dst + s * e);
}

/// The inverse of gather: dst (x's layout) = or += src (the kernels' layout).
template <class T>
void scatter(const Plan& p, const T* src, T* dst, bool accumulate, std::size_t n, Aligned<T>& tmp)
{
    if (!p.ghost)
        return permute(src, permuted(p.view, p.perm), inverse(p.perm), dst, accumulate);
    const std::size_t e = p.sample_elems;
    T* out = dst;
    if (!p.identity) {
        resize_buffer<T>(tmp, n);
        out = tmp.data();
    }
    const bool add = accumulate && p.identity;
    for (std::size_t s = 0; s < p.order.size(); ++s) {
        T* o = out + p.order[s] * e;
        const T* i = src + s * e;
        if (add)
            for (std::size_t k = 0; k < e; ++k)
                o[k] += i[k];
        else
            std::copy(i, i + e, o);
    }
    if (!p.identity)
        permute(tmp.data(), permuted(p.view, p.perm), inverse(p.perm), dst, accumulate);
}

/// Note [Synchronized ghost batches]: this process's offset in the global batch and its size,
/// from one allreduce of every rank's batch size (the shares lie in rank order).
inline GhostSplit ghost_split(const Collective& c, std::size_t n, std::vector<double>& buf)
{
    const auto R = static_cast<std::size_t>(c.size()), r = static_cast<std::size_t>(c.rank());
    buf.assign(R, 0.0);
    buf[r] = static_cast<double>(n);
    c.allreduce_sum(buf.data(), R);
    GhostSplit s;
    s.ranks = R;
    for (std::size_t k = 0; k < R; ++k) {
        s.total += static_cast<std::size_t>(buf[k]);
        if (k < r)
            s.offset += static_cast<std::size_t>(buf[k]);
    }
    return s;
}

} // namespace

namespace bn {
/// Note [Batch norm op allocations]: what one call of the op keeps for its backward - the plan
/// (recomputed only when the input shape or the spec changes), the statistics the forward used,
/// and the forward's per-channel scratch. A training step would otherwise allocate about ten
/// small arrays per call for these; states live in the Workspace and a call takes one that no
/// recorded closure holds any more (use_count 1: only the pool), so in a training loop's steady
/// state (one tape per step) each layer reuses the same state and allocates nothing here. A
/// persistent tape or a layer called twice per step simply holds more states.
template <class T>
struct OpState {
    shape_t shape; ///< the plan's key: input shape, axes, virtual batch size
    std::vector<int> axes;
    std::size_t vbs = 0;
    GhostSplit split;
    bool planned = false;
    Plan plan;
    bool masked = false;
    std::vector<double> mean, inv_std, q, denom; ///< groups x C
    std::vector<double> r, d;                    ///< C, or empty without renorm
    std::vector<T> weights;                      ///< mask weights in the kernels' layout
    std::size_t wdiv = 1;
    std::vector<double> var, batch_mean, batch_var, rn_mean, rn_std; ///< forward scratch
    std::vector<T> geff, beff;
};
} // namespace bn

namespace {

/// A state for this call whose plan matches x and the spec (Note [Batch norm op allocations]).
template <class T>
std::shared_ptr<bn::OpState<T>> acquire_state(bn::Workspace<T>& ws, const array_t<T>& x, const std::vector<int>& axes,
                                              std::size_t vbs, const GhostSplit& split = GhostSplit())
{
    const auto& xs = x.shape();
    auto matches = [&](const bn::OpState<T>& s) {
        return s.planned && s.vbs == vbs && s.split == split && s.axes == axes && s.shape.size() == xs.size() &&
               std::equal(xs.begin(), xs.end(), s.shape.begin());
    };
    std::shared_ptr<bn::OpState<T>> st;
    for (auto& s : ws.op_states)
        if (s.use_count() == 1 && (!st || matches(*s))) {
            st = s;
            if (matches(*s))
                break;
        }
    if (!st) {
        st = std::make_shared<bn::OpState<T>>();
        ws.op_states.push_back(st);
    }
    if (!matches(*st)) {
        st->planned = false;
        st->shape.assign(xs.begin(), xs.end());
        st->plan = make_plan(st->shape, axes, vbs, split);
        st->axes = axes;
        st->vbs = vbs;
        st->split = split;
        st->planned = true;
    }
    return st;
}

/// dgamma and dbeta: the kernels add (C values, unlike dx, which a first contribution overwrites).
using kernels::accumulating_slot;

} // namespace

std::size_t batch_norm_channels(const shape_t& x, const std::vector<int>& axes)
{
    std::size_t c = 1;
    for (auto a : normalized_axes(x, axes))
        c *= x[a];
    return c;
}

template <class T>
Tensor<T> batch_norm_train(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                           const BatchNormSpec& spec,
                           typename detail::nondeduced<BatchNormStats<T>>::type* stats, const Tensor<T>& mask,
                           const typename detail::nondeduced<BatchRenorm<T>>::type* renorm,
                           std::shared_ptr<bn::Workspace<T>> ws)
{
    const array_t<T>& xv = x.value();
    if (xv.dimension() == 0)
        throw ValueError("batch_norm: the input must have rank >= 1, got a scalar");
    if (!ws)
        ws = std::make_shared<bn::Workspace<T>>();
    // Note [Synchronized batch norm]: one process takes the local path, with no call.
    const Collective* sync = spec.synchronized && collective().size() > 1 ? &collective() : nullptr;
    GhostSplit split;
    if (spec.virtual_batch_size > 0 && sync)
        split = ghost_split(*sync, xv.shape()[0], ws->sync);
    else if (spec.virtual_batch_size > 0)
        split.unsynchronized_ranks = static_cast<std::size_t>(collective().size());
    auto state = acquire_state(*ws, xv, spec.axes, spec.virtual_batch_size, split);
    bn::OpState<T>& sv = *state;
    const Plan& p = sv.plan;
    const shape_t& sx = sv.shape;
    const std::size_t C = p.channels, G = p.groups, N = xv.size();
    check_param(gamma, "gamma", C, sx);
    check_param(beta, "beta", C, sx);
    const double eps = spec.epsilon;

    bn::Renorm rn;
    sv.r.clear();
    sv.d.clear();
    if (renorm) {
        if (renorm->mean.size() != C || renorm->stddev.size() != C)
            throw ShapeError("batch_norm: renorm statistics have shapes " + shape_str(shape_of(renorm->mean)) + " and " +
                             shape_str(shape_of(renorm->stddev)) + ", expected " + std::to_string(C) + " values");
        sv.rn_mean.assign(renorm->mean.begin(), renorm->mean.end());
        sv.rn_std.assign(renorm->stddev.begin(), renorm->stddev.end());
        rn.mean = sv.rn_mean.data();
        rn.stddev = sv.rn_std.data();
        rn.rmin = renorm->rmin.value_or(0.0);
        rn.rmax = renorm->rmax.value_or(std::numeric_limits<double>::infinity());
        rn.dmax = renorm->dmax.value_or(std::numeric_limits<double>::infinity());
        sv.r.assign(C, 1.0);
        sv.d.assign(C, 0.0);
    }

    // The kernels' view of x (and of the mask's weights).
    const T* xk = xv.data();
    sv.masked = mask.defined();
    sv.wdiv = 1;
    if (sv.masked) {
        mask_weights(sx, mask, sv.weights);
        sv.wdiv = sx.back();
    }
    if (!p.direct) {
        resize_buffer<T>(ws->gx, N);
        gather(p, xv.data(), ws->gx.data(), N, ws->gt);
        xk = ws->gx.data();
        if (sv.masked) {
            resize_buffer<T>(ws->gw, N);
            for (std::size_t f = 0; f < N; ++f)
                ws->gw[f] = sv.weights[f / sv.wdiv];
            sv.weights.resize(N);
            gather(p, ws->gw.data(), sv.weights.data(), N, ws->gt);
            sv.wdiv = 1;
        }
    }
    array_t<T> yv = array_t<T>::from_shape(sx);
    T* yk = yv.data();
    if (!p.direct) {
        resize_buffer<T>(ws->gy, N);
        yk = ws->gy.data();
    }

    const bn::Layout& l = p.layout;
    sv.mean.assign(G * C, 0.0);
    sv.inv_std.assign(G * C, 0.0);
    sv.var.assign(G * C, 0.0);
    const T* gp = gamma.defined() ? gamma.data() : nullptr;
    const T* bp = beta.defined() ? beta.data() : nullptr;
    std::vector<double>& batch_mean = sv.batch_mean;
    std::vector<double>& batch_var = sv.batch_var;

    if (!sv.masked && G == 1) {
        bn::ChannelStats out{ sv.mean.data(), sv.var.data(), sv.inv_std.data(), renorm ? sv.r.data() : nullptr,
                              renorm ? sv.d.data() : nullptr };
        bn::forward_training(l, xk, gp, bp, eps, renorm ? &rn : nullptr, yk, out, *ws, sync);
        batch_mean.assign(sv.mean.begin(), sv.mean.end());
        batch_var.assign(sv.var.begin(), sv.var.end());
    } else {
        batch_mean.assign(C, 0.0);
        batch_var.assign(C, 0.0);
        if (sv.masked) {
            sv.q.assign(G * C, 0.0);
            sv.denom.assign(G * C, 0.0);
        }
        // One problem per ghost batch; with sync, each merges across ranks (a rank holding no sample
        // of a ghost batch still makes its calls).
        for (std::size_t g = 0; g < G; ++g) {
            const bn::Layout lg = p.group(g);
            const T* xg = xk + p.group_offset(g);
            if (sv.masked) {
                bn::masked_moments(lg, xg, sv.weights.data() + p.group_offset(g) / sv.wdiv, sv.wdiv, &sv.mean[g * C],
                                   &sv.var[g * C], &sv.q[g * C], &sv.denom[g * C], *ws, sync);
            } else {
                bn::ChannelStats out{ &sv.mean[g * C], &sv.var[g * C], &sv.inv_std[g * C], nullptr, nullptr };
                bn::forward_training<T>(lg, xg, nullptr, nullptr, eps, nullptr, nullptr, out, *ws, sync);
            }
        }
        // tf.keras averages the ghost batches' statistics for the moving averages and renorm.
        for (std::size_t c = 0; c < C; ++c) {
            for (std::size_t g = 0; g < G; ++g) {
                batch_mean[c] += sv.mean[g * C + c];
                batch_var[c] += sv.var[g * C + c];
            }
            batch_mean[c] /= static_cast<double>(G);
            batch_var[c] /= static_cast<double>(G);
        }
        for (std::size_t i = 0; i < G * C; ++i)
            sv.inv_std[i] = 1.0 / std::sqrt(sv.var[i] + eps);
        if (renorm)
            for (std::size_t c = 0; c < C; ++c)
                bn::renorm_correction(rn, c, batch_mean[c], batch_var[c], eps, sv.r[c], sv.d[c]);
        sv.geff.resize(C);
        sv.beff.resize(C);
        for (std::size_t c = 0; c < C; ++c) {
            const double g = gp ? static_cast<double>(gp[c]) : 1.0;
            const double rc = renorm ? sv.r[c] : 1.0, dc = renorm ? sv.d[c] : 0.0;
            sv.geff[c] = static_cast<T>(g * rc);
            sv.beff[c] = static_cast<T>((bp ? static_cast<double>(bp[c]) : 0.0) + g * dc);
        }
        for (std::size_t g = 0; g < G; ++g)
            bn::forward_inference(p.group(g), xk + p.group_offset(g), sv.geff.data(), sv.beff.data(), &sv.mean[g * C],
                                  &sv.inv_std[g * C], yk + p.group_offset(g), *ws);
    }
    if (!p.direct)
        scatter(p, yk, yv.data(), false, N, ws->gt);

    if (stats) {
        // resize keeps the arrays of the previous call when the channel count repeats.
        stats->mean.resize({ C });
        stats->variance.resize({ C });
        for (std::size_t c = 0; c < C; ++c) {
            stats->mean(c) = static_cast<T>(batch_mean[c]);
            stats->variance(c) = static_cast<T>(batch_var[c]);
        }
        stats->r.resize({ renorm ? C : 0 });
        stats->d.resize({ renorm ? C : 0 });
        if (renorm)
            for (std::size_t c = 0; c < C; ++c) {
                stats->r(c) = static_cast<T>(sv.r[c]);
                stats->d(c) = static_cast<T>(sv.d[c]);
            }
    }

    Tensor<T> y(std::move(yv));
    if (!should_record<T>({ &x, &gamma, &beta }))
        return y;
    // Backward beside the forward: the closed forms of batch_norm.hpp, from the saved statistics.
    record_op<T>("batch_norm_train", { x, gamma, beta }, y,
                 FirstAwareBackwardFn<T>([state, x, gamma, ws, sync](const array_t<T>& dy,
                                                                     const std::vector<array_t<T>*>& dx,
                                                                     const std::vector<bool>& first) {
                     const bn::OpState<T>& s = *state;
                     const Plan& p = s.plan;
                     if (!dx[0] && !dx[1] && !dx[2] && !sync) // a synchronized op joins the allreduce
                         return;
                     T* dxp = dx[0] ? dx[0]->data() : nullptr;
                     T* dgp = accumulating_slot(dx, first, 1);
                     T* dbp = accumulating_slot(dx, first, 2);
                     // A first contribution is written, not added: no zero fill, no read of dx, and
                     // streaming stores for large outputs (Note [First gradient contributions]).
                     const bool add_dx = dxp && !first[0];
                     const std::size_t C = p.channels, N = x.size();
                     const T* xk = x.data();
                     const T* dyk = dy.data();
                     T* dxk = dxp;
                     if (!p.direct) {
                         resize_buffer<T>(ws->gx, N);
                         resize_buffer<T>(ws->gdy, N);
                         gather(p, x.data(), ws->gx.data(), N, ws->gt);
                         gather(p, dy.data(), ws->gdy.data(), N, ws->gt);
                         xk = ws->gx.data();
                         dyk = ws->gdy.data();
                         if (dxp) {
                             resize_buffer<T>(ws->gdx, N);
                             dxk = ws->gdx.data();
                         }
                     }
                     // The gathered buffer is written, then scattered into dx (added or assigned).
                     const bool accumulate = p.direct && add_dx;
                     const T* gp = gamma.defined() ? gamma.data() : nullptr;
                     const double* r = s.r.empty() ? nullptr : s.r.data();
                     const double* d = s.d.empty() ? nullptr : s.d.data();
                     for (std::size_t g = 0; g < p.groups; ++g) {
                         const bn::Layout l = p.group(g);
                         const std::size_t o = p.group_offset(g);
                         T* dxg = dxk ? dxk + o : nullptr;
                         if (s.masked)
                             bn::masked_backward(l, xk + o, dyk + o, s.weights.data() + o / s.wdiv, s.wdiv, gp,
                                                 &s.mean[g * C], &s.inv_std[g * C], &s.q[g * C], &s.denom[g * C], r, d,
                                                 dxg, accumulate, dgp, dbp, *ws, sync);
                         else
                             bn::backward(l, xk + o, dyk + o, gp, &s.mean[g * C], &s.inv_std[g * C], r, d, true, dxg,
                                          accumulate, dgp, dbp, *ws, sync);
                     }
                     if (!p.direct && dxp)
                         scatter(p, dxk, dxp, add_dx, N, ws->gt);
                 }));
    return y;
}

template <class T>
Tensor<T> batch_norm_inference(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                               const array_t<T>& mean, const array_t<T>& variance, const BatchNormSpec& spec,
                               std::shared_ptr<bn::Workspace<T>> ws)
{
    const array_t<T>& xv = x.value();
    if (xv.dimension() == 0)
        throw ValueError("batch_norm: the input must have rank >= 1, got a scalar");
    // Note [Inference workspaces]
    // A call that records no backward (predict, evaluate, a call outside a tape) takes its
    // scratch and op state from a workspace of the calling thread, not from the layer's: several
    // threads may run one model's inference at once (Model::predict's contract) and would share
    // the layer's. A recorded call keeps the layer's workspace, whose op states its backward
    // holds and later steps recycle; training is unchanged.
    thread_local const std::shared_ptr<bn::Workspace<T>> thread_ws = std::make_shared<bn::Workspace<T>>();
    if (!should_record<T>({ &x, &gamma, &beta }))
        ws = thread_ws;
    else if (!ws)
        ws = std::make_shared<bn::Workspace<T>>();
    // Ghost batches change nothing in inference (tf.keras reshapes to one sample per batch).
    auto state = acquire_state(*ws, xv, spec.axes, 0);
    bn::OpState<T>& sv = *state;
    const Plan& p = sv.plan;
    const shape_t& sx = sv.shape;
    const std::size_t C = p.channels, N = xv.size();
    check_param(gamma, "gamma", C, sx);
    check_param(beta, "beta", C, sx);
    if (mean.size() != C || variance.size() != C)
        throw ShapeError("batch_norm: mean and variance have shapes " + shape_str(shape_of(mean)) + " and " +
                         shape_str(shape_of(variance)) + " but the input of shape " + shape_str(sx) + " has " +
                         std::to_string(C) + " channels");
    sv.mean.resize(C);
    sv.inv_std.resize(C);
    for (std::size_t c = 0; c < C; ++c) {
        sv.mean[c] = static_cast<double>(mean.data()[c]);
        sv.inv_std[c] = 1.0 / std::sqrt(static_cast<double>(variance.data()[c]) + spec.epsilon);
    }
    const T* gp = gamma.defined() ? gamma.data() : nullptr;
    const T* bp = beta.defined() ? beta.data() : nullptr;
    array_t<T> yv = array_t<T>::from_shape(sx);
    if (p.direct) {
        bn::forward_inference(p.layout, xv.data(), gp, bp, sv.mean.data(), sv.inv_std.data(), yv.data(), *ws);
    } else {
        resize_buffer<T>(ws->gx, N);
        resize_buffer<T>(ws->gy, N);
        permute(xv.data(), p.view, p.perm, ws->gx.data(), false);
        bn::forward_inference(p.layout, ws->gx.data(), gp, bp, sv.mean.data(), sv.inv_std.data(), ws->gy.data(), *ws);
        permute(ws->gy.data(), permuted(p.view, p.perm), inverse(p.perm), yv.data(), false);
    }
    Tensor<T> y(std::move(yv));
    if (!should_record<T>({ &x, &gamma, &beta }))
        return y;
    // The statistics are constants here: dx = dy gamma / sqrt(var + eps).
    record_op<T>("batch_norm_inference", { x, gamma, beta }, y,
                 FirstAwareBackwardFn<T>([state, x, gamma, ws](const array_t<T>& dy, const std::vector<array_t<T>*>& dx,
                                                               const std::vector<bool>& first) {
                     const bn::OpState<T>& s = *state;
                     const Plan& p = s.plan;
                     if (!dx[0] && !dx[1] && !dx[2])
                         return;
                     T* dxp = dx[0] ? dx[0]->data() : nullptr;
                     T* dgp = accumulating_slot(dx, first, 1);
                     T* dbp = accumulating_slot(dx, first, 2);
                     const bool add_dx = dxp && !first[0];
                     const std::size_t N = x.size();
                     const T* gp = gamma.defined() ? gamma.data() : nullptr;
                     const double* m = s.mean.data();
                     const double* inv = s.inv_std.data();
                     if (p.direct) {
                         bn::backward(p.layout, x.data(), dy.data(), gp, m, inv, nullptr, nullptr, false, dxp, add_dx,
                                      dgp, dbp, *ws);
                         return;
                     }
                     resize_buffer<T>(ws->gx, N);
                     resize_buffer<T>(ws->gdy, N);
                     permute(x.data(), p.view, p.perm, ws->gx.data(), false);
                     permute(dy.data(), p.view, p.perm, ws->gdy.data(), false);
                     T* dxk = nullptr;
                     if (dxp) {
                         resize_buffer<T>(ws->gdx, N);
                         dxk = ws->gdx.data();
                     }
                     bn::backward(p.layout, ws->gx.data(), ws->gdy.data(), gp, m, inv, nullptr, nullptr, false, dxk,
                                  false, dgp, dbp, *ws);
                     if (dxp)
                         permute(dxk, permuted(p.view, p.perm), inverse(p.perm), dxp, add_dx);
                 }));
    return y;
}

template Tensor<float> batch_norm_train(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&,
                                        const BatchNormSpec&, BatchNormStats<float>*, const Tensor<float>&,
                                        const BatchRenorm<float>*, std::shared_ptr<bn::Workspace<float>>);
template Tensor<double> batch_norm_train(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&,
                                         const BatchNormSpec&, BatchNormStats<double>*, const Tensor<double>&,
                                         const BatchRenorm<double>*, std::shared_ptr<bn::Workspace<double>>);
template Tensor<float> batch_norm_inference(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&,
                                            const array_t<float>&, const array_t<float>&, const BatchNormSpec&,
                                            std::shared_ptr<bn::Workspace<float>>);
template Tensor<double> batch_norm_inference(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&,
                                             const array_t<double>&, const array_t<double>&, const BatchNormSpec&,
                                             std::shared_ptr<bn::Workspace<double>>);

} // namespace xtape
