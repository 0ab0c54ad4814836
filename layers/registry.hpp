// Layers by their Keras class names: the bridge from a saved config to a C++ layer.
//
//   auto layer = layer_from_config<float>("Dense", {{"units", 10}, {"activation", "relu"}});
//   register_layer<float>("MyLayer", [](const json& c) { return std::make_shared<MyLayer<float>>(c); });
//
// Every built-in layer is registered under its Keras class name (and the Keras 1 names where
// they differ). A name Keras knows but xtape does not implement gives NotImplementedError; a
// name nobody registered gives KeyError. Both name the class.
#pragma once

#include "framework/layer.hpp"

#include <functional>
#include <string>
#include <vector>

namespace xtape {

template<class T>
using LayerFactory = std::function<LayerPtr<T>(const json& config)>;

/// A new layer of `class_name` from its config (Keras 1, 2 or 3 form).
template<class T>
LayerPtr<T> layer_from_config(const std::string& class_name, const json& config);

/// The same from a serialized layer {"class_name": ..., "config": {...}} (Keras 3 adds "module"
/// and "registered_name"; a "registered_name" like "package>Name" is looked up first).
template<class T>
LayerPtr<T> layer_from_config(const json& serialized);

/// Adds (or replaces) the factory for `class_name`; later lookups of that name use it.
template<class T>
void register_layer(const std::string& class_name, LayerFactory<T> factory);

/// True when `class_name` has a factory.
template<class T>
bool is_registered_layer(const std::string& class_name);

/// Registered class names, sorted.
template<class T>
std::vector<std::string> registered_layers();

} // namespace xtape
