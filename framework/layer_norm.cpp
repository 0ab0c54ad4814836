// Fused layer normalization: row kernels and the differentiable op (Notes in layer_norm.hpp).
#include "framework/layer_norm.hpp"

#include "framework/errors.hpp"
#include "framework/kernels/grad_slot.hpp"
#include "framework/kernels/simd.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace xtape {
namespace ln {
namespace {

using kernels::hsum;
using kernels::is_aligned;
using kernels::vec;

/// Elements per block of a row sum (Note [Layer norm numerics]).
constexpr std::size_t block = 1024;
/// Rows whose dgamma/dbeta contributions add in T before a flush into the chunk's doubles.
constexpr std::size_t tile_rows = 16;
/// dgamma/dbeta chunks: about this many elements each, at most max_chunks (Note [Layer norm determinism]).
constexpr std::size_t chunk_elements = 1 << 15;
constexpr std::size_t max_chunks = 16;

std::size_t chunk_count(std::size_t rows, std::size_t cols)
{
    const std::size_t n = std::max<std::size_t>(1, rows * cols / chunk_elements);
    return std::max<std::size_t>(1, std::min({ n, max_chunks, rows }));
}

/// Sum of x[0, n) (Note [Layer norm numerics]).
template <class T>
double row_sum(const T* x, std::size_t n)
{
    constexpr std::size_t L = vec<T>::size;
    double total = 0;
    for (std::size_t b = 0; b < n; b += block) {
        const std::size_t e = std::min(n, b + block);
        vec<T> a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
        std::size_t i = b;
        for (; i + 4 * L <= e; i += 4 * L) {
            a0 += vec<T>::load_unaligned(x + i);
            a1 += vec<T>::load_unaligned(x + i + L);
            a2 += vec<T>::load_unaligned(x + i + 2 * L);
            a3 += vec<T>::load_unaligned(x + i + 3 * L);
        }
        for (; i + L <= e; i += L)
            a0 += vec<T>::load_unaligned(x + i);
        T s = hsum((a0 + a1) + (a2 + a3));
        for (; i < e; ++i)
            s += x[i];
        total += static_cast<double>(s);
    }
    return total;
}

/// S(d) and S(d^2) for d = x - m over x[0, n).
template <class T>
void row_shifted_sums(const T* x, std::size_t n, T m, double& sd, double& sdd)
{
    constexpr std::size_t L = vec<T>::size;
    const vec<T> mv(m);
    sd = sdd = 0;
    for (std::size_t b = 0; b < n; b += block) {
        const std::size_t e = std::min(n, b + block);
        vec<T> s0(T(0)), s1(T(0)), q0(T(0)), q1(T(0));
        std::size_t i = b;
        for (; i + 2 * L <= e; i += 2 * L) {
            const vec<T> d0 = vec<T>::load_unaligned(x + i) - mv, d1 = vec<T>::load_unaligned(x + i + L) - mv;
            s0 += d0;
            s1 += d1;
            q0 = xsimd::fma(d0, d0, q0);
            q1 = xsimd::fma(d1, d1, q1);
        }
        for (; i + L <= e; i += L) {
            const vec<T> d0 = vec<T>::load_unaligned(x + i) - mv;
            s0 += d0;
            q0 = xsimd::fma(d0, d0, q0);
        }
        T s = hsum(s0 + s1), q = hsum(q0 + q1);
        for (; i < e; ++i) {
            const T d = x[i] - m;
            s += d;
            q += d * d;
        }
        sd += static_cast<double>(s);
        sdd += static_cast<double>(q);
    }
}

/// Writes f(i) (a vector of lanes i..) to y[0, n) with streaming stores when asked and possible.
template <class T, class F, class G>
void row_store(T* y, std::size_t n, bool stream, F&& fv, G&& fs)
{
    constexpr std::size_t L = vec<T>::size;
    std::size_t i = 0;
    if (stream && is_aligned(y)) {
        for (; i + L <= n; i += L)
            kernels::stream_store(y + i, fv(i));
    } else {
        for (; i + L <= n; i += L)
            fv(i).store_unaligned(y + i);
    }
    for (; i < n; ++i)
        y[i] = fs(i);
}

} // namespace

template <class T>
void forward(std::size_t rows, std::size_t cols, const T* x, const T* gamma, const T* beta, double epsilon,
             bool rms_scaling, T* y, double* mean, double* inv_std)
{
    if (cols == 0) {
        std::fill(mean, mean + rows, 0.0);
        std::fill(inv_std, inv_std + rows, 1.0 / std::sqrt(epsilon));
        return;
    }
    const bool stream = rows * cols * sizeof(T) >= kernels::stream_min_bytes;
    const double inv_n = 1.0 / static_cast<double>(cols);
    parallel_for(
        rows,
        [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                const T* xr = x + r * cols;
                T* yr = y + r * cols;
                const T m = static_cast<T>(row_sum(xr, cols) * inv_n);
                double sd, sdd;
                row_shifted_sums(xr, cols, m, sd, sdd);
                const double mean_d = static_cast<double>(m) + sd * inv_n;
                const double var = std::max(0.0, (sdd - sd * sd * inv_n) * inv_n);
                const double inv = 1.0 / std::sqrt(var + epsilon);
                mean[r] = mean_d;
                inv_std[r] = inv;
                const vec<T> iv(static_cast<T>(inv));
                if (rms_scaling) {
                    if (gamma)
                        row_store(
                            yr, cols, stream,
                            [&](std::size_t i) { return vec<T>::load_unaligned(xr + i) * iv * vec<T>::load_unaligned(gamma + i); },
                            [&](std::size_t i) { return xr[i] * static_cast<T>(inv) * gamma[i]; });
                    else
                        row_store(
                            yr, cols, stream, [&](std::size_t i) { return vec<T>::load_unaligned(xr + i) * iv; },
                            [&](std::size_t i) { return xr[i] * static_cast<T>(inv); });
                    continue;
                }
                const T delta = static_cast<T>(mean_d - static_cast<double>(m)), it = static_cast<T>(inv);
                const vec<T> mv(m), dv(delta);
                auto xhat_v = [&](std::size_t i) { return ((vec<T>::load_unaligned(xr + i) - mv) - dv) * iv; };
                auto xhat_s = [&](std::size_t i) { return ((xr[i] - m) - delta) * it; };
                if (gamma && beta)
                    row_store(
                        yr, cols, stream,
                        [&](std::size_t i) {
                            return xsimd::fma(xhat_v(i), vec<T>::load_unaligned(gamma + i), vec<T>::load_unaligned(beta + i));
                        },
                        [&](std::size_t i) { return xhat_s(i) * gamma[i] + beta[i]; });
                else if (gamma)
                    row_store(
                        yr, cols, stream, [&](std::size_t i) { return xhat_v(i) * vec<T>::load_unaligned(gamma + i); },
                        [&](std::size_t i) { return xhat_s(i) * gamma[i]; });
                else if (beta)
                    row_store(
                        yr, cols, stream, [&](std::size_t i) { return xhat_v(i) + vec<T>::load_unaligned(beta + i); },
                        [&](std::size_t i) { return xhat_s(i) + beta[i]; });
                else
                    row_store(yr, cols, stream, xhat_v, xhat_s);
            }
        },
        cols * 3);
    if (stream)
        kernels::stream_fence();
}

