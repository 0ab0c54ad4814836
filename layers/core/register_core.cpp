#include "layers/core/register_core.hpp"

#include "layers/core/embedding.hpp"

namespace xtape {

template <class T>
void register_core_layers(std::map<std::string, LayerFactory<T>>& factories)
{
    factories["Embedding"] = [](const json& c) { return Embedding<T>::from_config(c); };
    factories["Masking"] = [](const json& c) { return Masking<T>::from_config(c); };
}

template void register_core_layers<float>(std::map<std::string, LayerFactory<float>>&);
template void register_core_layers<double>(std::map<std::string, LayerFactory<double>>&);

} // namespace xtape
