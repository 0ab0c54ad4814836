#include "framework/blas_setup.hpp"

#include <atomic>
#include <cstdlib>
#include <mutex>

extern "C" void openblas_set_num_threads(int num_threads);
extern "C" int openblas_get_num_threads(void);
extern "C" char* openblas_get_corename(void);

namespace xtape {
namespace {

std::once_flag default_once;
std::atomic<bool> user_chose{ false };

void apply_default()
{
    // The program's own choice (set_blas_threads) or the environment's wins over the default.
    if (user_chose.load() || std::getenv("OPENBLAS_NUM_THREADS") || std::getenv("GOTO_NUM_THREADS"))
        return;
    openblas_set_num_threads(1);
}

} // namespace

void ensure_blas_setup()
{
    std::call_once(default_once, apply_default);
}

void set_blas_threads(int n)
{
    if (n <= 0)
        return;
    user_chose.store(true);
    ensure_blas_setup();
    openblas_set_num_threads(n);
}

int blas_threads()
{
    ensure_blas_setup();
    return openblas_get_num_threads();
}

const char* blas_core_name()
{
    const char* c = openblas_get_corename();
    return c ? c : "unknown";
}

} // namespace xtape
