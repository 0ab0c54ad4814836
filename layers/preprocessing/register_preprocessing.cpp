#include "layers/preprocessing/register_preprocessing.hpp"

#include "layers/preprocessing/normalization.hpp"

namespace xtape {

template <class T>
void register_preprocessing_layers(std::map<std::string, LayerFactory<T>>& factories)
{
    factories["Normalization"] = [](const json& c) { return Normalization<T>::from_config(c); };
}

template void register_preprocessing_layers<float>(std::map<std::string, LayerFactory<float>>&);
template void register_preprocessing_layers<double>(std::map<std::string, LayerFactory<double>>&);

} // namespace xtape
