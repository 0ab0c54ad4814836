// Pooling kernels and their ops (framework/pooling.hpp): Note [Pooling padding] and Note [Pooling
// layouts] there say what the loops below compute and how they split the work.
#include "framework/pooling.hpp"

#include "framework/errors.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

namespace xtape {

std::size_t pool_output_length(std::size_t in, std::size_t pool, std::size_t stride, bool same_padding)
{
    if (same_padding)
        return (in + stride - 1) / stride;
    return in < pool ? 0 : (in - pool) / stride + 1;
}

namespace {

/// One pooling problem with the spatial axes as (height, width); one spatial axis has height 1.
struct Geometry {
    std::size_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
    std::size_t kh = 1, kw = 1, sh = 1, sw = 1, pad_top = 0, pad_left = 0;
    bool channels_first = false;

    /// The input rows [begin, end) that output row `o` pools (clipped to the input).
    void rows(std::size_t o, std::size_t& begin, std::size_t& end) const { clip(o, sh, kh, pad_top, h, begin, end); }
    void cols(std::size_t o, std::size_t& begin, std::size_t& end) const { clip(o, sw, kw, pad_left, w, begin, end); }

    static void clip(std::size_t o, std::size_t s, std::size_t k, std::size_t pad, std::size_t len, std::size_t& b,
                     std::size_t& e)
    {
        const std::size_t start = o * s; // in padded coordinates
        b = start < pad ? 0 : start - pad;
        e = std::min(len, start + k < pad ? 0 : start + k - pad);
    }
};

std::string spec_str(const char* op, const shape_t& xs, const PoolSpec& spec)
{
    return std::string(op) + ": Received: `inputs.shape=" + shape_str(xs) + "`, `pool_size=" +
           shape_str(spec.pool_size) + "`, `strides=" + shape_str(spec.strides) +
           "`, `padding=" + (spec.same_padding ? "same" : "valid") + "`, `data_format=" +
           (spec.channels_first ? "channels_first" : "channels_last") + "`";
}

Geometry geometry(const char* op, const shape_t& xs, const PoolSpec& spec)
{
    const std::size_t nd = spec.pool_size.size();
    if (nd < 1 || nd > 2 || spec.strides.size() != nd)
        throw ValueError(std::string(op) + ": expected pool_size and strides for 1 or 2 spatial axes, got pool_size=" +
                         shape_str(spec.pool_size) + ", strides=" + shape_str(spec.strides));
    for (std::size_t i = 0; i < nd; ++i)
        if (spec.pool_size[i] == 0 || spec.strides[i] == 0)
            throw ValueError(std::string(op) + ": pool_size and strides must be positive, got pool_size=" +
                             shape_str(spec.pool_size) + ", strides=" + shape_str(spec.strides));
    if (xs.size() != nd + 2)
        throw ShapeError(std::string(op) + ": expected an input of rank " + std::to_string(nd + 2) + " (batch, " +
                         (nd == 1 ? "steps" : "rows, cols") + " and channels), got shape " + shape_str(xs));
    Geometry g;
    g.channels_first = spec.channels_first;
    g.n = xs[0];
    g.c = spec.channels_first ? xs[1] : xs[nd + 1];
    const std::size_t first = spec.channels_first ? 2 : 1;
    std::size_t in[2] = { 1, 1 }, k[2] = { 1, 1 }, s[2] = { 1, 1 };
    for (std::size_t i = 0; i < nd; ++i) {
        in[2 - nd + i] = xs[first + i];
        k[2 - nd + i] = spec.pool_size[i];
        s[2 - nd + i] = spec.strides[i];
    }
    g.h = in[0];
    g.w = in[1];
    g.kh = k[0];
    g.kw = k[1];
    g.sh = s[0];
    g.sw = s[1];
    std::size_t out[2], pad[2];
    for (int a = 0; a < 2; ++a) {
        out[a] = pool_output_length(in[a], k[a], s[a], spec.same_padding);
        if (out[a] == 0 && in[a] > 0)
            throw ShapeError(std::string("Computed output size would be zero or negative. ") + spec_str(op, xs, spec));
        const std::size_t reach = out[a] ? (out[a] - 1) * s[a] + k[a] : 0;
        pad[a] = spec.same_padding && reach > in[a] ? (reach - in[a]) / 2 : 0;
    }
    g.oh = out[0];
    g.ow = out[1];
    g.pad_top = pad[0];
    g.pad_left = pad[1];
    return g;
}

shape_t output_shape(const shape_t& xs, const Geometry& g, std::size_t nd)
{
    shape_t so = xs;
    const std::size_t first = g.channels_first ? 2 : 1;
    if (nd == 1) {
        so[first] = g.ow;
    } else {
        so[first] = g.oh;
        so[first + 1] = g.ow;
    }
    return so;
}

// ---- max pooling kernels ----------------------------------------------------------------------------
// arg holds, per output element, the cell (row * w + col) of its first maximum within the sample's
// (channels_last) or plane's (channels_first) spatial grid; only filled when WithArg.

template <class T, bool WithArg>
void max_forward(const Geometry& g, const T* x, T* y, std::uint32_t* arg)
{
    const std::size_t hw = g.h * g.w, window = g.kh * g.kw;
    if (!g.channels_first) {
        const std::size_t C = g.c;
        parallel_for(
            g.n * g.oh,
            [&](std::size_t r0, std::size_t r1) {
                for (std::size_t r = r0; r < r1; ++r) {
                    const std::size_t n = r / g.oh, o_h = r % g.oh;
                    std::size_t hb, he;
                    g.rows(o_h, hb, he);
                    const T* xs = x + n * hw * C;
                    for (std::size_t o_w = 0; o_w < g.ow; ++o_w) {
                        std::size_t wb, we;
                        g.cols(o_w, wb, we);
                        T* yo = y + (r * g.ow + o_w) * C;
                        std::uint32_t* ao = WithArg ? arg + (r * g.ow + o_w) * C : nullptr;
                        bool first = true;
                        for (std::size_t ih = hb; ih < he; ++ih)
                            for (std::size_t iw = wb; iw < we; ++iw) {
                                const std::size_t cell = ih * g.w + iw;
                                const T* xr = xs + cell * C;
                                if (first) {
                                    std::copy(xr, xr + C, yo);
                                    if (WithArg)
                                        std::fill(ao, ao + C, static_cast<std::uint32_t>(cell));
                                    first = false;
                                    continue;
                                }
                                for (std::size_t ch = 0; ch < C; ++ch)
                                    if (xr[ch] > yo[ch]) { // strict: the first maximum wins
                                        yo[ch] = xr[ch];
                                        if (WithArg)
                                            ao[ch] = static_cast<std::uint32_t>(cell);
                                    }
                            }
                    }
                }
            },
            g.ow * C * window);
    } else {
        const std::size_t ohw = g.oh * g.ow;
        parallel_for(
            g.n * g.c,
            [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p) {
                    const T* xs = x + p * hw;
                    for (std::size_t o_h = 0; o_h < g.oh; ++o_h) {
                        std::size_t hb, he;
                        g.rows(o_h, hb, he);
                        for (std::size_t o_w = 0; o_w < g.ow; ++o_w) {
                            std::size_t wb, we;
                            g.cols(o_w, wb, we);
                            std::size_t best = hb * g.w + wb;
                            T m = xs[best];
                            for (std::size_t ih = hb; ih < he; ++ih)
                                for (std::size_t iw = wb; iw < we; ++iw)
                                    if (xs[ih * g.w + iw] > m) {
                                        m = xs[ih * g.w + iw];
                                        best = ih * g.w + iw;
                                    }
                            const std::size_t o = p * ohw + o_h * g.ow + o_w;
                            y[o] = m;
                            if (WithArg)
                                arg[o] = static_cast<std::uint32_t>(best);
                        }
                    }
                }
            },
            ohw * window);
    }
}

/// dx[first maximum] += dy, one sample (channels_last) or plane (channels_first) per task.
template <class T>
void max_backward(const Geometry& g, const std::uint32_t* arg, const T* dy, T* dx)
{
    const std::size_t hw = g.h * g.w, ohw = g.oh * g.ow;
    if (!g.channels_first) {
        const std::size_t C = g.c;
        parallel_for(
            g.n,
            [&](std::size_t n0, std::size_t n1) {
                for (std::size_t n = n0; n < n1; ++n) {
                    T* d = dx + n * hw * C;
                    const std::size_t base = n * ohw * C;
                    for (std::size_t o = 0; o < ohw; ++o) {
                        const std::uint32_t* a = arg + base + o * C;
                        const T* gy = dy + base + o * C;
                        for (std::size_t ch = 0; ch < C; ++ch)
                            d[a[ch] * C + ch] += gy[ch];
                    }
                }
            },
            ohw * C);
    } else {
        parallel_for(
            g.n * g.c,
            [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p) {
                    T* d = dx + p * hw;
                    const std::uint32_t* a = arg + p * ohw;
                    const T* gy = dy + p * ohw;
                    for (std::size_t o = 0; o < ohw; ++o)
                        d[a[o]] += gy[o];
                }
            },
            ohw);
    }
}

