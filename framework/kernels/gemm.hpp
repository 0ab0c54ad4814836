// Row-major GEMM through xtensor-blas's cxxblas binding (OpenBLAS underneath).
#pragma once

#include <xtensor-blas/xblas.hpp>

#include <cstddef>

namespace xtape::kernels {

/// C(m,n) = alpha * op(A) op(B) + beta * C, all row-major and contiguous.
/// op(A) is (m,k): A is (m,k), or (k,m) when trans_a. op(B) is (k,n): B is (k,n), or (n,k) when trans_b.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
          const T* b, T beta, T* c)
{
    if (m == 0 || n == 0)
        return;
    using idx = xt::blas_index_t;
    cxxblas::gemm<idx>(cxxblas::StorageOrder::RowMajor, trans_a ? cxxblas::Trans : cxxblas::NoTrans,
                       trans_b ? cxxblas::Trans : cxxblas::NoTrans, static_cast<idx>(m), static_cast<idx>(n),
                       static_cast<idx>(k), alpha, a, static_cast<idx>(trans_a ? m : k), b,
                       static_cast<idx>(trans_b ? k : n), beta, c, static_cast<idx>(n));
}

} // namespace xtape::kernels
