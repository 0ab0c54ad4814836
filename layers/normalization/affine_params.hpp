// The gamma/beta arguments that LayerNormalization and GroupNormalization share with Keras
// (center, scale, the two initializers, regularizers and constraints), their config keys, and
// the axis argument read as Keras reads it (an int or a list of ints).
#pragma once

#include "framework/config.hpp"
#include "framework/errors.hpp"
#include "framework/initializer.hpp"

#include <string>
#include <vector>

namespace xtape {

template <class T>
/// The gamma (scale) and beta (center) arguments of LayerNormalization and GroupNormalization, with Keras's defaults (both on).
struct AffineParams {
    bool center = true;
    bool scale = true;
    InitializerPtr<T> beta_initializer;  ///< null: zeros
    InitializerPtr<T> gamma_initializer; ///< null: ones
    RegularizerPtr<T> beta_regularizer, gamma_regularizer;
    ConstraintPtr<T> beta_constraint, gamma_constraint;

    /// The same with the default initializers filled in.
    AffineParams with_defaults() const
    {
        AffineParams p = *this;
        if (!p.beta_initializer)
            p.beta_initializer = get_initializer<T>("zeros");
        if (!p.gamma_initializer)
            p.gamma_initializer = get_initializer<T>("ones");
        return p;
    }

    /// Reads the keys Keras writes (tf.keras and Keras 3 use the same names).
    static AffineParams from_config(const json& c)
    {
        AffineParams p;
        p.center = config_bool(c, "center", true);
        p.scale = config_bool(c, "scale", true);
        if (c.contains("beta_initializer") && !c["beta_initializer"].is_null())
            p.beta_initializer = get_initializer<T>(c["beta_initializer"]);
        if (c.contains("gamma_initializer") && !c["gamma_initializer"].is_null())
            p.gamma_initializer = get_initializer<T>(c["gamma_initializer"]);
        auto get = [&](const char* k) { return c.contains(k) ? c[k] : json(); };
        p.beta_regularizer = get_regularizer<T>(get("beta_regularizer"));
        p.gamma_regularizer = get_regularizer<T>(get("gamma_regularizer"));
        p.beta_constraint = get_constraint<T>(get("beta_constraint"));
        p.gamma_constraint = get_constraint<T>(get("gamma_constraint"));
        return p;
    }

    /// Adds Keras 3's keys to `c`.
    void to_config(json& c) const
    {
        const AffineParams p = with_defaults();
        c["center"] = p.center;
        c["scale"] = p.scale;
        c["beta_initializer"] = serialize<T>(p.beta_initializer);
        c["gamma_initializer"] = serialize<T>(p.gamma_initializer);
        c["beta_regularizer"] = serialize<T>(p.beta_regularizer);
        c["gamma_regularizer"] = serialize<T>(p.gamma_regularizer);
        c["beta_constraint"] = serialize<T>(p.beta_constraint);
        c["gamma_constraint"] = serialize<T>(p.gamma_constraint);
    }
};

/// Keras's axis argument: an int or a list of ints; anything else is Keras's TypeError (as a
/// ValueError here), naming the layer.
inline std::vector<int> axis_from_config(const json& ax, const std::string& layer)
{
    auto as_int = [&](const json& v) {
        if (!v.is_number_integer())
            throw ValueError(layer + ": Expected an int or a list/tuple of ints for the argument 'axis', but received: " +
                             ax.dump());
        return v.get<int>();
    };
    std::vector<int> axis;
    if (ax.is_array())
        for (const auto& v : ax)
            axis.push_back(as_int(v));
    else
        axis.push_back(as_int(ax));
    return axis;
}

/// `v` when the layer has it; otherwise RuntimeError naming the layer, the weight and `why` it is absent.
template <class T>
const Variable<T>& require_weight(const Variable<T>& v, const std::string& layer, const char* what, const char* why)
{
    if (!v.defined())
        throw RuntimeError("layer \"" + layer + "\" has no `" + what + "` (" + why + ")");
    return v;
}

/// "[1, 2]" as Keras prints a list of axes.
inline std::string axis_list_str(const std::vector<int>& axis)
{
    std::string s = "[";
    for (std::size_t i = 0; i < axis.size(); ++i)
        s += (i ? ", " : "") + std::to_string(axis[i]);
    return s + "]";
}

} // namespace xtape