// ---- average pooling kernels ------------------------------------------------------------------------
// Windows are small, so their sums are accumulated in T, as TensorFlow's kernels do.

template <class T>
void average_forward(const Geometry& g, const T* x, T* y)
{
    const std::size_t hw = g.h * g.w, window = g.kh * g.kw;
    if (!g.channels_first) {
        const std::size_t C = g.c;
        parallel_for(
            g.n * g.oh,
            [&](std::size_t r0, std::size_t r1) {
                for (std::size_t r = r0; r < r1; ++r) {
                    const std::size_t n = r / g.oh, o_h = r % g.oh;
                    std::size_t hb, he;
                    g.rows(o_h, hb, he);
                    const T* xs = x + n * hw * C;
                    for (std::size_t o_w = 0; o_w < g.ow; ++o_w) {
                        std::size_t wb, we;
                        g.cols(o_w, wb, we);
                        T* yo = y + (r * g.ow + o_w) * C;
                        std::fill(yo, yo + C, T(0));
                        for (std::size_t ih = hb; ih < he; ++ih)
                            for (std::size_t iw = wb; iw < we; ++iw) {
                                const T* xr = xs + (ih * g.w + iw) * C;
                                for (std::size_t ch = 0; ch < C; ++ch)
                                    yo[ch] += xr[ch];
                            }
                        const T inv = T(1) / static_cast<T>((he - hb) * (we - wb));
                        for (std::size_t ch = 0; ch < C; ++ch)
                            yo[ch] *= inv;
                    }
                }
            },
            g.ow * C * window);
    } else {
        const std::size_t ohw = g.oh * g.ow;
        parallel_for(
            g.n * g.c,
            [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p) {
                    const T* xs = x + p * hw;
                    for (std::size_t o_h = 0; o_h < g.oh; ++o_h) {
                        std::size_t hb, he;
                        g.rows(o_h, hb, he);
                        for (std::size_t o_w = 0; o_w < g.ow; ++o_w) {
                            std::size_t wb, we;
                            g.cols(o_w, wb, we);
                            T s = T(0);
                            for (std::size_t ih = hb; ih < he; ++ih)
                                for (std::size_t iw = wb; iw < we; ++iw)
                                    s += xs[ih * g.w + iw];
                            y[p * ohw + o_h * g.ow + o_w] = s / static_cast<T>((he - hb) * (we - wb));
                        }
                    }
                }
            },
            ohw * window);
    }
}

