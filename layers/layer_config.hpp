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

/// The first of `keys` that is present and not null in `config` (a null json when none is):
/// the way to read a key that Keras renamed (Keras 1 "init" became "kernel_initializer").
inline json config_first(const json& config, std::initializer_list<const char*> keys)
{
    for (const char* k : keys) {
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
        else if (e.is_number_integer() ||
                 (e.is_number() && e.get<double>() == static_cast<long>(e.get<double>())))
            d.push_back(e.get<long>());
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
    const long batch = static_cast<long>(config_number(config, "batch_size", none_dim));
    auto it = config.find("input_shape");
    if (it != config.end() && !it->is_null()) {
        dims_t d = dims_from_json(*it, "input_shape");
        d.insert(d.begin(), batch);
        return d;
    }
    it = config.find("input_dim");
    if (it != config.end() && !it->is_null()) {
        if (!it->is_number_integer())
            throw ValueError("config key 'input_dim': expected an integer, got " + it->dump());
        return dims_t{ batch, it->get<long>() };
    }
    return std::nullopt;
}

} // namespace xtape
