// Shape ops: they move elements without changing them, so every backward is the same move
// run in reverse (dx += dy routed back to where each element came from).
#include "framework/kernels/axes.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <string>

namespace xtape {
namespace {

/// Calls f(out_index, in_offset) for every element of the output of a permutation, where
/// in_stride[k] is the input stride of output axis k. Each input element is visited once, so
/// f may write to either side in parallel.
template <class F>
void permute_walk(const shape_t& so, const std::vector<std::size_t>& in_stride, F&& f)
{
    const std::size_t nd = so.size();
    if (nd == 0) {
        f(std::size_t(0), std::size_t(0));
        return;
    }
    const std::size_t inner = so[nd - 1], step = in_stride[nd - 1];
    const std::size_t rows = inner ? shape_size(so) / inner : 0;
    parallel_for(
        rows,
        [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                std::size_t rem = r, off = 0;
                for (std::size_t d = nd - 1; d-- > 0;) {
                    off += (rem % so[d]) * in_stride[d];
                    rem /= so[d];
                }
                const std::size_t base = r * inner;
                for (std::size_t j = 0; j < inner; ++j)
                    f(base + j, off + j * step);
            }
        },
        inner);
}

/// A copy of x with another shape of the same size; backward adds dy back element for element.
template <class T>
Tensor<T> reshaped_copy(const char* name, const Tensor<T>& x, const shape_t& shape)
{
    array_t<T> out = array_t<T>::from_shape(shape);
    const T* xp = x.data();
    T* op = out.data();
    parallel_for(x.size(), [&](std::size_t b, std::size_t e) { std::copy(xp + b, xp + e, op + b); });
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>(name, { x }, y, [](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
        if (!dx[0])
            return;
        const T* g = dy.data();
        T* d = dx[0]->data();
        parallel_for(dy.size(), [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i)
                d[i] += g[i];
        });
    });
    return y;
}

} // namespace

template <class T>
Tensor<T> transpose(const Tensor<T>& x, const std::vector<std::size_t>& perm_in)
{
    const shape_t sx = x.shape();
    const std::size_t nd = sx.size();
    std::vector<std::size_t> perm = perm_in;
    if (perm.empty()) {
        perm.resize(nd);
        for (std::size_t i = 0; i < nd; ++i)
            perm[i] = nd - 1 - i;
    }
    std::vector<std::size_t> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    bool valid = perm.size() == nd;
    for (std::size_t i = 0; valid && i < nd; ++i)
        valid = sorted[i] == i;
    if (!valid)
        throw ValueError("transpose: perm " + shape_str(perm) +
                         " is not a permutation of the axes of a tensor of shape " + shape_str(sx));
    std::vector<std::size_t> st(nd, 1);
    for (std::size_t d = nd; d-- > 1;)
        st[d - 1] = st[d] * sx[d];
    shape_t so(nd);
    std::vector<std::size_t> in_stride(nd);
    for (std::size_t k = 0; k < nd; ++k) {
        so[k] = sx[perm[k]];
        in_stride[k] = st[perm[k]];
    }
    array_t<T> out = array_t<T>::from_shape(so);
    const T* xp = x.data();
    T* op = out.data();
    permute_walk(so, in_stride, [&](std::size_t i, std::size_t ix) { op[i] = xp[ix]; });
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>("transpose", { x }, y,
                 [so, in_stride](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     if (!dx[0])
                         return;
                     const T* g = dy.data();
                     T* d = dx[0]->data();
                     permute_walk(so, in_stride, [&](std::size_t i, std::size_t ix) { d[ix] += g[i]; });
                 });
    return y;
}

template <class T>
Tensor<T> reshape(const Tensor<T>& x, const std::vector<long>& shape)
{
    const shape_t sx = x.shape();
    std::size_t known = 1;
    int inferred = -1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1) {
            if (inferred >= 0)
                throw ValueError("reshape: only one dimension can be -1, got target shape " +
                                 shape_str(shape));
            inferred = static_cast<int>(i);
        } else if (shape[i] < 0) {
            throw ValueError("reshape: invalid dimension " + std::to_string(shape[i]) + " in target shape " +
                             shape_str(shape));
        } else {
            known *= static_cast<std::size_t>(shape[i]);
        }
    }
    shape_t so(shape.size());
    for (std::size_t i = 0; i < shape.size(); ++i)
        so[i] = shape[i] < 0 ? 0 : static_cast<std::size_t>(shape[i]);
    if (inferred >= 0) {
        if (known == 0 || x.size() % known != 0)
            throw ShapeError("reshape: cannot reshape a tensor of shape " + shape_str(sx) + " (" +
                             std::to_string(x.size()) + " elements) into shape " + shape_str(shape));
        so[static_cast<std::size_t>(inferred)] = x.size() / known;
    } else if (known != x.size()) {
        throw ShapeError("reshape: cannot reshape a tensor of shape " + shape_str(sx) + " (" +
                         std::to_string(x.size()) + " elements) into shape " + shape_str(shape) + " (" +
                         std::to_string(known) + " elements)");
    }
    return reshaped_copy("reshape", x, so);
}

template <class T>
Tensor<T> expand_dims(const Tensor<T>& x, int axis)
{
    // The new axis may go anywhere in [0, rank], so negative axes count in rank + 1 (as NumPy).
    shape_t s = x.shape();
    const std::size_t a = kernels::normalize_axis(axis, s.size() + 1, "expand_dims");
    s.insert(s.begin() + static_cast<long>(a), 1);
    return reshaped_copy("expand_dims", x, s);
}

