#include "layers/registry.hpp"

#include "layers/activation.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/convolutional/register_convolutional.hpp"
#include "layers/core/register_core.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/flatten.hpp"
#include "layers/input_layer.hpp"
#include "layers/layer_config.hpp"
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
#include <set>
#include <stdexcept>

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
    // Classes a user registered: their factories read their own configs, so the keys are not
    // checked here (Note [Config keys read] needs get_config and the readers to agree).
    std::set<std::string> user_classes;

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

// The keys Keras accepts in any layer's config and ignores on load (or handles outside the
// layer's own arguments), in one place; `null_only`: ignored only when null (or false), since a
// value there would mean something xtape does not do. Keras 3's base Layer takes name, trainable,
// dtype, autocast, input_dim and input_shape; tf.keras 2 also batch_input_shape, batch_size,
// weights, dynamic, implementation; Keras 1 input_dtype; Keras 3 files may nest build_config and
// write quantization_config / lora_rank / lora_alpha (null when unused); Keras 3's Embedding drops
// Keras 2's input_length with a warning.
struct IgnoredKey
{
    const char* key;
    bool null_only;
};
constexpr IgnoredKey keras_ignored_keys[] = {
    { "name", false },           { "trainable", false },        { "dtype", false },
    { "autocast", false },       { "input_dim", false },        { "input_shape", false },
    { "batch_input_shape", false }, { "batch_shape", false },   { "batch_size", false },
    { "input_dtype", false },    { "dynamic", false },          { "implementation", false },
    { "build_config", false },   { "compile_config", false },   { "input_length", false },
    { "weights", true },
    { "activity_regularizer", true }, { "quantization_config", true }, { "lora_rank", true },
    { "lora_alpha", true },
};

bool keras_ignores(const std::string& key, const json& value)
{
    for (const auto& k : keras_ignored_keys)
        if (key == k.key)
            return !k.null_only || value.is_null() || (value.is_boolean() && !value.get<bool>());
    return false;
}

// Keras raises TypeError for a keyword argument the class does not take (Note [Config keys read]).
template<class T>
void check_config_keys(const std::string& class_name, const json& config, const Layer<T>& layer,
                       const ConfigKeyLog& log)
{
    if (!config.is_object())
        return;
    const json written = layer.get_config();
    std::string unknown;
    for (auto it = config.begin(); it != config.end(); ++it) {
        const std::string& k = it.key();
        if ((written.is_object() && written.contains(k)) || log.was_read(k) || keras_ignores(k, it.value()))
            continue;
        unknown += (unknown.empty() ? "'" : ", '") + k + "': " + it.value().dump();
    }
    if (!unknown.empty())
        throw TypeError("Error when deserializing class '" + class_name + "' (layer '" +
                        config_string(config, "name", "") + "'): Unrecognized keyword arguments passed to " +
                        class_name + ": {" + unknown + "}");
}

template<class T>
LayerPtr<T> checked_layer(LayerPtr<T> layer, const std::string& class_name)
{
    if (!layer)
        throw RuntimeError("layer factory for '" + class_name + "' returned no layer");
    return layer;
}

} // namespace

template<class T>
LayerPtr<T> layer_from_config(const std::string& class_name, const json& config)
{
    register_families<T>();
    LayerFactory<T> factory;
    bool user_class = false;
    {
        auto& r = registry<T>();
        std::lock_guard<std::mutex> lock(r.mutex);
        auto it = r.factories.find(class_name);
        if (it != r.factories.end())
            factory = it->second;
        user_class = r.user_classes.count(class_name) > 0;
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
    if (user_class)
        return checked_layer(factory(config), class_name);
    if (!config.is_object())
        throw ValueError("layer config of class '" + class_name + "': expected a JSON object, got " +
                         config.dump().substr(0, 200));
    check_config_dtype<T>(class_name, config); // Note [Layer config dtype]
    ConfigKeyLog log;
    LayerPtr<T> layer;
    try {
        layer = checked_layer(factory(config), class_name);
    } catch (const json::exception& e) {
        throw ValueError(class_name + " '" + config_string(config, "name", "") +
                         "': malformed config (a required key is missing or has the wrong type): " + e.what());
    } catch (const std::logic_error& e) { // std::out_of_range, std::invalid_argument, ...
        // A missing key read with json::at, a value of another JSON type: every reader should
        // have said so itself; this names the class and the layer for the ones that do not.
        throw ValueError(class_name + " '" + config_string(config, "name", "") +
                         "': malformed config (a required key is missing or has the wrong type): " + e.what());
    }
    check_config_keys<T>(class_name, config, *layer, log);
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
    if (!t_registering_families)
        r.user_classes.insert(class_name);
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
