#include "optim/optimizer_base.hpp"

#include "framework/initializer.hpp"
#include "framework/keras_object.hpp"
#include "framework/parallel.hpp"
#include "optim/schedules.hpp"

#include <algorithm>
#include <cmath>

namespace xtape {

LearningRate::LearningRate(std::shared_ptr<const LearningRateSchedule> schedule)
    : m_schedule(std::move(schedule))
{
    if (!m_schedule)
        throw ValueError("learning rate: a null schedule");
}

json LearningRate::to_json() const
{
    return m_schedule ? serialize_schedule(*m_schedule) : json(m_value);
}

LearningRate LearningRate::from_json(const json& j)
{
    if (j.is_number())
        return LearningRate(j.get<double>());
    if (j.is_object())
        return LearningRate(get_schedule(j));
    throw ValueError("Argument `learning_rate` should be float, or an instance of LearningRateSchedule. Received: " +
                     j.dump());
}

template <class T>
OptimizerBase<T>::OptimizerBase(LearningRate learning_rate, std::string name)
    : m_learning_rate(std::move(learning_rate))
    , m_name(std::move(name))
{
}

template <class T>
void OptimizerBase<T>::set_learning_rate(double lr)
{
    if (m_learning_rate.schedule())
        throw ValueError("This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                         "constructor argument, hence its learning rate is not settable. If you need the learning "
                         "rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
                         "argument.");
    m_learning_rate = LearningRate(lr);
}

namespace {
void check_one_clip(const char* setting, int count)
{
    if (count > 1)
        throw ValueError(std::string("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set "
                                     "(setting `") +
                         setting + "` while another is set).");
}
} // namespace

template <class T>
void OptimizerBase<T>::set_clipnorm(std::optional<double> v)
{
    check_one_clip("clipnorm", bool(v) + bool(m_clipvalue) + bool(m_global_clipnorm));
    m_clipnorm = v;
}

template <class T>
void OptimizerBase<T>::set_clipvalue(std::optional<double> v)
{
    check_one_clip("clipvalue", bool(v) + bool(m_clipnorm) + bool(m_global_clipnorm));
    m_clipvalue = v;
}

template <class T>
void OptimizerBase<T>::set_global_clipnorm(std::optional<double> v)
{
    check_one_clip("global_clipnorm", bool(v) + bool(m_clipnorm) + bool(m_clipvalue));
    m_global_clipnorm = v;
}

template <class T>
void OptimizerBase<T>::set_args(const OptimizerArgs& args)
{
    const int n = bool(args.clipnorm) + bool(args.clipvalue) + bool(args.global_clipnorm);
    if (n > 1)
        throw ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: clipnorm=" +
                         optional_to_json(args.clipnorm).dump() + ", clipvalue=" +
                         optional_to_json(args.clipvalue).dump() +
                         ", global_clipnorm=" + optional_to_json(args.global_clipnorm).dump());
    if (!(args.decay >= 0.0))
        throw ValueError("decay cannot be less than 0. Received: decay=" + json(args.decay).dump());
    m_clipnorm = args.clipnorm;
    m_clipvalue = args.clipvalue;
    m_global_clipnorm = args.global_clipnorm;
    m_weight_decay = args.weight_decay;
    m_decay = args.decay;
    if (!args.name.empty())
        m_name = args.name;
}

// Note [Legacy decay]: tf.keras 2's OptimizerV2 (and Keras 1/2 before it) divided the learning
// rate by (1 + decay * iterations), with iterations counted before the step (_decayed_lr); Keras 3
// dropped the argument and ignores it with a warning. A file written with decay > 0 was trained,
// and goes on training, with the decayed rate, so xtape applies it: after N steps the rate is
// lr / (1 + decay * N), as Keras would use at that step. learning_rate() stays the undecayed
// hyperparameter, which Keras 2's callbacks read and set (LearningRateScheduler,
// ReduceLROnPlateau, the logged "lr").
template <class T>
double OptimizerBase<T>::decayed_learning_rate() const
{
    const double lr = learning_rate();
    return m_decay > 0.0 ? lr / (1.0 + m_decay * static_cast<double>(m_iterations)) : lr;
}

