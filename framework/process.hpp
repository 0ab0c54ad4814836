// Process-wide settings: what xtape changes outside itself, and only when the application asks.
//
//   int main() {
//       xtape::configure_process();   // once, first thing, before other threads start
//       ...
//   }
//
// A library must not retune the process it is embedded in behind the application's back, so
// nothing here happens on first use of a model or a product: the examples, the benchmarks and
// the xtape tool make this call, and a program that embeds xtape decides for itself. Without
// it, xtape works with the process as it is (glibc's allocator defaults, OpenBLAS's own thread
// count): correct, but a training step may be several times slower (see the two Notes), and
// with OpenBLAS threads results may depend on the thread count.
#pragma once

namespace xtape {

/// What configure_process() changes; the defaults are what training with xtape is tuned for.
struct ProcessSettings {
    /// glibc allocator settings for training loops (Note [Allocator settings for training] in
    /// framework/allocator.cpp); skipped when the environment sets glibc's MALLOC_* variables or
    /// XTAPE_KEEP_MALLOC_DEFAULTS.
    bool tune_allocator = true;
    /// OpenBLAS's own threads per call (Note [OpenBLAS threads and kernels] in
    /// framework/blas_setup.hpp): 1 lets xtape split products over its OpenMP threads, so results
    /// do not depend on the thread count; 0 leaves OpenBLAS as it is. OPENBLAS_NUM_THREADS or
    /// GOTO_NUM_THREADS in the environment win over this value.
    int blas_threads = 1;
};

/// Applies `settings` to the process. Idempotent; not meant to race with running models.
void configure_process(const ProcessSettings& settings = {});

} // namespace xtape
