// The regularization family's entries in the layer registry (layers/registry.cpp calls this once per
// dtype while it fills its table). Dropout itself is a core layer (layers/dropout.hpp).
#pragma once

#include "layers/registry.hpp"

#include <map>
#include <string>

namespace xtape {

/// Adds SpatialDropout1D and SpatialDropout2D to `factories`.
template <class T>
void register_regularization_layers(std::map<std::string, LayerFactory<T>>& factories);

} // namespace xtape
