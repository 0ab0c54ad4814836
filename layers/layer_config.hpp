// Reading the parts of a layer config that every layer shares, in every form Keras has written:
// Keras 1 (input_dim, batch_input_shape, input_dtype), Keras 2 / tf.keras (batch_input_shape,
// dtype as a string) and Keras 3 (batch_shape, dtype as a DTypePolicy dict).
#pragma once

#include "framework/config.hpp"
#include "framework/layer.hpp"

#include <initializer_list>
#include <optional>
#include <string>

namespace xtape {

/// The base arguments of every layer.
struct LayerArgs
{
    std::string name; ///< empty: a unique name from the class name
    bool trainable = true;
};

/// name and trainable from a config (dtype is decided by T and is not read).
inline LayerArgs layer_args_from_config(const json& config)
{
    if (!config.is_object())
        throw ValueError("layer config: expected a JSON object, got " + config.dump());
    return LayerArgs{ config_string(config, "name", ""), config_bool(config, "trainable", true) };
}

/// Note [Layer config dtype]: the scalar type T of the model decides every layer's dtype; the
/// dtype a config names (tf.keras's string, a Keras 3 DTypePolicy or tf.keras Policy dict) is
/// checked against it, once for every layer class, by layer_from_config. Every floating-point
/// dtype and policy Keras writes (float32, float64, float16, bfloat16, mixed_float16,
/// mixed_bfloat16) loads into float and double models: the layer computes in T and its weights
/// are converted as numpy's astype does (Keras would compute a float64 layer in float64 and a
/// 16-bit one in 16 bits; xtape runs one scalar type per model, README "Where xtape deliberately
/// differs"), so a double model saved by xtape loads into a float one and every float32 file into
/// a double one (gradcheck). Integer, quantized and unknown dtypes are a ValueError naming the
/// layer; an InputLayer may name any dtype Keras knows (integer inputs feed Embedding).
template <class T>
void check_config_dtype(const std::string& class_name, const json& config)
{
    auto it = config.find("dtype");
    if (it == config.end() || it->is_null())
        return;
    std::string name;
    if (it->is_string()) {
        name = it->get<std::string>();
    } else if (it->is_object() && it->contains("config") && (*it)["config"].is_object() &&
               (*it)["config"].contains("name") && (*it)["config"]["name"].is_string()) {
        name = (*it)["config"]["name"].get<std::string>();
    } else {
        throw ValueError(class_name + " '" + config_string(config, "name", "") +
                         "': expected `dtype` to be a dtype name or a DTypePolicy dict, got " + it->dump());
    }
    static const char* const floats[] = { "float32", "float64", "float16", "bfloat16", "mixed_float16",
                                          "mixed_bfloat16" };
    for (const char* n : floats)
        if (name == n)
            return;
    if (class_name == "InputLayer") {
        static const char* const input_dtypes[] = { "int8", "int16", "int32", "int64", "uint8",
                                                    "uint16", "uint32", "uint64", "bool" };
        for (const char* n : input_dtypes)
            if (name == n)
                return;
    }
    throw ValueError(class_name + " '" + config_string(config, "name", "") + "': unsupported dtype '" + name +
                     "' for a " + dtype_name<T>() +
                     " model; expected float32, float64, or a float16/bfloat16/mixed policy");
}

/// The first of `keys` that is present and not null in `config` (a null json when none is):
/// the way to read a key that Keras renamed (Keras 1 "init" became "kernel_initializer").
inline json config_first(const json& config, std::initializer_list<const char*> keys)
{
    for (const char* k : keys) {
        note_config_key(k);
        auto it = config.find(k);
        if (it != config.end() && !it->is_null())
            return *it;
    }
    return json();
}

/// A Keras shape list ([null, 784]) as dims, None as none_dim. `what` names the key in errors.
inline dims_t dims_from_json(const json& j, const std::string& what)
{
    if (!j.is_array())
        throw ValueError("config key '" + what + "': expected a list of dimensions, got " + j.dump());
    dims_t d;
    for (const auto& e : j) {
        if (e.is_null())
            d.push_back(none_dim);
        else if (e.is_number())
            d.push_back(config_integer_value<long>(e, what));
        else
            throw ValueError("config key '" + what + "': expected integers or null, got " + j.dump());
    }
    return d;
}

/// dims as a Keras shape list, none_dim as null.
inline json dims_to_json(const dims_t& d)
{
    json j = json::array();
    for (long v : d)
        j.push_back(v < 0 ? json() : json(v));
    return j;
}

/// The input shape (batch dimension included) that a config declares for its layer, if any:
/// Keras 3's batch_shape, Keras 1/2's batch_input_shape, input_shape (with batch_size), or
/// Keras 1's input_dim. A Sequential model builds its input from the first layer's.
inline std::optional<dims_t> batch_input_shape_from_config(const json& config)
{
    if (!config.is_object())
        return std::nullopt;
    for (const char* key : { "batch_shape", "batch_input_shape" }) {
        auto it = config.find(key);
        if (it != config.end() && !it->is_null())
            return dims_from_json(*it, key);
    }
    const json batch_json = config_first(config, { "batch_size" });
    const long batch = batch_json.is_null() ? none_dim : config_integer_value<long>(batch_json, "batch_size");
    auto it = config.find("input_shape");
    if (it != config.end() && !it->is_null()) {
        dims_t d = dims_from_json(*it, "input_shape");
        d.insert(d.begin(), batch);
        return d;
    }
    it = config.find("input_dim");
    if (it != config.end() && !it->is_null()) {
        return dims_t{ batch, config_integer_value<long>(*it, "input_dim") };
    }
    return std::nullopt;
}

} // namespace xtape
