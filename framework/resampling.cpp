// Padding, cropping and up-sampling kernels and their ops (framework/resampling.hpp).
#include "framework/resampling.hpp"

#include "framework/errors.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

namespace xtape {

namespace {

std::vector<std::size_t> strides_of(const shape_t& s)
{
    std::vector<std::size_t> st(s.size(), 1);
    for (std::size_t d = s.size(); d-- > 1;)
        st[d - 1] = st[d] * s[d];
    return st;
}

/// Copies (Add = false) or adds (Add = true) the box of `extent` that starts at src_start in src
/// to the box at dst_start in dst, row by row over the innermost axis.
template <class T, bool Add>
void copy_box(const T* src, const shape_t& src_shape, const shape_t& src_start, T* dst, const shape_t& dst_shape,
              const shape_t& dst_start, const shape_t& extent)
{
    const std::size_t nd = extent.size();
    if (shape_size(extent) == 0)
        return;
    if (nd == 0) {
        dst[0] = Add ? dst[0] + src[0] : src[0];
        return;
    }
    const auto ss = strides_of(src_shape), ds = strides_of(dst_shape);
    const std::size_t run = extent[nd - 1];
    const std::size_t rows = shape_size(extent) / run;
    parallel_for(
        rows,
        [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                std::size_t rem = r, so = src_start[nd - 1], dof = dst_start[nd - 1];
                for (std::size_t d = nd - 1; d-- > 0;) {
                    const std::size_t i = rem % extent[d];
                    rem /= extent[d];
                    so += (src_start[d] + i) * ss[d];
                    dof += (dst_start[d] + i) * ds[d];
                }
                const T* s = src + so;
                T* t = dst + dof;
                if (Add) {
                    for (std::size_t j = 0; j < run; ++j)
                        t[j] += s[j];
                } else {
                    std::copy(s, s + run, t);
                }
            }
        },
        run);
}

void check_widths(const char* op, const shape_t& xs, const pad_widths_t& w)
{
    if (w.size() != xs.size())
        throw ValueError(std::string(op) + ": expected one (before, after) pair per axis of the input of shape " +
                         shape_str(xs) + ", got " + std::to_string(w.size()) + " pairs");
}

std::string widths_str(const pad_widths_t& w)
{
    std::string s = "(";
    for (std::size_t i = 0; i < w.size(); ++i)
        s += (i ? ", (" : "(") + std::to_string(w[i].first) + ", " + std::to_string(w[i].second) + ")";
    return s + ")";
}

} // namespace

template <class T>
Tensor<T> zero_pad(const Tensor<T>& x, const pad_widths_t& pads)
{
    const shape_t xs = x.shape();
    check_widths("zero_pad", xs, pads);
    shape_t so = xs, before(xs.size()), zero(xs.size(), 0);
    for (std::size_t d = 0; d < xs.size(); ++d) {
        so[d] += pads[d].first + pads[d].second;
        before[d] = pads[d].first;
    }
    array_t<T> out = array_t<T>::from_shape(so);
    T* op = out.data();
    parallel_for(out.size(), [op](std::size_t b, std::size_t e) { std::fill(op + b, op + e, T(0)); });
    copy_box<T, false>(x.data(), xs, zero, op, so, before, xs);
    Tensor<T> y(std::move(out));
    if (should_record<T>({ &x }))
        // d y[before + i] / d x[i] = 1; the padding depends on nothing.
        record_op<T>("zero_pad", { x }, y, [xs, so, before, zero](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
            if (dx[0])
                copy_box<T, true>(dy.data(), so, before, dx[0]->data(), xs, zero, xs);
        });
    return y;
}

template <class T>
Tensor<T> crop(const Tensor<T>& x, const pad_widths_t& crops)
{
    const shape_t xs = x.shape();
    check_widths("crop", xs, crops);
    shape_t so = xs, before(xs.size()), zero(xs.size(), 0);
    for (std::size_t d = 0; d < xs.size(); ++d) {
        if (crops[d].first + crops[d].second >= xs[d] && crops[d].first + crops[d].second > 0)
            throw ShapeError("crop: the widths " + widths_str(crops) +
                             " must be smaller than the input's dimensions, got shape " + shape_str(xs));
        so[d] -= crops[d].first + crops[d].second;
        before[d] = crops[d].first;
    }
    array_t<T> out = array_t<T>::from_shape(so);
    copy_box<T, false>(x.data(), xs, before, out.data(), so, zero, so);
    Tensor<T> y(std::move(out));
    if (should_record<T>({ &x }))
        // The cropped-away elements get no gradient: the tape's zero-filled dx keeps them at 0.
        record_op<T>("crop", { x }, y, [xs, so, before, zero](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
            if (dx[0])
                copy_box<T, true>(dy.data(), so, zero, dx[0]->data(), xs, before, so);
        });
    return y;
}

