// Ops that move elements of spatial data without combining them: zero padding, cropping and
// nearest-neighbour repetition (up-sampling, RepeatVector), each with its closed-form backward
// beside the forward in resampling.cpp, plus bilinear up-sampling, which does combine them.
//
//   zero_pad:  y = x placed at offset `before` in a zero tensor;  dx += the same box of dy
//   crop:      y = the box of x from `before`;                    dx[box] += dy
//   repeat_elements: y[i] = x[i / repeats] on every axis (np.repeat on several axes at once);
//              dx[j] += the sum of dy over the repeats[0] x ... block that copies x[j]
//
// Work is split over rows of the innermost axis (forward) and over the leading axis (backward of
// repeat_elements, whose outputs share sources), and each output and input-gradient element is
// written by one thread in a fixed order, so results do not depend on the thread count.
#pragma once

#include "framework/tape.hpp"
#include "framework/tensor.hpp"

#include <cstddef>
#include <utility>
#include <vector>

namespace xtape {

/// (before, after) for each axis.
using pad_widths_t = std::vector<std::pair<std::size_t, std::size_t>>;

/// Zero padding. requires: one (before, after) per axis of x (ValueError naming "zero_pad").
/// ensures: shape x.shape + before + after; a tape that tracks x records the backward (a crop of dy).
template <class T>
Tensor<T> zero_pad(const Tensor<T>& x, const pad_widths_t& pads);

/// Cropping. requires: one (before, after) per axis, before + after < the axis length
/// (ShapeError naming "crop", the shape and the widths).
/// ensures: shape x.shape - before - after; backward adds dy into the cropped box.
template <class T>
Tensor<T> crop(const Tensor<T>& x, const pad_widths_t& crops);

/// Nearest-neighbour repetition: every element repeated repeats[k] times along axis k.
/// requires: one positive repeat per axis (ValueError naming "repeat_elements").
/// ensures: shape x.shape * repeats; backward sums each block of copies into its source.
template <class T>
Tensor<T> repeat_elements(const Tensor<T>& x, const std::vector<std::size_t>& repeats);

/// Bilinear up-sampling of the two spatial axes of (batch, h, w, C) or, channels_first,
/// (batch, C, h, w) by integer factors, as Keras's UpSampling2D(interpolation="bilinear")
/// (tf.image.resize: half-pixel centres, source coordinate (i + 0.5) / factor - 0.5 clamped to
/// the input, no antialiasing when enlarging).
/// ensures: shape with h * factor_h, w * factor_w; backward scatters dy with the same weights.
template <class T>
Tensor<T> upsample_bilinear(const Tensor<T>& x, std::size_t factor_h, std::size_t factor_w, bool channels_first);

} // namespace xtape
