// OpenBLAS set-up for programs (examples, benchmarks, tools).
//
// Note [OpenBLAS threads and kernels]
// xtape's kernels use OpenMP (set_num_threads); OpenBLAS has its own thread pool. On 2 cores the
// two pools compete, so programs set the split deliberately (bench_mlp_step measures every
// split). OpenBLAS picks its kernels for the CPU when it is loaded (on this Zen 5 machine
// Debian's OpenBLAS picks "Cooperlake", AVX-512); OPENBLAS_CORETYPE overrides that choice, and
// OPENBLAS_CORETYPE=Haswell (AVX2) measured about 1.5-2x slower for the Fashion-MNIST MLP.
#pragma once

extern "C" void openblas_set_num_threads(int num_threads);
extern "C" char* openblas_get_corename(void);

namespace xtape {

/// Threads OpenBLAS uses for one call (n >= 1; other values are ignored).
inline void set_blas_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}

/// The kernel family OpenBLAS runs ("Cooperlake", "Haswell", ...).
inline const char* blas_core_name()
{
    const char* c = openblas_get_corename();
    return c ? c : "unknown";
}

} // namespace xtape
