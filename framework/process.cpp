#include "framework/process.hpp"

#include "framework/allocator.hpp"
#include "framework/blas_setup.hpp"

#include <cstdlib>

namespace xtape {

void configure_process(const ProcessSettings& settings)
{
    if (settings.tune_allocator)
        tune_allocator_once();
    if (settings.blas_threads > 0 && !std::getenv("OPENBLAS_NUM_THREADS") && !std::getenv("GOTO_NUM_THREADS"))
        set_blas_threads(settings.blas_threads);
}

} // namespace xtape
