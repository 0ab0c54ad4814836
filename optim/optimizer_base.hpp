// The part every Keras 3 optimizer shares (keras/src/optimizers/base_optimizer.py): the
// learning rate (a constant or a schedule evaluated at iterations()), gradient clipping, weight
// decay, slot variables, constraints and the iteration counter. A concrete optimizer adds its
// slots in build_slots() and its update formula in update_step().
//
// One step of apply_gradients, in Keras's order:
//   1. check every gradient against its variable (ShapeError naming both shapes; nothing changes);
//   2. clip: clipnorm (each gradient to norm <= clipnorm), else global_clipnorm (all gradients
//      scaled by clipnorm / max(global norm, clipnorm)), else clipvalue (each element into
//      [-clipvalue, clipvalue]); Keras allows only one of them (ValueError otherwise);
//   3. weight decay, only when weight_decay is set: w -= w * weight_decay * lr;
//   4. update_step for each variable with lr = the learning rate at iterations();
//   5. iterations += 1; then each variable's constraint.
// Undefined gradient tensors are skipped (Keras filters None gradients), all of them: ValueError.
//
// Note [Optimizer memory]: slots and clipping buffers are allocated by the first step; later
// steps allocate nothing. Update kernels are plain loops over contiguous memory, split over
// threads for large variables (elementwise, so results do not depend on the thread count).
#pragma once

#include "framework/optimizer.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace xtape {

/// A constant learning rate or a schedule; converts implicitly from either.
class LearningRate {
public:
    /// A constant learning rate.
    LearningRate(double value)
        : m_value(value)
    {
    }
    /// A schedule evaluated at each step; ValueError for a null schedule.
    LearningRate(std::shared_ptr<const LearningRateSchedule> schedule);
    template <class S, class = std::enable_if_t<std::is_base_of_v<LearningRateSchedule, S>>>
    /// A schedule of any LearningRateSchedule subclass (std::make_shared<ExponentialDecay>(...)).
    LearningRate(std::shared_ptr<S> schedule)
        : LearningRate(std::shared_ptr<const LearningRateSchedule>(std::move(schedule)))
    {
    }
    /// The learning rate at optimizer step `step`: the constant, or the schedule's value.
    double at(std::int64_t step) const { return m_schedule ? (*m_schedule)(step) : m_value; }
    /// The schedule, null for a constant learning rate.
    const std::shared_ptr<const LearningRateSchedule>& schedule() const { return m_schedule; }
    /// A number, or the schedule in Keras 3's serialized form.
    json to_json() const;
    /// A number or a serialized schedule (Keras 2 or 3 form).
    static LearningRate from_json(const json& j);

private:
    double m_value = 0.0;
    std::shared_ptr<const LearningRateSchedule> m_schedule;
};

/// The arguments of Keras's BaseOptimizer that xtape implements.
struct OptimizerArgs {
    /// tf.keras 2 / Keras 2's time-based decay: the step uses lr / (1 + decay * iterations).
    double decay = 0.0;
    std::optional<double> weight_decay;
    std::optional<double> clipnorm;
    std::optional<double> clipvalue;
    std::optional<double> global_clipnorm;
    std::string name; ///< empty: the optimizer's default name
};

template <class T>
/// Keras 3's BaseOptimizer: learning rate, clipping, weight decay, slots and iterations shared by every optimizer (see the top of this file).
class OptimizerBase : public Optimizer<T> {
public:
    void apply_gradients(const std::vector<Tensor<T>>& grads, const std::vector<Variable<T>>& vars) override;

    /// The learning rate hyperparameter at iterations() (what Keras 2's callbacks read and set);
    /// with a legacy `decay` the step divides it by (1 + decay * iterations()).
    double learning_rate() const override { return m_learning_rate.at(m_iterations); }
    /// The rate the next step uses: learning_rate() / (1 + decay * iterations()).
    double decayed_learning_rate() const;
    /// Keras 2's time-based `decay` (0: none).
    double decay() const { return m_decay; }
    /// Keras: a schedule's learning rate cannot be set (ValueError; Keras raises TypeError).
    void set_learning_rate(double lr) override;
    /// Replaces the learning rate by a constant or a schedule.
    void set_learning_rate_schedule(LearningRate lr) { m_learning_rate = std::move(lr); }
    /// The learning rate as given: a constant or a schedule.
    const LearningRate& learning_rate_spec() const { return m_learning_rate; }
    std::int64_t iterations() const override { return m_iterations; }

    /// Keras 3's base keys: name, learning_rate, weight_decay, clipnorm, global_clipnorm, clipvalue,
    /// use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps;
    /// and tf.keras 2's `decay` when it is not 0.
    json get_config() const override;

    /// "<name>/iteration", then one block per slot kind (in the order the optimizer creates them)
    /// holding one slot per variable, then extra state (Nadam's u_product). Empty before build.
    std::vector<Variable<T>> variables() const override;
    /// requires: values has variables().size() arrays of the variables' shapes (iterations may be
    ///           any array of one element); `vars` builds the slots when not built yet (ignored
    ///           otherwise: the values follow variables()).
    void set_state(const std::vector<Variable<T>>& vars, const std::vector<array_t<T>>& values) override;
    void add_variables(const std::vector<Variable<T>>& vars) override;

    /// Creates the slots for `vars` (the first apply_gradients does it when not called before).
    void build(const std::vector<Variable<T>>& vars);
    /// Whether the slots exist (after build() or the first apply_gradients).
    bool built() const { return m_built; }
    /// The variables the slots belong to: slot j of each kind is built_variables()[j]'s.
    const std::vector<Variable<T>>& built_variables() const { return m_vars; }
    /// The number of slot kinds and of extra variables variables() lists (file formats that order
    /// the state otherwise, such as Keras 3's, need the layout).
    std::size_t num_slot_kinds() const { return m_slots.size(); }
    /// The number of state variables that belong to no model variable (Nadam's u_product: 1).
    std::size_t num_extra_variables() const { return m_extras.size(); }