template <class T>
void OptimizerBase<T>::exclude_from_weight_decay(const std::vector<Variable<T>>& vars,
                                                 const std::vector<std::string>& var_names)
{
    if (m_built)
        throw ValueError("`exclude_from_weight_decay()` can only be configured before the optimizer is built.");
    m_wd_excluded.clear();
    for (const auto& v : vars)
        m_wd_excluded.push_back(v.tensor().node());
    m_wd_excluded_names = var_names;
}

template <class T>
json OptimizerBase<T>::get_config() const
{
    json c = { { "name", m_name },
             { "learning_rate", m_learning_rate.to_json() },
             { "weight_decay", optional_to_json(m_weight_decay) },
             { "clipnorm", optional_to_json(m_clipnorm) },
             { "global_clipnorm", optional_to_json(m_global_clipnorm) },
             { "clipvalue", optional_to_json(m_clipvalue) },
             { "use_ema", false },
             { "ema_momentum", 0.99 },
             { "ema_overwrite_frequency", nullptr },
             { "loss_scale_factor", nullptr },
             { "gradient_accumulation_steps", nullptr } };
    if (m_decay != 0.0)
        c["decay"] = m_decay; // Note [Legacy decay]: tf.keras 2 reads it back, Keras 3 ignores it
    return c;
}

// ---- slots ------------------------------------------------------------------------------------

namespace {
// Keras 3 names a slot "<variable path with / and : replaced by _>_<kind>" inside the optimizer's
// name scope; xtape keeps the scope in the name: "adam/dense_kernel_momentum".
std::string sanitized(std::string s)
{
    std::replace(s.begin(), s.end(), '/', '_');
    std::replace(s.begin(), s.end(), ':', '_');
    return s;
}
} // namespace

template <class T>
void OptimizerBase<T>::build(const std::vector<Variable<T>>& vars)
{
    if (m_built)
        throw RuntimeError("optimizer '" + m_name + "': build() called twice");
    m_vars = vars;
    for (std::size_t i = 0; i < vars.size(); ++i) {
        if (!vars[i].defined())
            throw ValueError("optimizer '" + m_name + "': variable " + std::to_string(i) + " is empty");
        if (!m_index.emplace(vars[i].tensor().node(), i).second)
            throw ValueError("optimizer '" + m_name + "': variable '" + vars[i].name() + "' is listed twice");
    }
    m_iteration_var = Variable<T>(m_name + "/iteration", array_t<T>(static_cast<T>(m_iterations)), false);
    m_use_weight_decay.clear();
    for (const auto& v : vars)
        m_use_weight_decay.push_back(!excluded_from_weight_decay(v));
    m_clip_buf.resize(vars.size());
    m_step_index.reserve(vars.size());
    m_gptr.reserve(vars.size());
    m_built = true;
    build_slots();
}

template <class T>
bool OptimizerBase<T>::excluded_from_weight_decay(const Variable<T>& v) const
{
    const auto* node = v.tensor().node();
    bool excluded = std::find(m_wd_excluded.begin(), m_wd_excluded.end(), node) != m_wd_excluded.end();
    for (const auto& s : m_wd_excluded_names)
        excluded = excluded || v.name().find(s) != std::string::npos;
    return excluded;
}

template <class T>
Variable<T> OptimizerBase<T>::make_slot(const Variable<T>& v, const std::string& kind, double initial) const
{
    array_t<T> a = array_t<T>::from_shape(v.shape());
    a.fill(static_cast<T>(initial));
    return Variable<T>(m_name + "/" + sanitized(v.name()) + "_" + kind, std::move(a), false);
}