template <class T>
void backward(std::size_t rows, std::size_t cols, const T* x, const T* dy, const T* gamma, const double* mean,
              const double* inv_std, bool rms_scaling, T* dx, bool accumulate, T* dgamma, T* dbeta, Workspace<T>& ws)
{
    if (rows == 0 || cols == 0)
        return;
    constexpr std::size_t L = vec<T>::size;
    const std::size_t nchunks = chunk_count(rows, cols);
    const bool want_g = dgamma != nullptr, want_b = dbeta != nullptr && !rms_scaling;
    if (want_g) {
        ws.part_g.assign(nchunks * cols, 0.0);
        ws.tile_g.assign(nchunks * cols, T(0));
    }
    if (want_b) {
        ws.part_b.assign(nchunks * cols, 0.0);
        ws.tile_b.assign(nchunks * cols, T(0));
    }
    const bool stream = dx && !accumulate && rows * cols * sizeof(T) >= kernels::stream_min_bytes;
    const double inv_n = 1.0 / static_cast<double>(cols);

    auto run_chunk = [&](std::size_t ch) {
        const std::size_t r0 = rows * ch / nchunks, r1 = rows * (ch + 1) / nchunks;
        T* tg = want_g ? ws.tile_g.data() + ch * cols : nullptr;
        T* tb = want_b ? ws.tile_b.data() + ch * cols : nullptr;
        double* pg = want_g ? ws.part_g.data() + ch * cols : nullptr;
        double* pb = want_b ? ws.part_b.data() + ch * cols : nullptr;
        for (std::size_t r = r0; r < r1; ++r) {
            const T* xr = x + r * cols;
            const T* dyr = dy + r * cols;
            const double inv = inv_std[r];
            // xhat = ((x - m) - delta) * inv as in the forward (m the mean rounded to T, delta the
            // rest). Pass 1 uses the output's own factor, x * inv under rms_scaling (x not centred);
            // pass 2's d var / dx term is always the centred xhat.
            const T mc = static_cast<T>(mean[r]);
            const T dc = static_cast<T>(mean[r] - static_cast<double>(mc));
            const T m = rms_scaling ? T(0) : mc, delta = rms_scaling ? T(0) : dc;
            const T it = static_cast<T>(inv);
            const vec<T> mv(m), dv(delta), iv(it), mcv(mc), dcv(dc);
            // Pass 1: S(h), S(h * xhat) for dx, and the row's dgamma/dbeta terms.
            double sh = 0, shx = 0;
            for (std::size_t b = 0; b < cols; b += block) {
                const std::size_t e = std::min(cols, b + block);
                vec<T> a0(T(0)), a1(T(0));
                std::size_t i = b;
                for (; i + L <= e; i += L) {
                    const vec<T> d = vec<T>::load_unaligned(dyr + i);
                    const vec<T> xh = ((vec<T>::load_unaligned(xr + i) - mv) - dv) * iv;
                    const vec<T> h = gamma ? d * vec<T>::load_unaligned(gamma + i) : d;
                    a0 += h;
                    a1 = xsimd::fma(h, xh, a1);
                    if (tg)
                        xsimd::fma(d, xh, vec<T>::load_unaligned(tg + i)).store_unaligned(tg + i);
                    if (tb)
                        (vec<T>::load_unaligned(tb + i) + d).store_unaligned(tb + i);
                }
                T s0 = hsum(a0), s1 = hsum(a1);
                for (; i < e; ++i) {
                    const T xh = ((xr[i] - m) - delta) * it;
                    const T h = gamma ? dyr[i] * gamma[i] : dyr[i];
                    s0 += h;
                    s1 += h * xh;
                    if (tg)
                        tg[i] += dyr[i] * xh;
                    if (tb)
                        tb[i] += dyr[i];
                }
                sh += static_cast<double>(s0);
                shx += static_cast<double>(s1);
            }
            if ((r - r0 + 1) % tile_rows == 0 || r + 1 == r1) {
                for (std::size_t j = 0; tg && j < cols; ++j) {
                    pg[j] += static_cast<double>(tg[j]);
                    tg[j] = T(0);
                }
                for (std::size_t j = 0; tb && j < cols; ++j) {
                    pb[j] += static_cast<double>(tb[j]);
                    tb[j] = T(0);
                }
            }
            if (!dx)
                continue;
            // Pass 2: dx = inv * (h - A - xhat * B); rms has no A (x is not centred).
            const T A = rms_scaling ? T(0) : static_cast<T>(sh * inv_n);
            const T B = static_cast<T>(shx * inv_n);
            const vec<T> av(A), bv(B);
            T* dxr = dx + r * cols;
            auto fv = [&](std::size_t i) {
                const vec<T> xh = ((vec<T>::load_unaligned(xr + i) - mcv) - dcv) * iv;
                const vec<T> d = vec<T>::load_unaligned(dyr + i);
                const vec<T> h = gamma ? d * vec<T>::load_unaligned(gamma + i) : d;
                vec<T> g = (xsimd::fnma(xh, bv, h) - av) * iv;
                if (accumulate)
                    g += vec<T>::load_unaligned(dxr + i);
                return g;
            };
            auto fs = [&](std::size_t i) {
                const T xh = ((xr[i] - mc) - dc) * it;
                const T h = gamma ? dyr[i] * gamma[i] : dyr[i];
                const T g = (h - xh * B - A) * it;
                return accumulate ? dxr[i] + g : g;
            };
            row_store(dxr, cols, stream, fv, fs);
        }
    };
    const int nt = rows * cols >= parallel_threshold ? std::min<int>(max_threads(), static_cast<int>(nchunks)) : 1;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && !omp_in_parallel())