    /// The optimizer's name (Keras's default: "adam", "SGD", ...), the prefix of its variables in files.
    const std::string& name() const { return m_name; }
    /// Renames the optimizer (and so the paths of its variables).
    void set_name(std::string name) { m_name = std::move(name); }
    /// Keras's weight_decay: w -= w * weight_decay * lr before each update; nullopt for none.
    std::optional<double> weight_decay() const { return m_weight_decay; }
    /// Sets (or, with nullopt, removes) the weight decay.
    void set_weight_decay(std::optional<double> wd) { m_weight_decay = wd; }
    /// Each gradient clipped to this L2 norm; nullopt for none.
    std::optional<double> clipnorm() const { return m_clipnorm; }
    /// Each gradient element clipped into [-clipvalue, clipvalue]; nullopt for none.
    std::optional<double> clipvalue() const { return m_clipvalue; }
    /// All gradients scaled together so that their global norm is at most this; nullopt for none.
    std::optional<double> global_clipnorm() const { return m_global_clipnorm; }
    /// Each throws ValueError when another clipping argument is already set (Keras allows one).
    void set_clipnorm(std::optional<double> v);
    /// Sets clipvalue; ValueError when clipnorm or global_clipnorm is already set.
    void set_clipvalue(std::optional<double> v);
    /// Sets global_clipnorm; ValueError when clipnorm or clipvalue is already set.
    void set_global_clipnorm(std::optional<double> v);
    /// Sets weight_decay, the clipping arguments and (if not empty) the name.
    void set_args(const OptimizerArgs& args);

    /// Variables left out of weight decay: these handles, and those whose name contains one of
    /// `var_names` (Keras matches a regex; here a plain substring). requires: not built yet.
    void exclude_from_weight_decay(const std::vector<Variable<T>>& vars, const std::vector<std::string>& var_names = {});

protected:
    /// For subclasses: the learning rate (constant or schedule) and Keras's default name ("adam", "rmsprop", "SGD").
    OptimizerBase(LearningRate learning_rate, std::string name);

    /// Creates the slots with add_slots() / add_extra_variable(); called once, by build().
    virtual void build_slots() = 0;
    /// Runs once per step before the update_step calls (Nadam advances its u_product here).
    virtual void before_update_steps(double lr) { (void)lr; }
    /// Updates one variable of n elements in place from gradient g (clipped, contiguous).
    /// `index` selects the variable's slots; lr is the learning rate of this step.
    virtual void update_step(std::size_t index, const T* g, T* w, std::size_t n, double lr) = 0;

    /// One slot per built variable, of its shape, filled with `initial`; returns the kind's index.
    std::size_t add_slots(const std::string& kind, double initial = 0.0);
    /// State that belongs to no variable, listed after the slots; returns its index.
    std::size_t add_extra_variable(const std::string& name, array_t<T> value);
    /// The data of slot `kind` (add_slots's index) for variable `index`, contiguous, of the variable's size.
    T* slot(std::size_t kind, std::size_t index) { return m_slots[kind][index].mutable_value().data(); }
    /// The extra variable `i` (add_extra_variable's index).
    Variable<T>& extra(std::size_t i) { return m_extras[i]; }
    /// The number of model variables the optimizer was built for.
    std::size_t num_built_variables() const { return m_vars.size(); }

    /// Reads the base keys of a Keras config (Keras 1, 2 and 3 forms: "lr" for learning_rate;
    /// tf.keras 2's decay applied; jit_compile, is_legacy_optimizer ignored; use_ema and gradient
    /// accumulation refused)
    /// and checks that every other key is in `own_keys` (ValueError naming the rest).
    static OptimizerArgs parse_base_config(const json& config, const std::vector<std::string>& own_keys,
                                           const std::string& class_name, LearningRate& learning_rate);

private:
    static constexpr std::size_t npos_index = static_cast<std::size_t>(-1);
    bool excluded_from_weight_decay(const Variable<T>& v) const;
    Variable<T> make_slot(const Variable<T>& v, const std::string& kind, double initial) const;
    std::size_t index_of(const Variable<T>& v) const;
    /// Points m_gptr at each gradient, clipped into m_clip_buf when clipping is on.
    void clip_gradients(const std::vector<Tensor<T>>& grads);

    LearningRate m_learning_rate;
    std::string m_name;
    std::optional<double> m_weight_decay, m_clipnorm, m_clipvalue, m_global_clipnorm;
    double m_decay = 0.0;

    bool m_built = false;
    std::int64_t m_iterations = 0;
    Variable<T> m_iteration_var;
    std::vector<Variable<T>> m_vars;
    std::unordered_map<const TensorNode<T>*, std::size_t> m_index;
    std::vector<std::string> m_slot_kinds;
    std::vector<std::vector<Variable<T>>> m_slots;
    std::vector<Variable<T>> m_extras;
    std::vector<double> m_slot_initial; // per slot kind, for add_variables
    std::vector<char> m_use_weight_decay;
    std::vector<const TensorNode<T>*> m_wd_excluded;
    std::vector<std::string> m_wd_excluded_names;

    // Per-step scratch, sized once (Note [Optimizer memory]).
    std::vector<std::size_t> m_step_index;
    std::vector<const T*> m_gptr;
    std::vector<std::vector<T>> m_clip_buf;
};

} // namespace xtape
