// Row-major GEMM through xtensor-blas's cxxblas binding (OpenBLAS underneath), split over
// xtape's OpenMP threads as Note [OpenBLAS threads and kernels] (blas_setup.hpp) explains.
#pragma once

#include "framework/blas_setup.hpp"

#include <xtensor-blas/xblas.hpp>

#include <omp.h>

#include <algorithm>
#include <cstddef>

namespace xtape::kernels {

/// Below this many multiply-adds a product is one OpenBLAS call: splitting costs more than it saves.
inline constexpr std::size_t gemm_split_threshold = std::size_t(1) << 21;
/// Blocks of C are at least this wide and at most this many (the split depends on the shape only).
inline constexpr std::size_t gemm_min_block = 128, gemm_max_blocks = 8;

namespace detail {

template <class T>
void gemm_call(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
               std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc)
{
    using idx = xt::blas_index_t;
    cxxblas::gemm<idx>(cxxblas::StorageOrder::RowMajor, trans_a ? cxxblas::Trans : cxxblas::NoTrans,
                       trans_b ? cxxblas::Trans : cxxblas::NoTrans, static_cast<idx>(m), static_cast<idx>(n),
                       static_cast<idx>(k), alpha, a, static_cast<idx>(lda), b, static_cast<idx>(ldb), beta, c,
                       static_cast<idx>(ldc));
}

} // namespace detail

/// C(m,n) = alpha * op(A) op(B) + beta * C, all row-major and contiguous.
/// op(A) is (m,k): A is (m,k), or (k,m) when trans_a. op(B) is (k,n): B is (k,n), or (n,k) when trans_b.
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
          const T* b, T beta, T* c)
{
    if (m == 0 || n == 0)
        return;
    const std::size_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
    // Blocks of C: columns when C is wide, rows otherwise. How C is cut depends only on the
    // shape, never on the thread count, because OpenBLAS rounds an element differently depending
    // on the size of the call it is in (measured: 2-3% of the elements differ in the last bit
    // between one call and two halves). So a 1-thread run computes the same blocks in a row and
    // gets the same bits as a 2-thread run. Edges fall on multiples of 16, the kernels' tile width.
    const bool by_cols = n >= m;
    const std::size_t extent = by_cols ? n : m;
    const std::size_t blocks = (m * n * k < gemm_split_threshold || blas_threads() != 1)
                                   ? 1
                                   : std::clamp<std::size_t>(extent / gemm_min_block, 1, gemm_max_blocks);
    if (blocks == 1) {
        detail::gemm_call<T>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, n);
        return;
    }
    const std::size_t width = ((extent + blocks - 1) / blocks + 15) / 16 * 16;
    const auto run_block = [&](std::size_t p) {
        const std::size_t lo = std::min(extent, p * width), hi = std::min(extent, lo + width);
        if (hi <= lo)
            return;
        if (by_cols)
            detail::gemm_call<T>(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, trans_b ? b + lo * ldb : b + lo,
                                 ldb, beta, c + lo, n);
        else
            detail::gemm_call<T>(trans_a, trans_b, hi - lo, n, k, alpha, trans_a ? a + lo : a + lo * lda, lda, b,
                                 ldb, beta, c + lo * n, n);
    };
    const int team = omp_in_parallel() ? 1 : std::min<int>(omp_get_max_threads(), static_cast<int>(blocks));
    if (team <= 1) {
        for (std::size_t p = 0; p < blocks; ++p)
            run_block(p);
        return;
    }
#pragma omp parallel for num_threads(team) schedule(static)
    for (std::ptrdiff_t p = 0; p < static_cast<std::ptrdiff_t>(blocks); ++p)
        run_block(static_cast<std::size_t>(p));
}

} // namespace xtape::kernels
