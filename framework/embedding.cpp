#include "framework/embedding.hpp"

#include "framework/config.hpp"
#include "framework/errors.hpp"
#include "framework/kernels/grad_slot.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace xtape {
namespace {

/// "[0,1]": the position of flat element f in `shape`, as TensorFlow prints it.
std::string position(std::size_t f, const shape_t& shape)
{
    std::vector<std::size_t> c(shape.size());
    for (std::size_t i = shape.size(); i-- > 0;) {
        c[i] = f % shape[i];
        f /= shape[i];
    }
    std::string s = "[";
    for (std::size_t i = 0; i < c.size(); ++i)
        s += (i ? "," : "") + std::to_string(c[i]);
    return s + "]";
}

} // namespace

template <class T>
Tensor<T> embedding_lookup(const Tensor<T>& indices, const Tensor<T>& table)
{
    if (table.dim() != 2)
        throw ShapeError("embedding_lookup: the table must be of rank 2 (input_dim, output_dim), got shape " +
                         shape_str(table.shape()));
    const std::size_t V = table.shape()[0], D = table.shape()[1], N = indices.size();
    const shape_t is = indices.shape();
    // The row of each index, checked once; the backward reuses them.
    auto rows = std::make_shared<std::vector<std::size_t>>(N);
    const T* ip = indices.data();
    for (std::size_t i = 0; i < N; ++i) {
        const T v = ip[i];
        if (!(v >= 0 && v < static_cast<T>(V)) || v != std::floor(v))
            throw ValueError("embedding_lookup: indices" + position(i, is) + " = " + json(v).dump() +
                             " is not in [0, " + std::to_string(V) + ")");
        (*rows)[i] = static_cast<std::size_t>(v);
    }
    shape_t ys = is;
    ys.push_back(D);
    array_t<T> yv = array_t<T>::from_shape(ys);
    const T* tp = table.data();
    T* yp = yv.data();
    parallel_for(
        N, [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i)
                std::memcpy(yp + i * D, tp + (*rows)[i] * D, D * sizeof(T));
        },
        D);
    Tensor<T> y(std::move(yv));
    if (!should_record<T>({ &table }))
        return y;
    record_op<T>("embedding_lookup", { indices, table }, y,
                 FirstAwareBackwardFn<T>([rows, D](const array_t<T>& dy, const std::vector<array_t<T>*>& dx,
                                                   const std::vector<bool>& first) {
                     // The indices are data: a tape that watches them gets zeros (a first contribution
                     // must be written).
                     if (dx[0] && first[0])
                         std::fill(dx[0]->begin(), dx[0]->end(), T(0));
                     T* g = kernels::accumulating_slot(dx, first, 1);
                     if (!g)
                         return;
                     const T* d = dy.data();
                     const std::size_t n = rows->size();
                     // Column ranges per thread: each element sums its terms in index order.
                     parallel_for(
                         D, [&](std::size_t c0, std::size_t c1) {
                             for (std::size_t i = 0; i < n; ++i) {
                                 T* gr = g + (*rows)[i] * D;
                                 const T* dr = d + i * D;
                                 for (std::size_t c = c0; c < c1; ++c)
                                     gr[c] += dr[c];
                             }
                         },
                         n);
                 }));
    return y;
}

template Tensor<float> embedding_lookup(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> embedding_lookup(const Tensor<double>&, const Tensor<double>&);

} // namespace xtape