/// dx[cell] += dy / count for every cell of every window, one sample or plane per task.
template <class T>
void average_backward(const Geometry& g, const T* dy, T* dx)
{
    const std::size_t hw = g.h * g.w, ohw = g.oh * g.ow, window = g.kh * g.kw;
    if (!g.channels_first) {
        const std::size_t C = g.c;
        parallel_for(
            g.n,
            [&](std::size_t n0, std::size_t n1) {
                for (std::size_t n = n0; n < n1; ++n) {
                    T* d = dx + n * hw * C;
                    for (std::size_t o_h = 0; o_h < g.oh; ++o_h) {
                        std::size_t hb, he;
                        g.rows(o_h, hb, he);
                        for (std::size_t o_w = 0; o_w < g.ow; ++o_w) {
                            std::size_t wb, we;
                            g.cols(o_w, wb, we);
                            const T* gy = dy + ((n * g.oh + o_h) * g.ow + o_w) * C;
                            const T inv = T(1) / static_cast<T>((he - hb) * (we - wb));
                            for (std::size_t ih = hb; ih < he; ++ih)
                                for (std::size_t iw = wb; iw < we; ++iw) {
                                    T* dr = d + (ih * g.w + iw) * C;
                                    for (std::size_t ch = 0; ch < C; ++ch)
                                        dr[ch] += gy[ch] * inv;
                                }
                        }
                    }
                }
            },
            ohw * C * window);
    } else {
        parallel_for(
            g.n * g.c,
            [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p) {
                    T* d = dx + p * hw;
                    for (std::size_t o_h = 0; o_h < g.oh; ++o_h) {
                        std::size_t hb, he;
                        g.rows(o_h, hb, he);
                        for (std::size_t o_w = 0; o_w < g.ow; ++o_w) {
                            std::size_t wb, we;
                            g.cols(o_w, wb, we);
                            const T v = dy[p * ohw + o_h * g.ow + o_w] / static_cast<T>((he - hb) * (we - wb));
                            for (std::size_t ih = hb; ih < he; ++ih)
                                for (std::size_t iw = wb; iw < we; ++iw)
                                    d[ih * g.w + iw] += v;
                        }
                    }
                }
            },
            ohw * window);
    }
}

} // namespace