template <class T>
void OptimizerBase<T>::add_variables(const std::vector<Variable<T>>& vars)
{
    if (!m_built)
        return; // the first step builds the slots for the variables it is given
    if (std::all_of(vars.begin(), vars.end(), [this](const Variable<T>& v) {
            return !v.defined() || m_index.count(v.tensor().node()) > 0;
        }))
        return; // nothing new: the state keeps its order (TerminateOnNaN's copy of it stays valid)
    // The new order: `vars` (as the model lists its trainable weights, so that formats which
    // store the state by position line up), then the known variables `vars` leaves out (frozen
    // since), whose slots are kept for when they train again.
    std::vector<Variable<T>> order;
    std::unordered_map<const TensorNode<T>*, std::size_t> seen;
    for (const auto& v : vars)
        if (v.defined() && seen.emplace(v.tensor().node(), order.size()).second)
            order.push_back(v);
    for (const auto& v : m_vars)
        if (seen.emplace(v.tensor().node(), order.size()).second)
            order.push_back(v);
    std::vector<std::vector<Variable<T>>> slots(m_slots.size());
    std::vector<char> use_wd;
    for (const auto& v : order) {
        auto it = m_index.find(v.tensor().node());
        for (std::size_t k = 0; k < m_slots.size(); ++k)
            slots[k].push_back(it != m_index.end() ? m_slots[k][it->second]
                                                    : make_slot(v, m_slot_kinds[k], m_slot_initial[k]));
        use_wd.push_back(it != m_index.end() ? m_use_weight_decay[it->second] : !excluded_from_weight_decay(v));
    }
    m_vars = std::move(order);
    m_index = std::move(seen);
    m_slots = std::move(slots);
    m_use_weight_decay = std::move(use_wd);
    m_clip_buf.assign(m_vars.size(), {});
    m_step_index.reserve(m_vars.size());
    m_gptr.reserve(m_vars.size());
}

template <class T>
std::size_t OptimizerBase<T>::add_slots(const std::string& kind, double initial)
{
    std::vector<Variable<T>> slots;
    slots.reserve(m_vars.size());
    for (const auto& v : m_vars)
        slots.push_back(make_slot(v, kind, initial));
    m_slot_kinds.push_back(kind);
    m_slot_initial.push_back(initial);
    m_slots.push_back(std::move(slots));
    return m_slots.size() - 1;
}

template <class T>
std::size_t OptimizerBase<T>::add_extra_variable(const std::string& name, array_t<T> value)
{
    m_extras.emplace_back(m_name + "/" + name, std::move(value), false);
    return m_extras.size() - 1;
}

template <class T>
std::vector<Variable<T>> OptimizerBase<T>::variables() const
{
    std::vector<Variable<T>> out;
    if (!m_built)
        return out;
    out.push_back(m_iteration_var);
    for (const auto& kind : m_slots)
        out.insert(out.end(), kind.begin(), kind.end());
    out.insert(out.end(), m_extras.begin(), m_extras.end());
    return out;
}

template <class T>
void OptimizerBase<T>::set_state(const std::vector<Variable<T>>& vars, const std::vector<array_t<T>>& values)
{
    // Once built, the state is in the optimizer's own order (variables()) and `vars` is not
    // needed: after add_variables, or a layer frozen since, the model lists another set.
    if (!m_built)
        build(vars);
    std::vector<Variable<T>> state = variables();
    if (values.size() != state.size())
        throw ValueError("optimizer '" + m_name + "' has " + std::to_string(state.size()) +
                         " variables whereas the saved state has " + std::to_string(values.size()));
    if (values[0].size() != 1)
        throw ShapeError("optimizer '" + m_name + "': the saved iteration count has shape " +
                         shape_str(shape_of(values[0])) + ", expected one element");
    for (std::size_t i = 1; i < values.size(); ++i)
        if (shape_of(values[i]) != state[i].shape())
            throw ShapeError("optimizer '" + m_name + "': variable '" + state[i].name() + "' has shape " +
                             shape_str(state[i].shape()) + ", the saved value has shape " +
                             shape_str(shape_of(values[i])));
    m_iterations = static_cast<std::int64_t>(std::llround(static_cast<double>(values[0].data()[0])));
    m_iteration_var.mutable_value().data()[0] = static_cast<T>(m_iterations);
    for (std::size_t i = 1; i < values.size(); ++i)
        state[i].assign(values[i]);
}

// ---- one step -----------------------------------------------------------------------------------

template <class T>
std::size_t OptimizerBase<T>::index_of(const Variable<T>& v) const
{
    auto it = m_index.find(v.tensor().node());
    if (it == m_index.end())
        throw ValueError("Unknown variable: '" + v.name() + "'. This optimizer ('" + m_name +
                         "') can only be called for the variables it was originally built with. When working with "
                         "a new set of variables, you should recreate a new optimizer instance.");
    return it->second;
}

