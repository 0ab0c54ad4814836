// glibc allocator settings for training loops: see Note [Allocator settings for training] in
// allocator.cpp. Model's train/test/predict steps call it; so can hand-written loops and benches.
#pragma once

namespace xtape {

/// ensures: on the first call, freed arrays stay in the heap (mmap only above 64 MB, trim only
///          above 512 MB) unless the user set glibc's MALLOC_* variables or
///          XTAPE_KEEP_MALLOC_DEFAULTS; later calls do nothing.
void tune_allocator_once();

} // namespace xtape
