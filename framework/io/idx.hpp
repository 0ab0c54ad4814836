// IDX files: the format of MNIST and Fashion-MNIST (yann.lecun.com/exdb/mnist).
#pragma once

#include "framework/tensor.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace xtape::io {

/// An IDX array of unsigned bytes in row-major order.
struct IdxArray {
    shape_t shape;
    std::vector<std::uint8_t> data; ///< shape_size(shape) bytes
};

/// Reads an IDX file, plain or gzip-compressed (recognised by content, not by name).
///   requires: magic 0x00 0x00 0x08 <ndim> (unsigned bytes), ndim >= 1, big-endian 32-bit dims,
///             then exactly the product of the dims in bytes.
///   ensures:  shape and data as stored. Anything else (missing file, other element types,
///             truncated or corrupt data, trailing bytes) throws IOError naming the file.
IdxArray read_idx(const std::string& path);

} // namespace xtape::io