template <class T>
void OptimizerBase<T>::clip_gradients(const std::vector<Tensor<T>>& grads)
{
    const std::size_t n = grads.size();
    m_gptr.assign(n, nullptr);
    for (std::size_t i = 0; i < n; ++i)
        if (m_step_index[i] != npos_index)
            m_gptr[i] = grads[i].data();

    auto sum_squares = [](const T* g, std::size_t len) {
        return deterministic_sum(len, [g](std::size_t j) { return double(g[j]) * double(g[j]); });
    };
    // Writes scale * g into the variable's buffer (allocated by its first use, then reused).
    auto scaled_copy = [this, &grads](std::size_t i, double scale) {
        auto& buf = m_clip_buf[m_step_index[i]];
        const std::size_t len = grads[i].size();
        buf.resize(len);
        const T* g = grads[i].data();
        T* b = buf.data();
        const T s = static_cast<T>(scale);
        parallel_for(len, [=](std::size_t lo, std::size_t hi) {
            for (std::size_t j = lo; j < hi; ++j)
                b[j] = g[j] * s;
        });
        m_gptr[i] = b;
    };

    if (m_clipnorm && *m_clipnorm > 0) {
        // Keras: g * clipnorm / max(norm, clipnorm); a gradient already within the norm passes unchanged.
        const double c = *m_clipnorm;
        for (std::size_t i = 0; i < n; ++i) {
            if (!m_gptr[i])
                continue;
            const double norm = std::sqrt(sum_squares(grads[i].data(), grads[i].size()));
            if (norm > c)
                scaled_copy(i, c / norm);
        }
    } else if (m_global_clipnorm && *m_global_clipnorm > 0) {
        const double c = *m_global_clipnorm;
        double total = 0.0;
        for (std::size_t i = 0; i < n; ++i)
            if (m_gptr[i])
                total += sum_squares(grads[i].data(), grads[i].size());
        const double norm = std::sqrt(total);
        // Keras's clip_by_global_norm: a finite norm gives clipnorm * min(1/norm, 1/clipnorm); an
        // infinite or NaN norm makes the scale NaN (norm - norm), so the step shows the problem.
        const double scale = c * std::min(1.0 / norm, 1.0 / c) + (norm - norm);
        if (scale != 1.0)
            for (std::size_t i = 0; i < n; ++i)
                if (m_gptr[i])
                    scaled_copy(i, scale);
    } else if (m_clipvalue && *m_clipvalue > 0) {
        const T v = static_cast<T>(*m_clipvalue);
        for (std::size_t i = 0; i < n; ++i) {
            if (!m_gptr[i])
                continue;
            auto& buf = m_clip_buf[m_step_index[i]];
            const std::size_t len = grads[i].size();
            buf.resize(len);
            const T* g = grads[i].data();
            T* b = buf.data();
            parallel_for(len, [=](std::size_t lo, std::size_t hi) {
                for (std::size_t j = lo; j < hi; ++j)
                    b[j] = std::min(std::max(g[j], -v), v);
            });
            m_gptr[i] = b;
        }
    }
}

