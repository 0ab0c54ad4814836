#include "framework/allocator.hpp"

#include <malloc.h>

#include <cstdlib>
#include <mutex>

namespace xtape {

// Note [Allocator settings for training]
// Every step allocates and frees the same arrays (activations, gradients: 0.1-1 MB each). With
// glibc's defaults, arrays above the mmap threshold get fresh pages from the kernel each time,
// and freeing at the top of the heap trims it, so each step pays page faults for memory it just
// released; measured on the Fashion-MNIST MLP this made a step 3-5x slower. Keeping freed
// memory in the heap (mmap only above 64 MB, trim only above 512 MB) removes that. Done once,
// when the application calls configure_process() (a library must not retune the allocator of the
// process it is embedded in on its own), and not when the user set glibc's MALLOC_* variables.
void tune_allocator_once()
{
    static std::once_flag once;
    std::call_once(once, [] {
        if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
            std::getenv("MALLOC_TOP_PAD_") || std::getenv("XTAPE_KEEP_MALLOC_DEFAULTS"))
            return;
        mallopt(M_MMAP_THRESHOLD, 64 << 20);
        mallopt(M_TRIM_THRESHOLD, 512 << 20);
        mallopt(M_TOP_PAD, 16 << 20);
    });
}

} // namespace xtape
