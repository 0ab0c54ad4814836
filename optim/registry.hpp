// Optimizers by Keras name or config: get_optimizer<T>(spec) (declared in framework/optimizer.hpp)
// accepts "sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam" (any case), {class_name, config}
// from Keras 1/2 (also "Custom>Adam", "lr" for learning_rate, the legacy "decay" applied) and
// Keras 3's {module, class_name, config, registered_name}. Unknown names: KeyError naming them.
#pragma once

#include "framework/optimizer.hpp"
#include "optim/adagrad.hpp"
#include "optim/adam.hpp"
#include "optim/adamw.hpp"
#include "optim/nadam.hpp"
#include "optim/rmsprop.hpp"
#include "optim/schedules.hpp"
#include "optim/sgd.hpp"

namespace xtape {

/// Keras 3's serialized form: {"module": "keras.optimizers", "class_name", "config", "registered_name": null}.
template <class T>
json serialize_optimizer(const Optimizer<T>& optimizer);

} // namespace xtape