template <class T>
void OptimizerBase<T>::apply_gradients(const std::vector<Tensor<T>>& grads, const std::vector<Variable<T>>& vars)
{
    if (grads.size() != vars.size())
        throw ValueError("optimizer '" + m_name + "': apply_gradients received " + std::to_string(grads.size()) +
                         " gradients for " + std::to_string(vars.size()) + " variables");
    if (vars.empty())
        return;
    if (!m_built)
        build(vars);

    // Validate everything before changing anything.
    m_step_index.assign(vars.size(), npos_index);
    bool any = false;
    for (std::size_t i = 0; i < vars.size(); ++i) {
        const std::size_t idx =
            (i < m_vars.size() && vars[i].same_as(m_vars[i])) ? i : index_of(vars[i]); // fast path: same order
        if (!grads[i].defined())
            continue;
        if (grads[i].shape() != vars[i].shape())
            throw ShapeError("optimizer '" + m_name + "': the gradient for variable '" + vars[i].name() +
                             "' has shape " + shape_str(grads[i].shape()) + ", expected the variable's shape " +
                             shape_str(vars[i].shape()));
        m_step_index[i] = idx;
        any = true;
    }
    if (!any)
        throw ValueError("No gradients provided for any variable.");

    clip_gradients(grads);
    const double lr = decayed_learning_rate();

    if (m_weight_decay) {
        const T f = static_cast<T>(*m_weight_decay) * static_cast<T>(lr);
        for (std::size_t i = 0; i < vars.size(); ++i) {
            if (m_step_index[i] == npos_index || !m_use_weight_decay[m_step_index[i]])
                continue;
            Variable<T> v = vars[i];
            T* w = v.mutable_value().data();
            parallel_for(v.size(), [=](std::size_t lo, std::size_t hi) {
                for (std::size_t j = lo; j < hi; ++j)
                    w[j] -= w[j] * f;
            });
        }
    }

    before_update_steps(lr);
    for (std::size_t i = 0; i < vars.size(); ++i) {
        if (m_step_index[i] == npos_index)
            continue;
        Variable<T> v = vars[i];
        update_step(m_step_index[i], m_gptr[i], v.mutable_value().data(), v.size(), lr);
    }
    ++m_iterations;
    m_iteration_var.mutable_value().data()[0] = static_cast<T>(m_iterations);

    for (std::size_t i = 0; i < vars.size(); ++i)
        if (m_step_index[i] != npos_index) {
            Variable<T> v = vars[i];
            v.apply_constraint();
        }
}

// ---- configs ------------------------------------------------------------------------------------

template <class T>
OptimizerArgs OptimizerBase<T>::parse_base_config(const json& config, const std::vector<std::string>& own_keys,
                                                  const std::string& class_name, LearningRate& learning_rate)
{
    if (!config.is_object())
        throw ValueError(class_name + " config: expected an object, got " + config.dump());
    OptimizerArgs args;
    std::vector<std::string> unknown;
    for (auto it = config.begin(); it != config.end(); ++it) {
        const std::string& k = it.key();
        const json& v = it.value();
        if (k == "learning_rate" || k == "lr") {
            // Keras 1 and legacy Keras 2 wrote "lr".
            if (!v.is_null())
                learning_rate = LearningRate::from_json(v);
        } else if (k == "name") {
            if (v.is_string())
                args.name = v.get<std::string>();
        } else if (k == "weight_decay") {
            args.weight_decay = config_optional_number(config, k);
        } else if (k == "clipnorm") {
            args.clipnorm = config_optional_number(config, k);
        } else if (k == "clipvalue") {
            args.clipvalue = config_optional_number(config, k);
        } else if (k == "global_clipnorm") {
            args.global_clipnorm = config_optional_number(config, k);
        } else if (k == "decay") {
            // Note [Legacy decay]: applied as tf.keras 2 / Keras 2 did (Keras 3 ignores it).
            args.decay = config_optional_number(config, k).value_or(0.0);
        } else if (k == "jit_compile" || k == "is_legacy_optimizer" || k == "ema_momentum" ||
                   k == "ema_overwrite_frequency") {
            // Keras 2 bookkeeping with no effect here.
        } else if (k == "use_ema") {
            if (config_bool(config, k, false))
                throw NotImplementedError(class_name + ": use_ema=True is not implemented in xtape");
        } else if (k == "loss_scale_factor" || k == "gradient_accumulation_steps") {
            if (!v.is_null())
                throw NotImplementedError(class_name + ": " + k + " is not implemented in xtape");
        } else if (std::find(own_keys.begin(), own_keys.end(), k) == own_keys.end()) {
            unknown.push_back(k);
        }
    }
    if (!unknown.empty()) {
        std::string list;
        for (const auto& k : unknown)
            list += (list.empty() ? "'" : ", '") + k + "'";
        throw ValueError(class_name + ": argument(s) not recognized: " + list);
    }
    return args;
}

template class OptimizerBase<float>;
template class OptimizerBase<double>;

} // namespace xtape
