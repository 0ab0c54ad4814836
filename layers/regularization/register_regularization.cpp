#include "layers/regularization/register_regularization.hpp"

#include "layers/regularization/spatial_dropout.hpp"

namespace xtape {

template <class T>
void register_regularization_layers(std::map<std::string, LayerFactory<T>>& factories)
{
    factories["SpatialDropout1D"] = [](const json& c) { return SpatialDropout1D<T>::from_config(c); };
    factories["SpatialDropout2D"] = [](const json& c) { return SpatialDropout2D<T>::from_config(c); };
}

template void register_regularization_layers<float>(std::map<std::string, LayerFactory<float>>&);
template void register_regularization_layers<double>(std::map<std::string, LayerFactory<double>>&);

} // namespace xtape
