#include "layers/pooling/register_pooling.hpp"

#include "layers/pooling/global_pooling.hpp"
#include "layers/pooling/pooling.hpp"

namespace xtape {

template <class T>
void register_pooling_layers(std::map<std::string, LayerFactory<T>>& factories)
{
    // Keras exports each class under a second, shorter name (keras.layers.MaxPool2D is MaxPooling2D);
    // a config written by hand may use either.
    auto add = [&](std::initializer_list<const char*> names, LayerFactory<T> f) {
        for (const char* n : names)
            factories[n] = f;
    };
    add({ "MaxPooling1D", "MaxPool1D" }, [](const json& c) { return MaxPooling1D<T>::from_config(c); });
    add({ "MaxPooling2D", "MaxPool2D" }, [](const json& c) { return MaxPooling2D<T>::from_config(c); });
    add({ "AveragePooling1D", "AvgPool1D" }, [](const json& c) { return AveragePooling1D<T>::from_config(c); });
    add({ "AveragePooling2D", "AvgPool2D" }, [](const json& c) { return AveragePooling2D<T>::from_config(c); });
    add({ "GlobalAveragePooling1D", "GlobalAvgPool1D" },
        [](const json& c) { return GlobalAveragePooling1D<T>::from_config(c); });
    add({ "GlobalAveragePooling2D", "GlobalAvgPool2D" },
        [](const json& c) { return GlobalAveragePooling2D<T>::from_config(c); });
    add({ "GlobalMaxPooling1D", "GlobalMaxPool1D" }, [](const json& c) { return GlobalMaxPooling1D<T>::from_config(c); });
    add({ "GlobalMaxPooling2D", "GlobalMaxPool2D" }, [](const json& c) { return GlobalMaxPooling2D<T>::from_config(c); });
}

template void register_pooling_layers<float>(std::map<std::string, LayerFactory<float>>&);
template void register_pooling_layers<double>(std::map<std::string, LayerFactory<double>>&);

} // namespace xtape
