#include "layers/normalization/register_normalization.hpp"

#include "layers/normalization/group_normalization.hpp"
#include "layers/normalization/layer_normalization.hpp"

namespace xtape {

template <class T>
void register_normalization_layers(std::map<std::string, LayerFactory<T>>& factories)
{
    factories["LayerNormalization"] = [](const json& c) { return LayerNormalization<T>::from_config(c); };
    factories["GroupNormalization"] = [](const json& c) { return GroupNormalization<T>::from_config(c); };
    factories["UnitNormalization"] = [](const json& c) { return UnitNormalization<T>::from_config(c); };
}

template void register_normalization_layers<float>(std::map<std::string, LayerFactory<float>>&);
template void register_normalization_layers<double>(std::map<std::string, LayerFactory<double>>&);

} // namespace xtape