template <class T>
Tensor<T> max_pool(const Tensor<T>& x, const PoolSpec& spec)
{
    const shape_t xs = x.shape();
    const Geometry g = geometry("max_pool", xs, spec);
    if (g.h * g.w > std::size_t(UINT32_MAX))
        throw ValueError("max_pool: a spatial grid of more than 2^32 cells is not supported, got shape " +
                         shape_str(xs));
    array_t<T> out = array_t<T>::from_shape(output_shape(xs, g, spec.pool_size.size()));
    const bool record = should_record<T>({ &x });
    std::shared_ptr<std::vector<std::uint32_t>> arg;
    if (record) {
        arg = std::make_shared<std::vector<std::uint32_t>>(out.size());
        max_forward<T, true>(g, x.data(), out.data(), arg->data());
    } else {
        max_forward<T, false>(g, x.data(), out.data(), nullptr);
    }
    Tensor<T> y(std::move(out));
    if (record)
        record_op<T>("max_pool", { x }, y, [g, arg](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
            if (dx[0])
                max_backward(g, arg->data(), dy.data(), dx[0]->data());
        });
    return y;
}

template <class T>
Tensor<T> average_pool(const Tensor<T>& x, const PoolSpec& spec)
{
    const shape_t xs = x.shape();
    const Geometry g = geometry("average_pool", xs, spec);
    array_t<T> out = array_t<T>::from_shape(output_shape(xs, g, spec.pool_size.size()));
    average_forward(g, x.data(), out.data());
    Tensor<T> y(std::move(out));
    if (should_record<T>({ &x }))
        record_op<T>("average_pool", { x }, y, [g](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
            if (dx[0])
                average_backward(g, dy.data(), dx[0]->data());
        });
    return y;
}

// ---- global pooling -------------------------------------------------------------------------------------

