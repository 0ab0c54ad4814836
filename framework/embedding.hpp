// Embedding lookup as one op: y[..., :] = table[indices[...], :], differentiable in the table.
// The backward is a sparse accumulation: dtable[indices[i], :] += dy[i, :], touching only the rows
// that were looked up (a first contribution zero-fills the table's gradient once). Rows are split
// over threads by column ranges, so every element of dtable adds its terms in index order whatever
// the thread count (results are bit-identical for any OMP_NUM_THREADS). The indices are data, not
// parameters: they get no gradient.
#pragma once

#include "framework/tape.hpp"
#include "framework/tensor.hpp"

namespace xtape {

/// requires: table of rank 2, (input_dim, output_dim); indices hold whole numbers in [0, input_dim)
///           (ValueError naming the op, the position and the range otherwise, as TensorFlow's
///           "indices[0,1] = 12 is not in [0, 10)").
/// ensures:  y of shape indices.shape + (output_dim,); a tape that tracks the table records the
///           sparse backward.
template <class T>
Tensor<T> embedding_lookup(const Tensor<T>& indices, const Tensor<T>& table);

} // namespace xtape
