// The optimizer interface the training loop sees. Concrete optimizers live in optim/ and
// know only variables and gradients. Update formulas, defaults and config keys are Keras's.
#pragma once

#include "framework/config.hpp"
#include "framework/tensor.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtape {

/// learning rate as a function of the optimizer's step count (Keras's LearningRateSchedule).
class LearningRateSchedule {
public:
    /// Destroys the schedule (shared by the optimizers that use it).
    virtual ~LearningRateSchedule() = default;
    /// The learning rate at optimizer step `step` (0 for the first update).
    virtual double operator()(std::int64_t step) const = 0;
    /// Keras's class name ("ExponentialDecay", "CosineDecay", ...).
    virtual std::string class_name() const = 0;
    /// Keras's config: the schedule's constructor arguments by name.
    virtual json get_config() const = 0;
};

template <class T>
/// keras.optimizers.Optimizer as the training loop sees it: apply_gradients, the learning rate, and state for saving.
class Optimizer {
public:
    /// Destroys the optimizer and its slot variables.
    virtual ~Optimizer() = default;

    /// requires: grads[i] has the shape of vars[i] (ShapeError naming the variable otherwise);
    ///           the same variables, in the same order, on every call after the first.
    /// ensures:  gradients clipped (clipvalue, clipnorm, global_clipnorm), each variable updated
    ///           by update_step with the current learning rate, its constraint applied, and
    ///           iterations() increased by one.
    virtual void apply_gradients(const std::vector<Tensor<T>>& grads, const std::vector<Variable<T>>& vars) = 0;

    /// The learning rate that the next step uses (a schedule evaluated at iterations()).
    virtual double learning_rate() const = 0;
    /// Replaces the learning rate with a constant (ReduceLROnPlateau, LearningRateScheduler).
    virtual void set_learning_rate(double lr) = 0;
    /// The number of apply_gradients calls so far (Keras's optimizer.iterations).
    virtual std::int64_t iterations() const = 0;

    /// Keras's class name ("Adam", "SGD", ...), as in configs and files.
    virtual std::string class_name() const = 0;
    /// Keras's config keys (name, learning_rate, ..., clipnorm, clipvalue, global_clipnorm).
    virtual json get_config() const = 0;

    /// Optimizer state for saving: iterations first, then the slot variables in Keras 3's
    /// order (per slot kind, per model variable). Empty before the first step.
    virtual std::vector<Variable<T>> variables() const = 0;
    /// Creates the slots for `vars` (if not yet) and loads saved state into them.
    virtual void set_state(const std::vector<Variable<T>>& vars, const std::vector<array_t<T>>& values) = 0;
    /// compile() after unfreezing layers: a built optimizer creates slots for the variables of
    /// `vars` it does not know and keeps the slots (and step count) of those it does.
    virtual void add_variables(const std::vector<Variable<T>>& vars) { (void)vars; }
};

template <class T>
using OptimizerPtr = std::shared_ptr<Optimizer<T>>;

/// By Keras name ("sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam") or config
/// ({class_name, config}, also "Custom>Adam" and Keras 3's module form). Defined in optim/.
/// `keras_version`: the version that wrote the config (a file's keras_version attribute), whose
/// defaults fill the keys it leaves out (Note [Optimizer defaults by version] in optim/registry.cpp);
/// empty: Keras 3's.
template <class T>
OptimizerPtr<T> get_optimizer(const json& spec, const std::string& keras_version = "");

} // namespace xtape