template <class T>
Tensor<T> repeat_elements(const Tensor<T>& x, const std::vector<std::size_t>& repeats)
{
    const shape_t xs = x.shape();
    const std::size_t nd = xs.size();
    bool ok = repeats.size() == nd && nd > 0;
    for (std::size_t d = 0; ok && d < nd; ++d)
        ok = repeats[d] > 0;
    if (!ok)
        throw ValueError("repeat_elements: expected one positive repeat count per axis of the input of shape " +
                         shape_str(xs) + ", got " + shape_str(repeats));
    shape_t so = xs;
    for (std::size_t d = 0; d < nd; ++d)
        so[d] *= repeats[d];
    array_t<T> out = array_t<T>::from_shape(so);
    const auto xst = strides_of(xs);
    const std::size_t run = so[nd - 1], rep_last = repeats[nd - 1];
    const std::size_t rows = run ? out.size() / run : 0;
    // The input offset of output row r (all axes but the last).
    auto source_row = [so, xst, repeats, nd](std::size_t r) {
        std::size_t off = 0;
        for (std::size_t d = nd - 1; d-- > 0;) {
            off += (r % so[d]) / repeats[d] * xst[d];
            r /= so[d];
        }
        return off;
    };
    const T* xp = x.data();
    T* yp = out.data();
    parallel_for(
        rows,
        [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                const T* s = xp + source_row(r);
                T* t = yp + r * run;
                if (rep_last == 1) {
                    std::copy(s, s + run, t);
                } else {
                    for (std::size_t j = 0; j < run / rep_last; ++j)
                        std::fill(t + j * rep_last, t + (j + 1) * rep_last, s[j]);
                }
            }
        },
        run);
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>("repeat_elements", { x }, y,
                 [so, repeats, rows, run, rep_last, source_row](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     if (!dx[0])
                         return;
                     const T* g = dy.data();
                     T* d = dx[0]->data();
                     // Output rows that share a source share its leading index when the leading
                     // axis is not repeated, so blocks of the leading axis can run in parallel;
                     // otherwise (rank 1, or a repeated leading axis) one thread walks all rows.
                     const std::size_t blocks = so.size() > 1 && repeats[0] == 1 ? so[0] : 1;
                     const std::size_t per_block = rows / blocks;
                     parallel_for(
                         blocks,
                         [&](std::size_t b0, std::size_t b1) {
                             for (std::size_t r = b0 * per_block; r < b1 * per_block; ++r) {
                                 T* t = d + source_row(r);
                                 const T* s = g + r * run;
                                 // Nested loops rather than t[j / rep_last]: with a division per
                                 // element the backward of UpSampling2D 2x2 on 128x14x14x64 floats
                                 // took 31 ms at one thread, 9-13 ms without (loaded machine).
                                 for (std::size_t j = 0; j < run / rep_last; ++j)
                                     for (std::size_t k = 0; k < rep_last; ++k)
                                         t[j] += s[j * rep_last + k];
                             }
                         },
                         per_block * run);
                 });
    return y;
}

// ---- bilinear up-sampling --------------------------------------------------------------------------------

namespace {

/// For each output index along an axis: the two input indices it reads and the weight of the second
/// (TensorFlow's compute_interpolation_weights with half-pixel centres).
struct Lerp {
    std::vector<std::size_t> lo, hi;
    std::vector<double> frac;
};

Lerp lerp_weights(std::size_t in, std::size_t factor)
{
    Lerp l;
    const std::size_t out = in * factor;
    l.lo.resize(out);
    l.hi.resize(out);
    l.frac.resize(out);
    for (std::size_t o = 0; o < out; ++o) {
        const double src = (static_cast<double>(o) + 0.5) / static_cast<double>(factor) - 0.5;
        const double f = std::floor(src);
        l.lo[o] = static_cast<std::size_t>(std::max(f, 0.0));
        l.hi[o] = std::min(static_cast<std::size_t>(std::max(std::ceil(src), 0.0)), in - 1);
        l.frac[o] = src - f;
    }
    return l;
}

} // namespace

