// NumPy .npy files: the format numpy.save writes and numpy.load reads.
#pragma once

#include "framework/tensor.hpp"

#include <string>

namespace xtape::io {

/// Reads a .npy file of format version 1.0, 2.0 or 3.0.
///   requires: 'descr' is a plain numeric type: b1, i1, u1, i2, u2, i4, u4, i8, u8, f4 or f8, in any
///             byte order ('<', '>', '|', '='); structured, complex, float16 and object arrays are
///             refused. T is float, double, int32_t, int64_t or uint8_t.
///   ensures:  the values converted to T with static_cast, in row-major order with the stored shape
///             (a fortran_order array is transposed into row-major order). Bytes after the data
///             are ignored, as numpy.load does.
/// Malformed or truncated files throw IOError naming the file and what was wrong.
template <class T>
array_t<T> read_npy(const std::string& path);

/// Writes `value` as a version 1.0 file (2.0 when the header needs it) with T's little-endian
/// descr ('<f4', '<f8', '<i4', '<i8', '|u1'), fortran_order False, 64-byte aligned data as numpy
/// does. The file is replaced atomically (see atomic_file.hpp).
template <class T>
void write_npy(const std::string& path, const array_t<T>& value);

} // namespace xtape::io
