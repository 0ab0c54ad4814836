// OpenBLAS set-up: who owns the cores during a matrix product.
//
// Note [OpenBLAS threads and kernels]
// xtape's kernels run on OpenMP threads; OpenBLAS (Debian's pthread build) has a thread pool of
// its own. On a 2-core machine the two pools fight: libgomp's workers spin after each parallel
// region while OpenBLAS's workers want the same cores, and bench_mlp_step measured the
// Fashion-MNIST MLP at 17.6 ms per step with both pools at 2 threads against 3.3 ms with one
// thread each. So xtape keeps one pool: configured (configure_process), OpenBLAS runs single-threaded and
// kernels::gemm splits each large product into column or row blocks shared out over the OpenMP team
// (the OpenMP team calls OpenBLAS concurrently; how C is cut depends only on its shape, see
// kernels::gemm). On this machine that split measured faster than
// OpenBLAS's own threading for every product of the MLP (e.g. x^T·dy of 784x128·128x512:
// 0.55 ms against 0.75 ms; bench/bench_mlp_step prints the whole step), and with the cut fixed by
// the shape the results do not depend on the thread count. OpenBLAS's own threading does not give
// that guarantee. The single OpenBLAS thread is set by configure_process() (framework/process.hpp),
// never as a side effect of a first product: the process belongs to the application. A program
// that wants OpenBLAS's own threads calls set_blas_threads(n > 1) (or sets OPENBLAS_NUM_THREADS,
// or does not call configure_process); xtape then leaves every product to OpenBLAS whole.
//
// OpenBLAS picks its kernel family when it is loaded; OPENBLAS_CORETYPE overrides the choice
// (on this Zen 5 machine Debian's OpenBLAS picks "Cooperlake", AVX-512, when the variable is unset).
#pragma once

namespace xtape {

/// Threads OpenBLAS itself uses for one call (n >= 1; other values are ignored). n == 1 lets
/// xtape split products over its OpenMP threads; n > 1 leaves threading to OpenBLAS.
void set_blas_threads(int n);

/// Threads OpenBLAS itself uses for one call (1 after configure_process(), framework/process.hpp).
int blas_threads();

/// The kernel family OpenBLAS runs ("Cooperlake", "Haswell", ...).
const char* blas_core_name();

} // namespace xtape
