#include "layers/reshaping/register_reshaping.hpp"

#include "layers/reshaping/cropping.hpp"
#include "layers/reshaping/permute.hpp"
#include "layers/reshaping/repeat_vector.hpp"
#include "layers/reshaping/up_sampling.hpp"
#include "layers/reshaping/zero_padding.hpp"

namespace xtape {

template <class T>
void register_reshaping_layers(std::map<std::string, LayerFactory<T>>& factories)
{
    // Keras 1 used the same class names for all of these.
    factories["ZeroPadding1D"] = [](const json& c) { return ZeroPadding1D<T>::from_config(c); };
    factories["ZeroPadding2D"] = [](const json& c) { return ZeroPadding2D<T>::from_config(c); };
    factories["Cropping1D"] = [](const json& c) { return Cropping1D<T>::from_config(c); };
    factories["Cropping2D"] = [](const json& c) { return Cropping2D<T>::from_config(c); };
    factories["UpSampling1D"] = [](const json& c) { return UpSampling1D<T>::from_config(c); };
    factories["UpSampling2D"] = [](const json& c) { return UpSampling2D<T>::from_config(c); };
    factories["RepeatVector"] = [](const json& c) { return RepeatVector<T>::from_config(c); };
    factories["Permute"] = [](const json& c) { return Permute<T>::from_config(c); };
}

template void register_reshaping_layers<float>(std::map<std::string, LayerFactory<float>>&);
template void register_reshaping_layers<double>(std::map<std::string, LayerFactory<double>>&);

} // namespace xtape
