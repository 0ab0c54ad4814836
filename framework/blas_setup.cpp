#include "framework/blas_setup.hpp"

extern "C" void openblas_set_num_threads(int num_threads);
extern "C" int openblas_get_num_threads(void);
extern "C" char* openblas_get_corename(void);

namespace xtape {

// No default is applied on first use (framework/process.hpp): configure_process() asks for
// one OpenBLAS thread, and without it OpenBLAS keeps its own setting.

void set_blas_threads(int n)
{
    if (n <= 0)
        return;
    openblas_set_num_threads(n);
}

int blas_threads() { return openblas_get_num_threads(); }

const char* blas_core_name()
{
    const char* c = openblas_get_corename();
    return c ? c : "unknown";
}

} // namespace xtape
