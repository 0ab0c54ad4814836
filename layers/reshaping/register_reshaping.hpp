// The reshaping family's entries in the layer registry (layers/registry.cpp calls this once per
// dtype while it fills its table).
#pragma once

#include "layers/registry.hpp"

#include <map>
#include <string>

namespace xtape {

/// Adds ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D, RepeatVector and Permute to `factories`.
template <class T>
void register_reshaping_layers(std::map<std::string, LayerFactory<T>>& factories);

} // namespace xtape
