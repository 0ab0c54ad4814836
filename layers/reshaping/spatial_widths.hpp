// Reading the (before, after) widths of ZeroPadding and Cropping configs in every form Keras has
// written: one integer for both sides, a pair, per-axis pairs, and Keras 1's 4-entry list and
// dictionaries ({"top_pad": ...} / {"left_pad": ...}).
#pragma once

#include "framework/config.hpp"
#include "framework/errors.hpp"
#include "framework/resampling.hpp"

#include <string>

namespace xtape {

namespace detail {
/// One non-negative integer width; ValueError naming the argument `what` otherwise.
inline std::size_t width_value(const json& v, const std::string& what)
{
    if (!v.is_number_integer() || v.get<long>() < 0)
        throw ValueError("The `" + what + "` argument must be a non-negative integer or a tuple of them. Received " +
                         what + "=" + v.dump());
    return v.get<std::size_t>();
}
/// An int (both sides) or a list of two ints.
inline std::pair<std::size_t, std::size_t> width_pair(const json& v, const std::string& what)
{
    if (v.is_array()) {
        if (v.size() != 2)
            throw ValueError("The `" + what + "` argument must be a tuple of 2 integers. Received " + what + "=" +
                             v.dump());
        return { width_value(v[0], what), width_value(v[1], what) };
    }
    const std::size_t w = width_value(v, what);
    return { w, w };
}
} // namespace detail

/// `axes` (1 or 2) pairs from a config value; `keys` are Keras 1's dictionary keys in order
/// (left/right or top/bottom/left/right).
inline pad_widths_t widths_from_json(const json& v, std::size_t axes, const std::string& what)
{
    if (v.is_object()) { // Keras 1
        const char* keys1[] = { "left_pad", "right_pad" };
        const char* keys2[] = { "top_pad", "bottom_pad", "left_pad", "right_pad" };
        const char* const* keys = axes == 1 ? keys1 : keys2;
        pad_widths_t w(axes);
        for (std::size_t a = 0; a < axes; ++a) {
            w[a].first = detail::width_value(v.value(keys[2 * a], json(0)), what);
            w[a].second = detail::width_value(v.value(keys[2 * a + 1], json(0)), what);
        }
        return w;
    }
    if (axes == 1)
        return { detail::width_pair(v, what) };
    if (!v.is_array()) {
        const auto p = detail::width_pair(v, what);
        return { p, p };
    }
    if (v.size() == 4) // Keras 1: (top, bottom, left, right)
        return { { detail::width_value(v[0], what), detail::width_value(v[1], what) },
                 { detail::width_value(v[2], what), detail::width_value(v[3], what) } };
    if (v.size() != 2)
        throw ValueError("`" + what + "` should have two elements. Received: " + what + "=" + v.dump() + ".");
    return { detail::width_pair(v[0], "1st entry of " + what), detail::width_pair(v[1], "2nd entry of " + what) };
}

/// Keras 3's form of the widths: [a, b] for one axis, [[top, bottom], [left, right]] for two.
inline json widths_to_json(const pad_widths_t& w)
{
    json j = json::array();
    for (const auto& p : w)
        j.push_back(json::array({ p.first, p.second }));
    return w.size() == 1 ? j[0] : j;
}

} // namespace xtape