#endif
    for (std::ptrdiff_t ch = 0; ch < static_cast<std::ptrdiff_t>(nchunks); ++ch)
        run_chunk(static_cast<std::size_t>(ch));
    (void)nt;
    if (stream)
        kernels::stream_fence();
    // Chunks merge in chunk order (Note [Layer norm determinism]).
    for (std::size_t j = 0; j < cols; ++j) {
        if (want_g) {
            double s = 0;
            for (std::size_t ch = 0; ch < nchunks; ++ch)
                s += ws.part_g[ch * cols + j];
            dgamma[j] += static_cast<T>(s);
        }
        if (want_b) {
            double s = 0;
            for (std::size_t ch = 0; ch < nchunks; ++ch)
                s += ws.part_b[ch * cols + j];
            dbeta[j] += static_cast<T>(s);
        }
    }
}

template <class T>
struct OpState {
    std::vector<double> mean, inv_std;
};

#define XTAPE_LN_KERNELS(T)                                                                                           \
    template void forward<T>(std::size_t, std::size_t, const T*, const T*, const T*, double, bool, T*, double*,       \
                             double*);                                                                                \
    template void backward<T>(std::size_t, std::size_t, const T*, const T*, const T*, const double*, const double*,   \
                              bool, T*, bool, T*, T*, Workspace<T>&);
