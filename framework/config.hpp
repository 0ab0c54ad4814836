// Reading Keras configs leniently: Keras files write booleans as 1/0 (tf.keras 2.14 wrote
// scale=1), numbers as ints or floats, and older versions leave keys out.
#pragma once

#include "framework/errors.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace xtape {

using json = nlohmann::json;

/// config[key] as a bool, accepting true/false and numbers (nonzero = true); `fallback` if absent or null.
inline bool config_bool(const json& config, const std::string& key, bool fallback)
{
    auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return fallback;
    if (it->is_boolean())
        return it->get<bool>();
    if (it->is_number())
        return it->get<double>() != 0.0;
    throw ValueError("config key '" + key + "': expected a boolean, got " + it->dump());
}

inline double config_number(const json& config, const std::string& key, double fallback)
{
    auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return fallback;
    if (it->is_number())
        return it->get<double>();
    throw ValueError("config key '" + key + "': expected a number, got " + it->dump());
}

inline std::string config_string(const json& config, const std::string& key, const std::string& fallback)
{
    auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return fallback;
    if (it->is_string())
        return it->get<std::string>();
    throw ValueError("config key '" + key + "': expected a string, got " + it->dump());
}

} // namespace xtape
