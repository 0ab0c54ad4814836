// The wrappers family's entries in the layer registry (layers/registry.cpp calls this once per dtype).
#pragma once

#include "layers/registry.hpp"

#include <map>
#include <string>

namespace xtape {

/// Adds TimeDistributed, and Bidirectional as a clear error: Keras accepts only recurrent layers
/// there and xtape has none yet (NotImplementedError naming the layer and what it wraps).
template <class T>
void register_wrapper_layers(std::map<std::string, LayerFactory<T>>& factories);

} // namespace xtape