XTAPE_LN_KERNELS(float)
XTAPE_LN_KERNELS(double)
#undef XTAPE_LN_KERNELS

} // namespace ln

namespace {

std::string axes_str(const std::vector<int>& axes)
{
    std::string s = "[";
    for (std::size_t i = 0; i < axes.size(); ++i)
        s += (i ? ", " : "") + std::to_string(axes[i]);
    return s + "]";
}

template <class T>
std::shared_ptr<ln::OpState<T>> acquire_state(ln::Workspace<T>& ws)
{
    for (auto& s : ws.op_states)
        if (s.use_count() == 1)
            return s;
    ws.op_states.push_back(std::make_shared<ln::OpState<T>>());
    return ws.op_states.back();
}

using kernels::accumulating_slot;

/// The op on trailing normalized axes holding `cols` elements per row.
template <class T>
Tensor<T> layer_norm_rows(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, std::size_t cols,
                          const LayerNormSpec& spec, const std::shared_ptr<ln::Workspace<T>>& layer_ws)
{
    // Note [Inference workspaces] in framework/batch_norm.cpp.
    const bool record = should_record<T>({ &x, &gamma, &beta });
    thread_local const std::shared_ptr<ln::Workspace<T>> thread_ws = std::make_shared<ln::Workspace<T>>();
    const std::shared_ptr<ln::Workspace<T>>& ws = record ? layer_ws : thread_ws;
    const array_t<T>& xv = x.value();
    const std::size_t rows = cols ? xv.size() / cols : 0;
    auto state = acquire_state(*ws);
    state->mean.resize(rows);
    state->inv_std.resize(rows);
    const T* gp = gamma.defined() ? gamma.data() : nullptr;
    const T* bp = beta.defined() && !spec.rms_scaling ? beta.data() : nullptr;
    array_t<T> yv = array_t<T>::from_shape(xv.shape());
    ln::forward(rows, cols, xv.data(), gp, bp, spec.epsilon, spec.rms_scaling, yv.data(), state->mean.data(),
                state->inv_std.data());
    Tensor<T> y(std::move(yv));
    if (!record)
        return y;
    const bool rms = spec.rms_scaling;
    record_op<T>("layer_norm", { x, gamma, beta }, y,
                 FirstAwareBackwardFn<T>([state, x, gamma, ws, rows, cols, rms](const array_t<T>& dy,
                                                                               const std::vector<array_t<T>*>& dx,
                                                                               const std::vector<bool>& first) {
                     if (!dx[0] && !dx[1] && !dx[2])
                         return;
                     T* dxp = dx[0] ? dx[0]->data() : nullptr;
                     T* dgp = accumulating_slot(dx, first, 1);
                     T* dbp = rms ? nullptr : accumulating_slot(dx, first, 2);
                     ln::backward(rows, cols, x.data(), dy.data(), gamma.defined() ? gamma.data() : nullptr,
                                  state->mean.data(), state->inv_std.data(), rms, dxp, dxp && !first[0], dgp, dbp, *ws);
                     // rms_scaling ignores beta: its gradient is zero (a first contribution must be written).
                     if (rms && dx[2] && first[2])
                         std::fill(dx[2]->begin(), dx[2]->end(), T(0));
                 }));
    return y;
}

} // namespace

