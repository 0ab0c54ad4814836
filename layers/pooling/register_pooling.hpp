// The pooling family's entries in the layer registry (layers/registry.cpp calls this once per
// dtype while it fills its table, so the family adds its classes without editing the table).
#pragma once

#include "layers/registry.hpp"

#include <map>
#include <string>

namespace xtape {

/// Adds MaxPooling1D/2D, AveragePooling1D/2D, GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D and
/// Keras's aliases (MaxPool2D, AvgPool2D, GlobalAvgPool2D, ...) to `factories`.
template <class T>
void register_pooling_layers(std::map<std::string, LayerFactory<T>>& factories);

} // namespace xtape