template <class T>
Tensor<T> upsample_bilinear(const Tensor<T>& x, std::size_t fh, std::size_t fw, bool channels_first)
{
    const shape_t xs = x.shape();
    if (xs.size() != 4 || fh == 0 || fw == 0)
        throw ValueError("upsample_bilinear: expected a rank-4 input and positive factors, got shape " + shape_str(xs) +
                         " and factors (" + std::to_string(fh) + ", " + std::to_string(fw) + ")");
    const std::size_t n = xs[0], c = channels_first ? xs[1] : xs[3];
    const std::size_t h = channels_first ? xs[2] : xs[1], w = channels_first ? xs[3] : xs[2];
    const std::size_t oh = h * fh, ow = w * fw;
    const shape_t so = channels_first ? shape_t{ n, c, oh, ow } : shape_t{ n, oh, ow, c };
    array_t<T> out = array_t<T>::from_shape(so);
    Tensor<T> y;
    if (out.size() == 0) {
        y = Tensor<T>(std::move(out));
        return y;
    }
    auto ly = std::make_shared<const Lerp>(lerp_weights(h, fh));
    auto lx = std::make_shared<const Lerp>(lerp_weights(w, fw));
    const T* xp = x.data();
    T* yp = out.data();
    if (!channels_first) {
        parallel_for(
            n * oh,
            [&](std::size_t r0, std::size_t r1) {
                for (std::size_t r = r0; r < r1; ++r) {
                    const std::size_t b = r / oh, i = r % oh;
                    const T fy = static_cast<T>(ly->frac[i]);
                    const T* top = xp + (b * h + ly->lo[i]) * w * c;
                    const T* bot = xp + (b * h + ly->hi[i]) * w * c;
                    for (std::size_t j = 0; j < ow; ++j) {
                        const T fx = static_cast<T>(lx->frac[j]);
                        const T* tl = top + lx->lo[j] * c;
                        const T* tr = top + lx->hi[j] * c;
                        const T* bl = bot + lx->lo[j] * c;
                        const T* br = bot + lx->hi[j] * c;
                        T* o = yp + (r * ow + j) * c;
                        for (std::size_t ch = 0; ch < c; ++ch) {
                            const T t = tl[ch] + (tr[ch] - tl[ch]) * fx;
                            const T u = bl[ch] + (br[ch] - bl[ch]) * fx;
                            o[ch] = t + (u - t) * fy;
                        }
                    }
                }
            },
            ow * c);
    } else {
        parallel_for(
            n * c,
            [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p) {
                    const T* plane = xp + p * h * w;
                    T* o = yp + p * oh * ow;
                    for (std::size_t i = 0; i < oh; ++i) {
                        const T fy = static_cast<T>(ly->frac[i]);
                        const T* top = plane + ly->lo[i] * w;
                        const T* bot = plane + ly->hi[i] * w;
                        for (std::size_t j = 0; j < ow; ++j) {
                            const T fx = static_cast<T>(lx->frac[j]);
                            const T t = top[lx->lo[j]] + (top[lx->hi[j]] - top[lx->lo[j]]) * fx;
                            const T u = bot[lx->lo[j]] + (bot[lx->hi[j]] - bot[lx->lo[j]]) * fx;
                            o[i * ow + j] = t + (u - t) * fy;
                        }
                    }
                }
            },
            oh * ow);
    }
    y = Tensor<T>(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    // y = (1-fy)(1-fx) tl + (1-fy) fx tr + fy (1-fx) bl + fy fx br: each corner gets dy times its weight.
    record_op<T>("upsample_bilinear", { x }, y,
                 [=](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     if (!dx[0])
                         return;
                     const T* g = dy.data();
                     T* d = dx[0]->data();
                     // Corners of neighbouring outputs coincide, so one sample (channels_last) or one
                     // plane (channels_first) per task.
                     const std::size_t tasks = channels_first ? n * c : n;
                     const std::size_t inner = channels_first ? 1 : c;
                     parallel_for(
                         tasks,
                         [&](std::size_t t0, std::size_t t1) {
                             for (std::size_t t = t0; t < t1; ++t) {
                                 T* dt = d + t * h * w * inner;
                                 const T* gt = g + t * oh * ow * inner;
                                 for (std::size_t i = 0; i < oh; ++i) {
                                     const T fy = static_cast<T>(ly->frac[i]);
                                     T* top = dt + ly->lo[i] * w * inner;
                                     T* bot = dt + ly->hi[i] * w * inner;
                                     for (std::size_t j = 0; j < ow; ++j) {
                                         const T fx = static_cast<T>(lx->frac[j]);
                                         const T* gj = gt + (i * ow + j) * inner;
                                         const std::size_t lo = lx->lo[j] * inner, hi = lx->hi[j] * inner;
                                         for (std::size_t ch = 0; ch < inner; ++ch) {
                                             const T v = gj[ch];
                                             top[lo + ch] += v * (1 - fy) * (1 - fx);
                                             top[hi + ch] += v * (1 - fy) * fx;
                                             bot[lo + ch] += v * fy * (1 - fx);
                                             bot[hi + ch] += v * fy * fx;
                                         }
                                     }
                                 }
                             }
                         },
                         oh * ow * inner);
                 });
    return y;
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> zero_pad(const Tensor<T>&, const pad_widths_t&);                                      \
    template Tensor<T> crop(const Tensor<T>&, const pad_widths_t&);                                          \
    template Tensor<T> repeat_elements(const Tensor<T>&, const std::vector<std::size_t>&);                   \
    template Tensor<T> upsample_bilinear(const Tensor<T>&, std::size_t, std::size_t, bool);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