template <class T>
Tensor<T> layer_norm(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, const LayerNormSpec& spec,
                     std::shared_ptr<ln::Workspace<T>> ws)
{
    const shape_t sx = x.shape();
    const std::size_t rank = sx.size();
    if (spec.axes.empty())
        throw ValueError("layer_norm: expected at least one axis, got axis=[] for input shape " + shape_str(sx));
    std::vector<std::size_t> axes;
    for (int a : spec.axes) {
        const long r = a < 0 ? a + static_cast<long>(rank) : a;
        if (r < 0 || r >= static_cast<long>(rank))
            throw ValueError("layer_norm: axis " + std::to_string(a) + " is out of bounds for input shape " +
                             shape_str(sx) + ". Received: axis=" + axes_str(spec.axes));
        axes.push_back(static_cast<std::size_t>(r));
    }
    std::sort(axes.begin(), axes.end());
    if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
        throw ValueError("layer_norm: duplicate axes are not allowed. Received: axis=" + axes_str(spec.axes) +
                         " for input shape " + shape_str(sx));
    std::size_t cols = 1;
    for (auto a : axes)
        cols *= sx[a];
    for (const auto* p : { &gamma, &beta })
        if (p->defined() && p->size() != cols)
            throw ShapeError(std::string("layer_norm: ") + (p == &gamma ? "gamma" : "beta") + " has shape " +
                             shape_str(p->shape()) + " but the normalized axes " + axes_str(spec.axes) +
                             " of input shape " + shape_str(sx) + " hold " + std::to_string(cols) + " elements");
    if (!ws)
        ws = std::make_shared<ln::Workspace<T>>();
    const bool trailing = axes.front() == rank - axes.size();
    if (trailing)
        return layer_norm_rows(x, gamma, beta, cols, spec, ws);
    // Rare layouts: move the normalized axes (in sorted order, as gamma is laid out) to the end.
    std::vector<std::size_t> perm;
    for (std::size_t i = 0; i < rank; ++i)
        if (!std::binary_search(axes.begin(), axes.end(), i))
            perm.push_back(i);
    perm.insert(perm.end(), axes.begin(), axes.end());
    std::vector<std::size_t> back(rank);
    for (std::size_t i = 0; i < rank; ++i)
        back[perm[i]] = i;
    return transpose(layer_norm_rows(transpose(x, perm), gamma, beta, cols, spec, ws), back);
}

template Tensor<float> layer_norm(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&,
                                  const LayerNormSpec&, std::shared_ptr<ln::Workspace<float>>);
template Tensor<double> layer_norm(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&,
                                   const LayerNormSpec&, std::shared_ptr<ln::Workspace<double>>);

} // namespace xtape