template <class T>
Tensor<T> squeeze(const Tensor<T>& x, int axis)
{
    shape_t s = x.shape();
    const std::size_t a = kernels::normalize_axis(axis, s.size(), "squeeze");
    if (s[a] != 1)
        throw ShapeError("squeeze: axis " + std::to_string(axis) + " of a tensor of shape " + shape_str(s) +
                         " has size " + std::to_string(s[a]) + ", not 1");
    s.erase(s.begin() + static_cast<long>(a));
    return reshaped_copy("squeeze", x, s);
}

template <class T>
Tensor<T> concatenate(const std::vector<Tensor<T>>& xs, int axis)
{
    if (xs.empty())
        throw ValueError("concatenate: needs at least one tensor, got an empty list");
    const shape_t s0 = xs[0].shape();
    if (s0.empty())
        throw ShapeError("concatenate: cannot concatenate tensors of rank 0 (scalars)");
    const std::size_t a = kernels::normalize_axis(axis, s0.size(), "concatenate");
    shape_t so = s0;
    so[a] = 0;
    std::vector<std::size_t> dims(xs.size()), offsets(xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const shape_t si = xs[i].shape();
        bool fits = si.size() == s0.size();
        for (std::size_t d = 0; fits && d < si.size(); ++d)
            fits = d == a || si[d] == s0[d];
        if (!fits)
            throw ShapeError("concatenate: along axis " + std::to_string(axis) +
                             " all shapes must match except on that axis; input 0 has shape " +
                             shape_str(s0) + " but input " + std::to_string(i) + " has shape " +
                             shape_str(si));
        dims[i] = si[a];
        offsets[i] = so[a];
        so[a] += si[a];
    }
    std::size_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < a; ++d)
        outer *= so[d];
    for (std::size_t d = a + 1; d < so.size(); ++d)
        inner *= so[d];
    const std::size_t total = so[a];
    array_t<T> out = array_t<T>::from_shape(so);
    T* op = out.data();
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const T* xp = xs[i].data();
        const std::size_t block = dims[i] * inner, dst = offsets[i] * inner;
        parallel_for(
            outer,
            [&](std::size_t o0, std::size_t o1) {
                for (std::size_t o = o0; o < o1; ++o)
                    std::copy(xp + o * block, xp + (o + 1) * block, op + o * total * inner + dst);
            },
            block);
    }
    Tensor<T> y(std::move(out));
    if (!should_record<T>(xs))
        return y;
    record_op<T>(
        "concatenate", xs, y,
        [dims, offsets, outer, inner, total](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
            const T* g = dy.data();
            // Inputs one after the other: the same tensor passed twice gets both parts.
            for (std::size_t i = 0; i < dx.size(); ++i) {
                if (!dx[i])
                    continue;
                T* d = dx[i]->data();
                const std::size_t block = dims[i] * inner, src = offsets[i] * inner;
                parallel_for(
                    outer,
                    [&](std::size_t o0, std::size_t o1) {
                        for (std::size_t o = o0; o < o1; ++o) {
                            const T* gs = g + o * total * inner + src;
                            T* ds = d + o * block;
                            for (std::size_t j = 0; j < block; ++j)
                                ds[j] += gs[j];
                        }
                    },
                    block);
            }
        });
    return y;
}

template <class T>
Tensor<T> slice(const Tensor<T>& x, int axis, std::size_t begin, std::size_t end)
{
    const shape_t sx = x.shape();
    const std::size_t a = kernels::normalize_axis(axis, sx.size(), "slice");
    if (begin > end || end > sx[a])
        throw ValueError("slice: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                         ") is not within axis " + std::to_string(axis) + " of a tensor of shape " +
                         shape_str(sx));
    std::size_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < a; ++d)
        outer *= sx[d];
    for (std::size_t d = a + 1; d < sx.size(); ++d)
        inner *= sx[d];
    shape_t so = sx;
    so[a] = end - begin;
    const std::size_t in_block = sx[a] * inner, out_block = so[a] * inner, src = begin * inner;
    array_t<T> out = array_t<T>::from_shape(so);
    const T* xp = x.data();
    T* op = out.data();
    parallel_for(
        outer,
        [&](std::size_t o0, std::size_t o1) {
            for (std::size_t o = o0; o < o1; ++o)
                std::copy(xp + o * in_block + src, xp + o * in_block + src + out_block, op + o * out_block);
        },
        out_block);
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>("slice", { x }, y,
                 [outer, in_block, out_block, src](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     if (!dx[0])
                         return;
                     const T* g = dy.data();
                     T* d = dx[0]->data();
                     parallel_for(
                         outer,
                         [&](std::size_t o0, std::size_t o1) {
                             for (std::size_t o = o0; o < o1; ++o)
                                 for (std::size_t j = 0; j < out_block; ++j)
                                     d[o * in_block + src + j] += g[o * out_block + j];
                         },
                         out_block);
                 });
    return y;
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> transpose(const Tensor<T>&, const std::vector<std::size_t>&);                         \
    template Tensor<T> reshape(const Tensor<T>&, const std::vector<long>&);                                  \
    template Tensor<T> expand_dims(const Tensor<T>&, int);                                                   \
    template Tensor<T> squeeze(const Tensor<T>&, int);                                                       \
    template Tensor<T> concatenate(const std::vector<Tensor<T>>&, int);                                      \
    template Tensor<T> slice(const Tensor<T>&, int, std::size_t, std::size_t);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
