// The normalization family's entries in the layer registry (layers/registry.cpp calls this once per
// dtype while it fills its table).
#pragma once

#include "layers/registry.hpp"

#include <map>
#include <string>

namespace xtape {

/// Adds LayerNormalization, GroupNormalization and UnitNormalization to `factories`.
template <class T>
void register_normalization_layers(std::map<std::string, LayerFactory<T>>& factories);

} // namespace xtape
