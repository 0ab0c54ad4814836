// The convolutional family's entries in the layer registry (layers/registry.cpp calls this once per
// dtype while it fills its table, so the family adds its classes without editing the table).
#pragma once

#include "layers/registry.hpp"

#include <map>
#include <string>

namespace xtape {

/// Adds Conv1D/2D/3D, Conv1D/2D/3DTranspose, DepthwiseConv1D/2D, SeparableConv1D/2D and the Keras 1/2
/// aliases (Convolution1D/2D/3D, AtrousConvolution1D/2D, Convolution*DTranspose,
/// SeparableConvolution1D/2D) to `factories`.
template <class T>
void register_convolutional_layers(std::map<std::string, LayerFactory<T>>& factories);

} // namespace xtape
