// Reading the arguments that layers over spatial data share (pooling, padding, cropping,
// up-sampling, spatial dropout), in every form Keras has written them: Keras 2/3's data_format and
// padding, Keras 1's dim_ordering ("tf"/"th") and border_mode, and sizes given as one integer or as
// one integer per spatial axis.
#pragma once

#include "framework/config.hpp"
#include "framework/errors.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace xtape {

inline std::string lower_case(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

/// Keras's backend.standardize_data_format: any case of "channels_last" or "channels_first".
inline std::string standardize_data_format(const std::string& data_format)
{
    const std::string f = lower_case(data_format);
    if (f != "channels_last" && f != "channels_first")
        throw ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         "Received: data_format=" +
                         data_format);
    return f;
}

/// Keras's standardize_padding for pooling and convolutions: "valid" or "same" in any case.
inline std::string standardize_padding(const std::string& padding)
{
    const std::string p = lower_case(padding);
    if (p != "valid" && p != "same")
        throw ValueError("The `padding` argument must be a list/tuple or one of {'valid', 'same'}. Received: " +
                         padding);
    return p;
}

/// data_format of a config: Keras 2/3 "data_format" (null: Keras's default image_data_format,
/// channels_last), else Keras 1 "dim_ordering": "tf" channels_last, "th" channels_first, and
/// "default" (the user's keras.json, "tf" unless changed) channels_last.
inline std::string data_format_from_config(const json& config)
{
    auto it = config.find("data_format");
    if (it != config.end() && !it->is_null())
        return standardize_data_format(config_string(config, "data_format", "channels_last"));
    const std::string ordering = config_string(config, "dim_ordering", "default");
    if (ordering == "tf" || ordering == "default")
        return "channels_last";
    if (ordering == "th")
        return "channels_first";
    throw ValueError("layer config: dim_ordering must be 'tf', 'th' or 'default', got '" + ordering + "'");
}

/// Keras's standardize_tuple: `value` is one integer (repeated n times) or a list of n integers,
/// each > 0 (>= 0 with allow_zero). `name` is the argument in errors.
inline std::vector<long> int_tuple(const json& value, std::size_t n, const std::string& name, bool allow_zero = false)
{
    const std::string error = "The `" + name + "` argument must be a tuple of " + std::to_string(n) +
                              " integers. Received " + name + "=" + value.dump();
    auto as_int = [&](const json& v) {
        if (!v.is_number())
            throw ValueError(error);
        try {
            return config_integer_value<long>(v, name);
        } catch (const ValueError& e) {
            throw ValueError(error + " (" + e.what() + ")");
        }
    };
    std::vector<long> out;
    if (value.is_array()) {
        if (value.size() != n)
            throw ValueError(error);
        for (const auto& v : value)
            out.push_back(as_int(v));
    } else {
        out.assign(n, as_int(value));
    }
    for (long v : out)
        if (v < 0 || (v == 0 && !allow_zero))
            throw ValueError(error + ", including values that do not satisfy `value " + (allow_zero ? ">= 0" : "> 0") +
                             "`");
    return out;
}

/// The same for a C++ argument: one value for every axis or one per axis.
inline std::vector<long> int_tuple(const std::vector<long>& value, std::size_t n, const std::string& name,
                                   bool allow_zero = false)
{
    return int_tuple(json(value.size() == 1 ? json(value[0]) : json(value)), n, name, allow_zero);
}

} // namespace xtape
