// matmul and the fused linear op (x@W + b). Backward adds each product straight into the
// accumulator with gemm's beta = 1, without a temporary; a first contribution (Note [First
// gradient contributions] in tape.hpp) is written with beta = 0, which BLAS defines as not reading
// C, so the tape need not zero-fill it.
#include "framework/kernels/gemm.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"

namespace xtape {

template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b)
{
    const shape_t sa = a.shape(), sb = b.shape();
    if (sa.size() < 2 || sb.size() < 2)
        throw ShapeError("matmul: both operands need rank >= 2, got " + shape_str(sa) + " and " + shape_str(sb));
    const std::size_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
    if (sb[sb.size() - 2] != k)
        throw ShapeError("matmul: inner dimensions differ: " + shape_str(sa) + " @ " + shape_str(sb));
    const bool shared_b = sb.size() == 2;
    if (!shared_b && (sb.size() != sa.size() || !std::equal(sa.begin(), sa.end() - 2, sb.begin())))
        throw ShapeError("matmul: batch dimensions differ: " + shape_str(sa) + " @ " + shape_str(sb));
    const std::size_t batch = shape_size(sa) / (m * k == 0 ? 1 : m * k);
    shape_t so(sa.begin(), sa.end() - 1);
    so.push_back(n);
    array_t<T> out = array_t<T>::from_shape(so);
    if (shared_b) // (..., m, k) @ (k, n) is one (batch*m, k) @ (k, n) product
        kernels::gemm<T>(false, false, batch * m, n, k, T(1), a.data(), b.data(), T(0), out.data());
    else
        for (std::size_t i = 0; i < batch; ++i)
            kernels::gemm<T>(false, false, m, n, k, T(1), a.data() + i * m * k, b.data() + i * k * n, T(0),
                             out.data() + i * m * n);
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &a, &b }))
        return y;
    record_op<T>("matmul", { a, b }, y,
                 FirstAwareBackwardFn<T>([a, b, m, n, k, batch, shared_b](const array_t<T>& dy,
                                                                         const std::vector<array_t<T>*>& dx,
                                                                         const std::vector<bool>& first) {
                     // dA += dY B^T ; dB += A^T dY (each slice of a batched product is its own block).
                     const T beta_a = first[0] ? T(0) : T(1), beta_b = first[1] ? T(0) : T(1);
                     if (shared_b) {
                         if (dx[0])
                             kernels::gemm<T>(false, true, batch * m, k, n, T(1), dy.data(), b.data(), beta_a,
                                              dx[0]->data());
                         if (dx[1])
                             kernels::gemm<T>(true, false, k, n, batch * m, T(1), a.data(), dy.data(), beta_b,
                                              dx[1]->data());
                         return;
                     }
                     for (std::size_t i = 0; i < batch; ++i) {
                         if (dx[0])
                             kernels::gemm<T>(false, true, m, k, n, T(1), dy.data() + i * m * n,
                                              b.data() + i * k * n, beta_a, dx[0]->data() + i * m * k);
                         if (dx[1])
                             kernels::gemm<T>(true, false, k, n, m, T(1), a.data() + i * m * k,
                                              dy.data() + i * m * n, beta_b, dx[1]->data() + i * k * n);
                     }
                 }));
    return y;
}

template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b)
{
    const shape_t sx = x.shape(), sw = w.shape();
    if (sx.empty() || sw.size() != 2 || sx.back() != sw[0])
        throw ShapeError("linear: expected x (..., " + (sw.empty() ? std::string("?") : std::to_string(sw[0])) +
                         ") and a 2-D kernel, got x " + shape_str(sx) + " and kernel " + shape_str(sw));
    const std::size_t k = sw[0], n = sw[1], m = k ? x.size() / k : 0;
    const bool has_bias = b.defined();
    if (has_bias && (b.dim() != 1 || b.shape()[0] != n))
        throw ShapeError("linear: bias must have shape (" + std::to_string(n) + ",), got " + shape_str(b.shape()));
    shape_t so(sx.begin(), sx.end() - 1);
    so.push_back(n);
    array_t<T> out = array_t<T>::from_shape(so);
    T* op = out.data();
    if (has_bias) {
        // Fill rows with the bias and let gemm add x@W on top (beta = 1): one pass fewer.
        const T* bp = b.data();
        parallel_for(
            m,
            [&](std::size_t r0, std::size_t r1) {
                for (std::size_t r = r0; r < r1; ++r)
                    std::copy(bp, bp + n, op + r * n);
            },
            n);
    }
    kernels::gemm<T>(false, false, m, n, k, T(1), x.data(), w.data(), has_bias ? T(1) : T(0), op);
    Tensor<T> y(std::move(out));
    std::vector<Tensor<T>> inputs{ x, w };
    if (has_bias)
        inputs.push_back(b);
    if (!should_record<T>(inputs))
        return y;
    record_op<T>("linear", inputs, y,
                 FirstAwareBackwardFn<T>([x, w, m, n, k, has_bias](const array_t<T>& dy,
                                                                  const std::vector<array_t<T>*>& dx,
                                                                  const std::vector<bool>& first) {
                     if (dx[0])
                         kernels::gemm<T>(false, true, m, k, n, T(1), dy.data(), w.data(), first[0] ? T(0) : T(1),
                                          dx[0]->data());
                     if (dx[1])
                         kernels::gemm<T>(true, false, k, n, m, T(1), x.data(), dy.data(), first[1] ? T(0) : T(1),
                                          dx[1]->data());
                     if (has_bias && dx[2]) {
                         // db = column sums of dy, accumulated in double in row order, in a buffer
                         // kept per thread (no allocation per step once it has grown).
                         T* db = dx[2]->data();
                         const T* g = dy.data();
                         thread_local std::vector<double> acc;
                         acc.assign(n, 0.0);
                         for (std::size_t r = 0; r < m; ++r)
                             for (std::size_t j = 0; j < n; ++j)
                                 acc[j] += g[r * n + j];
                         for (std::size_t j = 0; j < n; ++j)
                             db[j] = static_cast<T>(acc[j]) + (first[2] ? T(0) : db[j]);
                     }
                 }));
    return y;
}

template Tensor<float> matmul(const Tensor<float>&, const Tensor<float>&);
template Tensor<double> matmul(const Tensor<double>&, const Tensor<double>&);
template Tensor<float> linear(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&);
template Tensor<double> linear(const Tensor<double>&, const Tensor<double>&, const Tensor<double>&);

} // namespace xtape
