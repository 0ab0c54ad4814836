// Note [Allocation limit]
// Sizes that come from files and configs (a Dense with units 10^12, an HDF5 dataset that
// declares (2^40,) elements, a weight shape in a downloaded config) are checked against one
// process-wide limit before anything is allocated, so bad input ends in a ValueError that names
// the layer or the file and the size, never in std::bad_alloc from deep inside or in an attempt to
// allocate terabytes. The default, 2^32 elements (16 GiB of float), is above any weight or
// stored array of a model that fits this machine; applications that need more raise it, the
// fuzz targets lower it. Arrays the application makes itself (its own data) are not checked.
#pragma once

#include "framework/tensor.hpp"

#include <cstddef>
#include <string>

namespace xtape {

/// The largest element count xtape allocates for a size read from a file or a config.
std::size_t max_array_elements();
/// Sets that limit (process-wide; not meant to change while other threads load models).
///   requires: n >= 1.
void set_max_array_elements(std::size_t n);

/// The element count of `shape`.
///   ensures: it fits std::size_t and max_array_elements(); otherwise throws ValueError
///            "<what>: shape (…) has N elements, above the limit of M elements
///            (xtape::set_max_array_elements)" or "…: shape (…) overflows".
std::size_t checked_size(const shape_t& shape, const std::string& what);

} // namespace xtape