namespace {

/// (batch, steps, C) for channels_last, (batch, C, steps) for channels_first; steps = the product
/// of the spatial axes.
struct GlobalGeometry {
    std::size_t n = 0, c = 0, steps = 0;
    bool channels_first = false;
    shape_t out;
};

GlobalGeometry global_geometry(const char* op, const shape_t& xs, bool channels_first, bool keepdims)
{
    if (xs.size() < 3)
        throw ShapeError(std::string(op) + ": expected an input of rank 3 or more (batch, spatial axes and "
                                           "channels), got shape " +
                         shape_str(xs));
    GlobalGeometry g;
    g.channels_first = channels_first;
    g.n = xs[0];
    g.c = channels_first ? xs[1] : xs.back();
    g.steps = 1;
    const std::size_t first = channels_first ? 2 : 1;
    for (std::size_t i = first; i < first + xs.size() - 2; ++i)
        g.steps *= xs[i];
    if (!keepdims) {
        g.out = { g.n, g.c };
    } else {
        g.out.assign(xs.size(), 1);
        g.out[0] = g.n;
        g.out[channels_first ? 1 : xs.size() - 1] = g.c;
    }
    return g;
}

} // namespace

template <class T>
Tensor<T> global_average_pool(const Tensor<T>& x, bool channels_first, bool keepdims, const Tensor<T>& mask)
{
    const shape_t xs = x.shape();
    const GlobalGeometry g = global_geometry("global_average_pool", xs, channels_first, keepdims);
    const T* mp = nullptr;
    if (mask.defined()) {
        if (xs.size() != 3 || mask.shape() != shape_t{ g.n, g.steps })
            throw ShapeError("global_average_pool: expected a mask of shape " +
                             shape_str(shape_t{ g.n, xs.size() == 3 ? g.steps : 0 }) +
                             " (batch, steps) for an input of shape " + shape_str(xs) + ", got mask shape " +
                             shape_str(mask.shape()));
        mp = mask.data();
    }
    // scale[n]: 1 / (the number of steps that count) of each sample.
    auto scale = std::make_shared<std::vector<double>>(g.n, g.steps ? 1.0 / static_cast<double>(g.steps) : 0.0);
    if (mp)
        for (std::size_t n = 0; n < g.n; ++n) {
            std::size_t kept = 0;
            for (std::size_t s = 0; s < g.steps; ++s)
                kept += mp[n * g.steps + s] != T(0);
            (*scale)[n] = 1.0 / static_cast<double>(kept); // inf when nothing is kept: 0 * inf = NaN, as Keras's 0 / 0
        }
    array_t<T> out = array_t<T>::from_shape(g.out);
    const T* xp = x.data();
    T* yp = out.data();
    const std::size_t S = g.steps, C = g.c;
    if (!channels_first) {
        parallel_for(
            g.n,
            [&](std::size_t n0, std::size_t n1) {
                std::vector<double> acc(C);
                for (std::size_t n = n0; n < n1; ++n) {
                    std::fill(acc.begin(), acc.end(), 0.0);
                    for (std::size_t s = 0; s < S; ++s) {
                        if (mp && mp[n * S + s] == T(0))
                            continue;
                        const T* xr = xp + (n * S + s) * C;
                        for (std::size_t ch = 0; ch < C; ++ch)
                            acc[ch] += xr[ch];
                    }
                    for (std::size_t ch = 0; ch < C; ++ch)
                        yp[n * C + ch] = static_cast<T>(acc[ch] * (*scale)[n]);
                }
            },
            S * C);
    } else {
        parallel_for(
            g.n * C,
            [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p) {
                    const std::size_t n = p / C;
                    const T* xr = xp + p * S;
                    double acc = 0.0;
                    for (std::size_t s = 0; s < S; ++s)
                        if (!mp || mp[n * S + s] != T(0))
                            acc += xr[s];
                    yp[p] = static_cast<T>(acc * (*scale)[n]);
                }
            },
            S);
    }
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    // d mean / d x[s] = 1 / count for each step that counts, 0 for masked steps.
    record_op<T>("global_average_pool", { x }, y,
                 [g, scale, mask](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     if (!dx[0])
                         return;
                     const T* m = mask.defined() ? mask.data() : nullptr;
                     const T* gy = dy.data();
                     T* d = dx[0]->data();
                     const std::size_t S = g.steps, C = g.c;
                     if (!g.channels_first) {
                         parallel_for(
                             g.n,
                             [&](std::size_t n0, std::size_t n1) {
                                 for (std::size_t n = n0; n < n1; ++n) {
                                     const T sc = static_cast<T>((*scale)[n]);
                                     for (std::size_t s = 0; s < S; ++s) {
                                         if (m && m[n * S + s] == T(0))
                                             continue;
                                         T* dr = d + (n * S + s) * C;
                                         for (std::size_t ch = 0; ch < C; ++ch)
                                             dr[ch] += gy[n * C + ch] * sc;
                                     }
                                 }
                             },
                             S * C);
                     } else {
                         parallel_for(
                             g.n * C,
                             [&](std::size_t p0, std::size_t p1) {
                                 for (std::size_t p = p0; p < p1; ++p) {
                                     const std::size_t n = p / C;
                                     const T v = gy[p] * static_cast<T>((*scale)[n]);
                                     T* dr = d + p * S;
                                     for (std::size_t s = 0; s < S; ++s)
                                         if (!m || m[n * S + s] != T(0))
                                             dr[s] += v;
                                 }
                             },
                             S);
                     }
                 });
    return y;
}

