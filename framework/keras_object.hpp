// The forms in which Keras writes a configurable object (an initializer, regularizer,
// constraint, optimizer or schedule), and Keras 3's serialized form.
//
//   "glorot_uniform"                                     a name (every Keras version)
//   {"class_name": "GlorotUniform", "config": {...}}     Keras 2
//   {"module": "keras.initializers", "class_name": ..., "config": ..., "registered_name": null}  Keras 3
//   {"name": "MaxNorm", "m": 2, "axis": 0}               Keras 1 (regularizers, constraints)
#pragma once

#include "framework/config.hpp"
#include "framework/errors.hpp"

#include <optional>
#include <string>
#include <utility>

namespace xtape {

/// A configurable object's class name and config, whichever form it was written in.
struct KerasSpec {
    std::string class_name;
    json config; ///< always an object (empty when the spec gave none)
};

/// Splits a spec into its class name and config. `what` names the kind of object in errors.
/// requires: a string or an object of one of the forms above (ValueError otherwise).
inline KerasSpec split_keras_spec(const json& spec, const std::string& what)
{
    if (spec.is_string())
        return { spec.get<std::string>(), json::object() };
    if (spec.is_object()) {
        auto cn = spec.find("class_name");
        if (cn != spec.end() && cn->is_string()) {
            json config = json::object();
            auto c = spec.find("config");
            if (c != spec.end() && !c->is_null()) {
                if (!c->is_object())
                    throw ValueError("Could not interpret " + what + " config: expected an object, got " + c->dump());
                config = *c;
            }
            return { cn->get<std::string>(), std::move(config) };
        }
        auto nm = spec.find("name");
        if (nm != spec.end() && nm->is_string()) {
            json config = spec;
            config.erase("name");
            return { nm->get<std::string>(), std::move(config) };
        }
    }
    throw ValueError("Could not interpret " + what + " identifier: " + spec.dump());
}

/// Keras 3's serialize_keras_object for a built-in class.
inline json keras3_serialized(const std::string& module, const std::string& class_name, json config)
{
    return json{ { "module", module },
                 { "class_name", class_name },
                 { "config", std::move(config) },
                 { "registered_name", nullptr } };
}

/// An optional number in a config: nullopt when absent or null.
inline std::optional<double> config_optional_number(const json& config, const std::string& key)
{
    note_config_key(key);
    auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return std::nullopt;
    if (it->is_number())
        return it->get<double>();
    throw ValueError("config key '" + key + "': expected a number or null, got " + it->dump());
}

/// A json number, or null for nullopt.
inline json optional_to_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

} // namespace xtape
