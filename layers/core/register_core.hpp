// The core family's entries in the layer registry that live in layers/core/ (layers/registry.cpp
// calls this once per dtype while it fills its table).
#pragma once

#include "layers/registry.hpp"

#include <map>
#include <string>

namespace xtape {

/// Adds Embedding and Masking to `factories`.
template <class T>
void register_core_layers(std::map<std::string, LayerFactory<T>>& factories);

} // namespace xtape