template <class T>
Tensor<T> global_max_pool(const Tensor<T>& x, bool channels_first, bool keepdims)
{
    const shape_t xs = x.shape();
    const GlobalGeometry g = global_geometry("global_max_pool", xs, channels_first, keepdims);
    if (g.steps == 0)
        throw ShapeError("global_max_pool: cannot take the maximum over zero steps, got shape " + shape_str(xs));
    const std::size_t S = g.steps, C = g.c;
    array_t<T> out = array_t<T>::from_shape(g.out);
    // arg[n * C + ch]: the step of the first maximum.
    auto arg = std::make_shared<std::vector<std::size_t>>(g.n * C, 0);
    const T* xp = x.data();
    T* yp = out.data();
    std::size_t* ap = arg->data();
    if (!channels_first) {
        parallel_for(
            g.n,
            [&](std::size_t n0, std::size_t n1) {
                for (std::size_t n = n0; n < n1; ++n) {
                    T* yo = yp + n * C;
                    std::size_t* ao = ap + n * C;
                    std::copy(xp + n * S * C, xp + n * S * C + C, yo);
                    for (std::size_t s = 1; s < S; ++s) {
                        const T* xr = xp + (n * S + s) * C;
                        for (std::size_t ch = 0; ch < C; ++ch)
                            if (xr[ch] > yo[ch]) {
                                yo[ch] = xr[ch];
                                ao[ch] = s;
                            }
                    }
                }
            },
            S * C);
    } else {
        parallel_for(
            g.n * C,
            [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p) {
                    const T* xr = xp + p * S;
                    std::size_t best = 0;
                    for (std::size_t s = 1; s < S; ++s)
                        if (xr[s] > xr[best])
                            best = s;
                    yp[p] = xr[best];
                    ap[p] = best;
                }
            },
            S);
    }
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>("global_max_pool", { x }, y, [g, arg](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
        if (!dx[0])
            return;
        const std::size_t* a = arg->data();
        const T* gy = dy.data();
        T* d = dx[0]->data();
        const std::size_t S = g.steps, C = g.c;
        // Each (sample, channel) sends its gradient to one element of its own: no two write the same.
        for (std::size_t i = 0; i < g.n * C; ++i) {
            const std::size_t n = i / C, ch = i % C;
            d[g.channels_first ? i * S + a[i] : (n * S + a[i]) * C + ch] += gy[i];
        }
    });
    return y;
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> max_pool(const Tensor<T>&, const PoolSpec&);                                          \
    template Tensor<T> average_pool(const Tensor<T>&, const PoolSpec&);                                      \
    template Tensor<T> global_average_pool(const Tensor<T>&, bool, bool, const Tensor<T>&);                  \
    template Tensor<T> global_max_pool(const Tensor<T>&, bool, bool);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
