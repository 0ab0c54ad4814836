// Reading Keras configs leniently: Keras files write booleans as 1/0 (tf.keras 2.14 wrote
// scale=1), numbers as ints or floats, and older versions leave keys out.
#pragma once

#include "framework/errors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace xtape {

using json = nlohmann::json;

// Note [Config keys read]: Keras refuses a config key its class does not take (TypeError,
// "Unrecognized keyword arguments"). A class takes the keys its get_config writes plus the older
// names its reader still understands (Keras 1's "output_dim", "init", ...); the accessors in
// this file and config_first note every key they look up while a ConfigKeyLog is open, and
// layer_from_config (layers/registry.cpp) opens one around each from_config, so that a key that
// was neither written nor read is reported. Reading a key by hand (config.find) does not note it:
// use the accessors, or note_config_key, for an old name that get_config does not write.
/// The config keys read while it is open on this thread (Note [Config keys read]).
class ConfigKeyLog {
public:
    ConfigKeyLog()
        : m_previous(current())
    {
        current() = this;
    }
    ~ConfigKeyLog() { current() = m_previous; }
    ConfigKeyLog(const ConfigKeyLog&) = delete;
    ConfigKeyLog& operator=(const ConfigKeyLog&) = delete;

    /// Notes `key` in the innermost open log of this thread, if any.
    static void note(const std::string& key)
    {
        if (current())
            current()->m_keys.push_back(key);
    }
    /// Whether `key` was noted while this log was the innermost open one.
    bool was_read(const std::string& key) const
    {
        return std::find(m_keys.begin(), m_keys.end(), key) != m_keys.end();
    }

private:
    static ConfigKeyLog*& current()
    {
        static thread_local ConfigKeyLog* log = nullptr;
        return log;
    }
    ConfigKeyLog* m_previous;
    std::vector<std::string> m_keys;
};

inline void note_config_key(const std::string& key) { ConfigKeyLog::note(key); }

/// A config value that must be a whole number in [lo, hi] (Keras writes 10 or 10.0); `what` names
/// the key in the ValueError. Without the check, 1e300 converted to an integer is undefined.
template <class I = long>
I config_integer_value(const json& v, const std::string& what, I lo = std::numeric_limits<I>::min(),
                       I hi = std::numeric_limits<I>::max())
{
    // long double holds every 64-bit integer exactly (x86's 64-bit mantissa), so the bounds of
    // any integer type compare without rounding.
    long double x = 0;
    if (v.is_number_unsigned()) {
        x = static_cast<long double>(v.get<unsigned long long>());
    } else if (v.is_number_integer()) {
        x = static_cast<long double>(v.get<long long>());
    } else if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>())) {
        x = static_cast<long double>(v.get<double>());
    } else {
        throw ValueError("config key '" + what + "': expected an integer, got " + v.dump());
    }
    if (x >= static_cast<long double>(lo) && x <= static_cast<long double>(hi))
        return static_cast<I>(x);
    throw ValueError("config key '" + what + "': " + v.dump() + " is out of range (expected an integer in [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "])");
}

/// config[key] as a bool, accepting true/false and numbers (nonzero = true); `fallback` if absent or null.
inline bool config_bool(const json& config, const std::string& key, bool fallback)
{
    note_config_key(key);
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
    note_config_key(key);
    auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return fallback;
    if (it->is_number())
        return it->get<double>();
    throw ValueError("config key '" + key + "': expected a number, got " + it->dump());
}

inline std::string config_string(const json& config, const std::string& key, const std::string& fallback)
{
    note_config_key(key);
    auto it = config.find(key);
    if (it == config.end() || it->is_null())
        return fallback;
    if (it->is_string())
        return it->get<std::string>();
    throw ValueError("config key '" + key + "': expected a string, got " + it->dump());
}

} // namespace xtape
