// NumPy broadcasting for binary ops: shape resolution and an index walker that gives, for
// each element of the output, the flat offsets of the two inputs. Internal to framework/.
#pragma once

#include "framework/errors.hpp"
#include "framework/parallel.hpp"
#include "framework/tensor.hpp"

#include <string>

namespace xtape::kernels {

inline shape_t broadcast_shapes(const shape_t& a, const shape_t& b, const char* op)
{
    const std::size_t n = std::max(a.size(), b.size());
    shape_t out(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        const std::size_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        if (da != db && da != 1 && db != 1)
            throw ShapeError(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                             " cannot be broadcast together");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

/// Strides of `in` (row-major, right-aligned) in the coordinates of `out`, 0 where broadcast.
inline std::vector<std::size_t> broadcast_strides(const shape_t& in, const shape_t& out)
{
    std::vector<std::size_t> st(out.size(), 0);
    std::size_t s = 1;
    for (std::size_t k = 0; k < in.size(); ++k) {
        const std::size_t i = in.size() - 1 - k, o = out.size() - 1 - k;
        st[o] = in[i] == 1 ? 0 : s;
        s *= in[i];
    }
    return st;
}

/// Calls f(i, ia, ib) for every flat output index i with the matching input offsets.
/// Rows of the last dimension are walked in [row_begin, row_end).
template <class F>
void walk_rows(const shape_t& out, const std::vector<std::size_t>& sa, const std::vector<std::size_t>& sb,
               std::size_t row_begin, std::size_t row_end, F&& f)
{
    const std::size_t nd = out.size();
    const std::size_t inner = nd ? out[nd - 1] : 1;
    const std::size_t la = nd ? sa[nd - 1] : 0, lb = nd ? sb[nd - 1] : 0;
    for (std::size_t r = row_begin; r < row_end; ++r) {
        std::size_t rem = r, oa = 0, ob = 0;
        for (std::size_t d = nd ? nd - 1 : 0; d-- > 0;) { // rank 0: no leading dims (nd - 1 would wrap)
            const std::size_t c = rem % out[d];
            rem /= out[d];
            oa += c * sa[d];
            ob += c * sb[d];
        }
        const std::size_t base = r * inner;
        for (std::size_t j = 0; j < inner; ++j)
            f(base + j, oa + j * la, ob + j * lb);
    }
}

inline std::size_t row_count(const shape_t& out)
{
    if (out.empty())
        return 1;
    return out.back() == 0 ? 0 : shape_size(out) / out.back();
}

/// Forward walk over the output, in parallel (each output element written once).
template <class F>
void for_each_broadcast(const shape_t& out, const shape_t& a, const shape_t& b, F&& f)
{
    const auto sa = broadcast_strides(a, out), sb = broadcast_strides(b, out);
    const std::size_t rows = row_count(out);
    const std::size_t inner = out.empty() ? 1 : out.back();
    parallel_for(
        rows, [&](std::size_t rb, std::size_t re) { walk_rows(out, sa, sb, rb, re, f); }, inner);
}

/// Serial walk, for backward passes that accumulate into a broadcast input (no races, and
/// a fixed order so the result does not depend on the thread count).
template <class F>
void for_each_broadcast_serial(const shape_t& out, const shape_t& a, const shape_t& b, F&& f)
{
    const auto sa = broadcast_strides(a, out), sb = broadcast_strides(b, out);
    walk_rows(out, sa, sb, 0, row_count(out), f);
}

} // namespace xtape::kernels
