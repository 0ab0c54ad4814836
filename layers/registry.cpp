#include "layers/registry.hpp"

#include "layers/activation.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/convolutional/register_convolutional.hpp"
#include "layers/core/register_core.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/flatten.hpp"
#include "layers/input_layer.hpp"
#include "layers/leaky_relu.hpp"
#include "layers/pooling/register_pooling.hpp"
#include "layers/preprocessing/register_preprocessing.hpp"
#include "layers/regularization/register_regularization.hpp"
#include "layers/merging/merge.hpp"
#include "layers/normalization/register_normalization.hpp"
#include "layers/relu.hpp"
#include "layers/reshaping/register_reshaping.hpp"
#include "layers/reshape.hpp"
#include "layers/softmax.hpp"
#include "layers/wrappers/register_wrappers.hpp"

#include <algorithm>
#include <map>
#include <mutex>

namespace xtape {

namespace {

// Keras layer classes that xtape does not implement yet: asking for one is a NotImplementedError
// (a gap in xtape), not a KeyError (a name nobody knows).
// clang-format off
const char* const keras_layers_not_implemented[] = {
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution1D",
    "Convolution2D", "Convolution3D", "Deconvolution2D", "AtrousConvolution2D", "SeparableConv1D",
    "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "GlobalMaxPooling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
    "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "RepeatVector", "Permute",
    "LSTM", "GRU", "SimpleRNN", "ConvLSTM2D", "Merge",
    "Lambda", "ELU", "PReLU", "ThresholdedReLU",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "ActivityRegularization", "MultiHeadAttention", "Attention", "AdditiveAttention",
    "EinsumDense", "Identity", "Rescaling", "Resizing", "CenterCrop", "RandomFlip",
    "RandomRotation", "RandomZoom", "RandomCrop", "RandomTranslation", "RandomContrast", "MaxoutDense",
    "Highway", "Sequential", "Functional", "Model",
};
// clang-format on

template<class T, class L>
LayerPtr<T> make(const json& config)
{
    return L::from_config(config);
}

template<class T>
struct Registry
{
    std::mutex mutex;
    std::map<std::string, LayerFactory<T>> factories;

    Registry()
    {
        factories["InputLayer"] = make<T, InputLayer<T>>;
        factories["Dense"] = make<T, Dense<T>>;
        factories["Activation"] = make<T, Activation<T>>;
        factories["ReLU"] = make<T, ReLU<T>>;
        factories["LeakyReLU"] = make<T, LeakyReLU<T>>;
        factories["Softmax"] = make<T, Softmax<T>>;
        factories["Dropout"] = make<T, Dropout<T>>;
        factories["Flatten"] = make<T, Flatten<T>>;
        factories["Reshape"] = make<T, Reshape<T>>;
        factories["BatchNormalization"] = make<T, BatchNormalization<T>>;
        register_pooling_layers<T>(factories);
        register_reshaping_layers<T>(factories);
        register_regularization_layers<T>(factories);
        register_convolutional_layers<T>(factories);
        register_normalization_layers<T>(factories);
        register_preprocessing_layers<T>(factories);
        register_core_layers<T>(factories);
        register_wrapper_layers<T>(factories);
        // Keras 1 wrote these core layers under the same class names, so no aliases are needed;
        // an unknown Keras 1 name (Convolution2D, Merge, ...) reaches the NotImplementedError below.
    }
};

template<class T>
Registry<T>& registry()
{
    static Registry<T> r;
    return r;
}

// Each layer family registers itself through register_layer, once, before the first lookup.
// The flag lets those register_layer calls through while the families are being registered.
thread_local bool t_registering_families = false;

template<class T>
void register_families()
{
    if (t_registering_families)
        return;
    static std::once_flag once;
    std::call_once(once, [] {
        t_registering_families = true;
        register_merging_layers<T>();
        t_registering_families = false;
    });
}

std::string join(const std::vector<std::string>& v)
{
    std::string s;
    for (const auto& x : v)
        s += (s.empty() ? "" : ", ") + x;
    return s;
}

} // namespace

template<class T>
LayerPtr<T> layer_from_config(const std::string& class_name, const json& config)
{
    register_families<T>();
    LayerFactory<T> factory;
    {
        auto& r = registry<T>();
        std::lock_guard<std::mutex> lock(r.mutex);
        auto it = r.factories.find(class_name);
        if (it != r.factories.end())
            factory = it->second;
    }
    if (!factory) {
        const bool keras_knows = std::any_of(std::begin(keras_layers_not_implemented),
                                             std::end(keras_layers_not_implemented),
                                             [&](const char* n) { return class_name == n; });
        const std::string known = join(registered_layers<T>());
        if (keras_knows)
            throw NotImplementedError("Unknown layer: '" + class_name +
                                      "'. xtape does not support this layer yet (supported: " + known + ")");
        throw KeyError("Unknown layer: '" + class_name + "'. Register it with register_layer<T>(\"" +
                       class_name + "\", factory) before loading (known layers: " + known + ")");
    }
    LayerPtr<T> layer = factory(config);
    if (!layer)
        throw RuntimeError("layer factory for '" + class_name + "' returned no layer");
    return layer;
}

template<class T>
LayerPtr<T> layer_from_config(const json& serialized)
{
    if (!serialized.is_object() || !serialized.contains("class_name") ||
        !serialized["class_name"].is_string())
        throw ValueError("layer_from_config: expected {\"class_name\": ..., \"config\": {...}}, got " +
                         serialized.dump());
    const json config = serialized.contains("config") ? serialized["config"] : json::object();
    auto rn = serialized.find("registered_name");
    if (rn != serialized.end() && rn->is_string() && is_registered_layer<T>(rn->get<std::string>()))
        return layer_from_config<T>(rn->get<std::string>(), config);
    return layer_from_config<T>(serialized["class_name"].get<std::string>(), config);
}

template<class T>
void register_layer(const std::string& class_name, LayerFactory<T> factory)
{
    register_families<T>(); // so that a user's factory replaces a family's, not the reverse
    if (class_name.empty() || !factory)
        throw ValueError("register_layer: needs a class name and a factory (got '" + class_name + "')");
    auto& r = registry<T>();
    std::lock_guard<std::mutex> lock(r.mutex);
    r.factories[class_name] = std::move(factory);
}

template<class T>
bool is_registered_layer(const std::string& class_name)
{
    register_families<T>();
    auto& r = registry<T>();
    std::lock_guard<std::mutex> lock(r.mutex);
    return r.factories.count(class_name) > 0;
}

template<class T>
std::vector<std::string> registered_layers()
{
    register_families<T>();
    auto& r = registry<T>();
    std::lock_guard<std::mutex> lock(r.mutex);
    std::vector<std::string> names;
    for (const auto& kv : r.factories)
        names.push_back(kv.first);
    return names;
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template LayerPtr<T> layer_from_config<T>(const std::string&, const json&);                              \
    template LayerPtr<T> layer_from_config<T>(const json&);                                                  \
    template void register_layer<T>(const std::string&, LayerFactory<T>);                                    \
    template bool is_registered_layer<T>(const std::string&);                                                \
    template std::vector<std::string> registered_layers<T>();
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
