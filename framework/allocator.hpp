// glibc allocator settings for training loops: see Note [Allocator settings for training] in
// allocator.cpp. configure_process() (framework/process.hpp) calls it; nothing else in xtape does.
#pragma once

namespace xtape {

/// ensures: on the first call, freed arrays stay in the heap (mmap only above 64 MB, trim only
///          above 512 MB) unless the user set glibc's MALLOC_* variables or
///          XTAPE_KEEP_MALLOC_DEFAULTS; later calls do nothing.
void tune_allocator_once();

} // namespace xtape
