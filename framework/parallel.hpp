// OpenMP helpers. Note [Deterministic reductions]: every reduction is split into fixed chunks
// whose boundaries depend only on the problem size, each chunk is summed in double, and the
// partial sums are added in chunk order. The thread count decides only who computes a chunk,
// so results are bit-identical for any OMP_NUM_THREADS.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace xtape {

/// Below this many elements a loop runs serially: waking threads costs more than it saves.
inline constexpr std::size_t parallel_threshold = 1 << 15;

/// Chunk length used by deterministic reductions (see Note [Deterministic reductions]).
inline constexpr std::size_t reduction_chunk = 1 << 14;

inline int max_threads()
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/// Sets the number of OpenMP threads used by xtape's kernels.
inline void set_num_threads(int n)
{
#ifdef _OPENMP
    if (n > 0)
        omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/// Calls f(begin, end) over [0, n) in contiguous blocks, in parallel when n*cost is large.
/// `cost` is the work per index in element units (e.g. the row length for a per-row loop).
template <class F>
void parallel_for(std::size_t n, F&& f, std::size_t cost = 1)
{
    if (n == 0)
        return;
#ifdef _OPENMP
    if (n * cost >= parallel_threshold && n > 1 && !omp_in_parallel()) {
        const int nt = std::min<int>(omp_get_max_threads(), static_cast<int>(n));
        if (nt > 1) {
#pragma omp parallel num_threads(nt)
            {
                const std::size_t t = static_cast<std::size_t>(omp_get_thread_num());
                const std::size_t T = static_cast<std::size_t>(omp_get_num_threads());
                const std::size_t b = n * t / T, e = n * (t + 1) / T;
                if (b < e)
                    f(b, e);
            }
            return;
        }
    }
#endif
    f(std::size_t(0), n);
}

/// Deterministic sum of g(i) for i in [0, n), accumulated in double.
template <class G>
double deterministic_sum(std::size_t n, G&& g)
{
    const std::size_t nchunks = (n + reduction_chunk - 1) / reduction_chunk;
    if (nchunks <= 1) {
        double s = 0.0;
        for (std::size_t i = 0; i < n; ++i)
            s += static_cast<double>(g(i));
        return s;
    }
    std::vector<double> partial(nchunks, 0.0);
    parallel_for(
        nchunks,
        [&](std::size_t cb, std::size_t ce) {
            for (std::size_t c = cb; c < ce; ++c) {
                const std::size_t b = c * reduction_chunk, e = std::min(n, b + reduction_chunk);
                double s = 0.0;
                for (std::size_t i = b; i < e; ++i)
                    s += static_cast<double>(g(i));
                partial[c] = s;
            }
        },
        reduction_chunk);
    double s = 0.0;
    for (double p : partial)
        s += p;
    return s;
}

} // namespace xtape
