// Convolution kernels that older Keras files store in another layout or orientation, converted as
// Keras 2's preprocess_weights_for_loading converts them when it loads such a file:
//   - Keras 1 Convolution1D: (filter_length, 1, input_dim, nb_filter) (1.2) or
//     (nb_filter, input_dim, filter_length, 1) (1.1) -> (filter_length, input_dim, nb_filter);
//   - Keras 1 Convolution2D/3D with dim_ordering "th": (nb_filter, stack, k...) -> (k..., stack, nb_filter);
//   - Keras 1 Deconvolution2D (loaded as Conv2DTranspose): "tf" (rows, cols, stack, nb_filter) and
//     "th" (nb_filter, stack, rows, cols) -> (rows, cols, nb_filter, stack);
//   - a file written with the Theano backend (attribute backend = "theano"): Theano computed a true
//     convolution, TensorFlow and xtape a correlation, so the kernel's spatial axes are reversed
//     (Keras's convert_kernel) for Conv1D/2D/3D and Conv*DTranspose.
// Keras 1.2.2 files carry no backend attribute, so their kernels are taken as they are (as Keras does).
#pragma once

#include "framework/config.hpp"
#include "framework/tensor.hpp"

#include <string>
#include <vector>

namespace xtape::keras_h5 {

/// True when the kernel of a layer of `class_name` / `config` stored by this version and backend
/// needs converting; then convert_legacy_kernel() does it.
bool needs_legacy_kernel_conversion(const std::string& class_name, const json& config,
                                    const std::string& keras_version, const std::string& backend);

/// Converts values[0] (the kernel) in place. requires: needs_legacy_kernel_conversion(...) is true;
/// a kernel of an unexpected rank is left as it is (the shape check that follows reports it).
template <class T>
void convert_legacy_kernel(const std::string& class_name, const json& config, std::vector<array_t<T>>& values,
                           const std::string& keras_version, const std::string& backend);

} // namespace xtape::keras_h5
