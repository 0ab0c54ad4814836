// OpenBLAS set-up for programs (examples, benchmarks, tools): its thread count, and the choice
// of its AVX-512 kernels on CPUs it does not recognise.
//
// Note [OpenBLAS kernels on new CPUs]
// Debian 12's OpenBLAS (0.3.21, built with DYNAMIC_ARCH) does not know AMD family 26 (Zen 5)
// and falls back to its Haswell (AVX2) kernels, although the CPU has AVX-512. Forcing the
// SkylakeX kernels (OPENBLAS_CORETYPE=SKYLAKEX) measured 1.5-2x faster sgemm for the
// Fashion-MNIST MLP on this machine. OpenBLAS reads the variable once, when the library is
// loaded, i.e. before main(); so a program that wants it re-executes itself with the variable
// set. A user's own OPENBLAS_CORETYPE always wins.
#pragma once

#include <cstdlib>
#include <string>
#include <unistd.h>

extern "C" void openblas_set_num_threads(int num_threads);
extern "C" char* openblas_get_corename(void);

namespace xtape {

/// Threads OpenBLAS uses for one call (xtape's OpenMP kernels are set apart, set_num_threads()).
inline void set_blas_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}

/// Call first in main(). When OpenBLAS chose its Haswell or Zen (AVX2) kernels on a CPU with
/// AVX-512 (F, BW, DQ, VL) and OPENBLAS_CORETYPE is not set, re-executes the program with
/// OPENBLAS_CORETYPE=SKYLAKEX (see the note above); returns otherwise (also when re-executing
/// fails: the program then runs with OpenBLAS's own choice).
/// XTAPE_NO_BLAS_REEXEC=1 turns it off.
inline void prefer_avx512_blas(char** argv)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("XTAPE_NO_BLAS_REEXEC"))
        return;
    const char* core = openblas_get_corename();
    const std::string chosen = core ? core : "";
    if (chosen != "Haswell" && chosen != "haswell" && chosen != "Zen" && chosen != "zen")
        return;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")))
        return;
    setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1);
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); // exec failed: carry on unchanged
#else
    (void)argv;
#endif
}

} // namespace xtape
