#include "saving/keras_h5.hpp"

#include "framework/collective.hpp"
#include "framework/io/atomic_file.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/io/zip.hpp"
#include "framework/sequential.hpp"
#include "layers/registry.hpp"
#include "optim/optimizer_base.hpp"
#include "saving/keras3/keras3_format.hpp"
#include "saving/keras_h5_legacy_kernels.hpp"
#include "saving/keras_h5_weights.hpp"
#include "saving/keras_model_config.hpp"

#include <deque>
#include <iostream>
#include <map>
#include <mutex>

namespace xtape {

namespace keras_h5::testing {
namespace {
std::mutex g_hook_mutex;
std::function<void(const std::string&)> g_save_hook;
} // namespace

void set_save_fault_hook(std::function<void(const std::string& stage)> hook)
{
    std::lock_guard<std::mutex> lock(g_hook_mutex);
    g_save_hook = std::move(hook);
}
} // namespace keras_h5::testing

namespace {

constexpr const char* xtape_version = "0.1.0";

void save_stage(const std::string& stage)
{
    std::function<void(const std::string&)> hook;
    {
        std::lock_guard<std::mutex> lock(keras_h5::testing::g_hook_mutex);
        hook = keras_h5::testing::g_save_hook;
    }
    if (hook)
        hook(stage);
}

void warn(const std::string& message) { std::cerr << "xtape: warning: " << message << std::endl; }

/// Runs f; an xtape error escaping it is rethrown as the same type with `prefix` in front, so a
/// layer's own message ("Unknown layer: 'Conv2D' ...") also names the file and the layer.
template <class F>
auto with_context(const std::string& prefix, F&& f) -> decltype(f())
{
    try {
        return f();
    } catch (const ShapeError& e) {
        throw ShapeError(prefix + e.what());
    } catch (const ValueError& e) {
        throw ValueError(prefix + e.what());
    } catch (const KeyError& e) {
        throw KeyError(prefix + e.what());
    } catch (const RuntimeError& e) {
        throw RuntimeError(prefix + e.what());
    } catch (const IOError& e) {
        throw IOError(prefix + e.what());
    } catch (const NotImplementedError& e) {
        throw NotImplementedError(prefix + e.what());
    } catch (const TypeError& e) {
        throw TypeError(prefix + e.what());
    } catch (const Error& e) {
        throw Error(prefix + e.what());
    } catch (const json::exception& e) {
        throw ValueError(prefix + "malformed JSON value: " + e.what());
    }
}

// ---- building a model from its config ------------------------------------------------------------

/// The model of a model_config through the one config parser (model_from_config), with
/// every layer made by the registry; errors name the file and the layer.
template <class T>
std::shared_ptr<Model<T>> model_from_spec_json(const json& model_config, const std::string& source)
{
    if (!model_config.is_object() || !model_config.contains("class_name"))
        throw ValueError(source + ": malformed model_config: expected a JSON object with 'class_name' and 'config'");
    const LayerSpecFactory<T> make = [](const json& spec) {
        const json c = spec.value("config", json::object());
        const std::string name =
            spec.contains("name") && spec["name"].is_string()
                ? spec["name"].get<std::string>()
                : (c.is_object() && c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>() : "");
        const std::string prefix = "layer '" + name + "' (" + spec.value("class_name", "?") + "): ";
        return with_context(prefix, [&] { return layer_from_config<T>(spec); });
    };
    const std::string cls = model_config["class_name"].is_string() ? model_config["class_name"].get<std::string>() : "";
    if (cls != "Sequential" && cls != "Functional" && cls != "Model")
        throw NotImplementedError(source + ": cannot build a model of class '" + cls +
                                  "'; supported: Sequential, Model, Functional");
    return with_context(source + ": ", [&] { return model_from_config<T>(model_config, make); });
}

// ---- weights ------------------------------------------------------------------------------------------

/// Keras's _legacy_weights order: trainable weights, then non-trainable ones (Layer::weights()).
template <class T>
std::vector<LayerPtr<T>> layers_with_weights(const Model<T>& model)
{
    std::vector<LayerPtr<T>> out;
    for (const auto& l : model.layers())
        if (!l->weights().empty())
            out.push_back(l);
    return out;
}

template <class T>
std::string layer_list(const std::vector<LayerPtr<T>>& layers)
{
    std::string s;
    for (const auto& l : layers)
        s += (s.empty() ? "" : ", ") + l->name();
    return s;
}

/// Checks one (model layer, saved layer) pair; returns "" when they fit, else the problem.
/// `shape_problem` tells a shape mismatch (ShapeError) from a count mismatch (ValueError).
template <class T>
std::string check_pair(const Layer<T>& layer, const keras_h5::LayerWeights<T>& saved, bool& shape_problem)
{
    const auto vars = layer.weights();
    shape_problem = false;
    if (vars.size() != saved.values.size())
        return "layer '" + layer.name() + "' (" + layer.class_name() + ") expects " + std::to_string(vars.size()) +
               " weight(s), the file's layer '" + saved.layer_name + "' has " + std::to_string(saved.values.size());
    for (std::size_t i = 0; i < vars.size(); ++i) {
        if (shape_of(saved.values[i]) != vars[i].shape()) {
            shape_problem = true;
            return "layer '" + layer.name() + "' (" + layer.class_name() + "): weight '" + vars[i].name() +
                   "' has shape " + shape_str(vars[i].shape()) + ", the file's '" + saved.weight_names[i] +
                   "' (layer '" + saved.layer_name + "') has shape " + shape_str(shape_of(saved.values[i]));
        }
    }
    return "";
}

template <class T>
void apply_weights(Model<T>& model, const keras_h5::WeightsGroup<T>& saved, const std::string& file, bool by_name,
                   bool skip_mismatch)
{
    if (!model.built())
        throw ValueError(file + ": cannot load weights into model '" + model.name() +
                         "': it is not built yet (its weights do not exist); build it or call it on data first");
    std::vector<std::pair<Variable<T>, const array_t<T>*>> assignments;
    // Kernels older files store in another layout (saving/keras_h5_legacy_kernels.hpp), converted
    // for the layer that receives them; the copies live until the assignments are done.
    std::deque<keras_h5::LayerWeights<T>> converted;
    auto prepared = [&](const Layer<T>& layer, const keras_h5::LayerWeights<T>* s) {
        const json config = layer.get_config();
        if (!keras_h5::needs_legacy_kernel_conversion(layer.class_name(), config, saved.keras_version, saved.backend))
            return s;
        converted.push_back(*s);
        keras_h5::convert_legacy_kernel<T>(layer.class_name(), config, converted.back().values, saved.keras_version,
                                           saved.backend);
        return static_cast<const keras_h5::LayerWeights<T>*>(&converted.back());
    };
    auto fail = [&](bool shape_problem, const std::string& msg) {
        if (shape_problem)
            throw ShapeError(file + ": " + msg);
        throw ValueError(file + ": " + msg);
    };

    if (by_name) {
        std::map<std::string, const keras_h5::LayerWeights<T>*> by;
        for (const auto& l : saved.layers)
            by[l.layer_name] = &l;
        for (const auto& layer : model.layers()) {
            auto it = by.find(layer->name());
            if (it == by.end() || layer->weights().empty())
                continue;
            bool shape_problem = false;
            const keras_h5::LayerWeights<T>* src = prepared(*layer, it->second);
            const std::string problem = check_pair(*layer, *src, shape_problem);
            if (!problem.empty()) {
                if (skip_mismatch) {
                    warn(file + ": skipping " + problem);
                    continue;
                }
                fail(shape_problem, problem);
            }
            const auto vars = layer->weights();
            for (std::size_t i = 0; i < vars.size(); ++i)
                assignments.emplace_back(vars[i], &src->values[i]);
        }
    } else {
        const auto layers = layers_with_weights(model);
        std::vector<const keras_h5::LayerWeights<T>*> saved_layers;
        std::string saved_names;
        for (const auto& l : saved.layers)
            if (!l.weight_names.empty()) {
                saved_layers.push_back(&l);
                saved_names += (saved_names.empty() ? "" : ", ") + l.layer_name;
            }
        if (layers.size() != saved_layers.size())
            throw ValueError(file + ": layer count mismatch when loading weights: the model expects " +
                             std::to_string(layers.size()) + " layers with weights (" + layer_list(layers) +
                             "), the file has " + std::to_string(saved_layers.size()) + " (" + saved_names + ")");
        for (std::size_t k = 0; k < layers.size(); ++k) {
            bool shape_problem = false;
            const keras_h5::LayerWeights<T>* src = prepared(*layers[k], saved_layers[k]);
            const std::string problem = check_pair(*layers[k], *src, shape_problem);
            if (!problem.empty())
                fail(shape_problem, problem);
            const auto vars = layers[k]->weights();
            for (std::size_t i = 0; i < vars.size(); ++i)
                assignments.emplace_back(vars[i], &src->values[i]);
        }
    }
    // Every check passed: only now does the model change.
    for (auto& [var, value] : assignments)
        var.assign(*value);
}

template <class T>
std::vector<keras_h5::LayerWeightsRef<T>> weight_refs(const Model<T>& model,
                                                      std::vector<std::vector<Variable<T>>>& keep_alive)
{
    // tf.keras's layer_names list every layer of model.layers: a functional model's include its
    // InputLayers (with no weights), a Sequential's do not.
    std::vector<keras_h5::LayerWeightsRef<T>> refs;
    for (const auto& l : model.graph() ? model.graph()->all_layers() : model.layers()) {
        keep_alive.push_back(l->weights());
        keras_h5::LayerWeightsRef<T> r{ l->name(), {}, {} };
        for (const auto& v : keep_alive.back()) {
            r.weight_names.push_back(l->weight_path(v) + ":0");
            r.values.push_back(&v.value());
        }
        refs.push_back(std::move(r));
    }
    return refs;
}

// ---- optimizer state -------------------------------------------------------------------------------

/// File names for the optimizer's variables, tf.keras 2.x style: "<opt>/iteration:0", then
/// "<opt>/<layer>/<weight>/<slot kind>:0" for slot j of block b (variables() lists one block per
/// slot kind, one slot per trainable weight), and "<opt>/<name>:0" for extra state. Keras
/// restores optimizer state by position; xtape reads these names back (Note [Optimizer state by
/// name]), so they must say the slot kind and the layer/weight.
template <class T>
std::vector<std::string> optimizer_weight_names(const Model<T>& model, const std::vector<Variable<T>>& state)
{
    // (layer path, variable) of the variable each slot belongs to, in the optimizer's order
    // (built_variables: after add_variables it lists weights frozen since, too).
    std::map<const TensorNode<T>*, std::string> path_of;
    for (const auto& l : model.layers())
        for (const auto& v : l->weights())
            path_of.emplace(v.tensor().node(), l->weight_path(v));
    std::vector<std::pair<std::string, Variable<T>>> trainable;
    const auto* base = dynamic_cast<const OptimizerBase<T>*>(model.optimizer().get());
    for (const auto& v : base && base->built() ? base->built_variables() : model.trainable_weights()) {
        auto it = path_of.find(v.tensor().node());
        trainable.emplace_back(it == path_of.end() ? v.name() : it->second, v);
    }
    std::vector<std::string> names;
    std::map<std::string, int> used;
    const std::size_t n = trainable.size();
    for (std::size_t i = 0; i < state.size(); ++i) {
        const std::string& full = state[i].name();
        const auto slash = full.find('/');
        const std::string opt = slash == std::string::npos ? std::string("optimizer") : full.substr(0, slash);
        const std::string local = slash == std::string::npos ? full : full.substr(slash + 1);
        std::string name = full;
        if (i > 0 && n > 0) {
            const auto& [path, var] = trainable[(i - 1) % n];
            const std::string prefix = var.name() + "_";
            if (local.compare(0, prefix.size(), prefix) == 0)
                name = opt + "/" + path + "/" + local.substr(prefix.size());
        }
        // HDF5 needs unique paths; a clash (never seen with xtape's optimizers) gets a suffix.
        if (used[name]++ > 0)
            name += "_" + std::to_string(used[name] - 1);
        names.push_back(name + ":0");
    }
    return names;
}

template <class T>
void write_optimizer_weights(io::H5Group& root, const Model<T>& model)
{
    const auto& opt = model.optimizer();
    if (!opt)
        return;
    const std::vector<Variable<T>> state = opt->variables();
    if (state.empty())
        return; // never stepped: nothing to restore (Keras writes no group either)
    io::H5Group g = root.create_group("optimizer_weights");
    const std::vector<std::string> names = optimizer_weight_names(model, state);
    g.write_string_array_attribute("weight_names", names);
    for (std::size_t i = 0; i < state.size(); ++i)
        g.write_dataset<T>(names[i], state[i].value());
}

// Note [Optimizer state by name]
// Keras restores optimizer state by position, but the positions changed between versions:
// tf.keras 2.x (OptimizerV2, e.g. ad01 2.4.0, issue_9560 2.2.4-tf) lists [iter, m..., v...]
// with names "<prefix>/<layer>/<weight>/<slot>:0", the optimizer of Keras 2.11+ (e.g.
// str_ww_ref_model 2.14) lists [iteration, m0, v0, m1, v1, ...] with names
// "<Opt>/<slot>/<layer>/<weight>:0", and xtape's optimizers keep [iteration, one block per slot
// kind]. The names say which value is which in every one of these forms, so the state is matched
// by (slot kind, layer/weight) when every slot finds its name (Nadam's momentum cache by its
// name in any version), and by position otherwise (names
// xtape cannot read, weight names whose prefixes differ from the layer names).

/// Canonical slot kind for a stored name's slot component ("" when it is not one).
std::string slot_kind_of(const std::string& s)
{
    static const std::map<std::string, std::string> aliases = {
        { "m", "momentum" },          { "momentum", "momentum" },         { "v", "velocity" },
        { "velocity", "velocity" },   { "vhat", "velocity_hat" },         { "velocity_hat", "velocity_hat" },
        { "rms", "velocity" },        { "mg", "average_gradient" },       { "average_gradient", "average_gradient" },
        { "accumulator", "accumulator" } };
    auto it = aliases.find(s);
    return it == aliases.end() ? std::string() : it->second;
}

} // namespace

std::string keras_h5::optimizer_state_key(const std::string& stored)
{
    std::string n = stored;
    if (n.size() > 2 && n.compare(n.size() - 2, 2, ":0") == 0)
        n.erase(n.size() - 2);
    std::vector<std::string> parts;
    for (std::size_t start = 0;;) {
        const auto slash = n.find('/', start);
        parts.push_back(n.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
        if (slash == std::string::npos)
            break;
        start = slash + 1;
    }
    const std::string& last = parts.back();
    if (last == "iter" || last == "iteration" || last == "iterations")
        return "iteration";
    // Nadam's product of momentum factors: Keras 3 and xtape "u_product", tf.keras 2's legacy
    // Nadam "momentum_cache", Keras 2's "m_schedule".
    if (last == "u_product" || last == "momentum_cache" || last == "m_schedule")
        return "u_product";
    if (parts.size() >= 4 && !slot_kind_of(last).empty()) // <prefix...>/<layer>/<weight>/<slot>
        return slot_kind_of(last) + "|" + parts[parts.size() - 3] + "/" + parts[parts.size() - 2];
    if (parts.size() == 4 && !slot_kind_of(parts[1]).empty()) // <Opt>/<slot>/<layer>/<weight>
        return slot_kind_of(parts[1]) + "|" + parts[2] + "/" + parts[3];
    return {};
}

namespace {

/// The saved values in the order of the optimizer's variables() when every one of them is found
/// by name (Note [Optimizer state by name]); `values` unchanged otherwise.
template <class T>
std::vector<array_t<T>> order_optimizer_state(const Model<T>& model, const std::vector<std::string>& stored_names,
                                              std::vector<array_t<T>> values)
{
    auto* base = dynamic_cast<OptimizerBase<T>*>(model.optimizer().get());
    if (!base)
        return values;
    if (!base->built())
        base->build(model.trainable_weights()); // creates the slots, so their layout is known
    const std::vector<Variable<T>> state = base->variables();
    if (state.size() != values.size())
        return values; // set_state reports the count mismatch
    std::map<std::string, std::size_t> stored;
    for (std::size_t i = 0; i < stored_names.size(); ++i) {
        const std::string key = keras_h5::optimizer_state_key(stored_names[i]);
        if (key.empty() || !stored.emplace(key, i).second)
            return values;
    }
    std::vector<array_t<T>> ordered;
    for (const auto& name : optimizer_weight_names(model, state)) {
        auto it = stored.find(keras_h5::optimizer_state_key(name));
        if (it == stored.end())
            return values;
        ordered.push_back(values[it->second]);
    }
    return ordered;
}

template <class T>
void restore_optimizer_state(Model<T>& model, const io::H5Group& root, const std::string& file)
{
    if (!model.optimizer() || !root.has_group("optimizer_weights"))
        return;
    try {
        io::H5Group g = root.group("optimizer_weights");
        std::vector<array_t<T>> values;
        const std::vector<std::string> names = g.read_string_array_attribute("weight_names");
        for (const auto& name : names)
            values.push_back(g.read_dataset<T>(name));
        if (values.empty())
            return;
        values = order_optimizer_state(model, names, std::move(values));
        model.optimizer()->set_state(model.trainable_weights(), values);
    } catch (const Error& e) {
        // Keras: "Error in loading the saved optimizer state ... starting with a freshly
        // initialized optimizer." A model is still usable without its optimizer state.
        warn(file + ": could not restore the saved optimizer state (" + e.what() +
             "); the model starts with a freshly initialized optimizer");
    }
}

// ---- training config -------------------------------------------------------------------------------

/// Keras 2.x wrote metrics as names, Keras objects or (functional models) a list per output.
void collect_metric_specs(const json& j, std::vector<json>& out)
{
    if (j.is_null())
        return;
    if (j.is_array()) {
        for (const auto& e : j)
            collect_metric_specs(e, out);
        return;
    }
    if (j.is_object() && j.value("class_name", "") == "MeanMetricWrapper" && j.contains("config")) {
        // tf.keras 2.4 wraps compile("accuracy") as MeanMetricWrapper(name="accuracy", fn=...);
        // the name is what the user passed and what compile() resolves again by shapes.
        const json& c = j["config"];
        out.push_back(c.value("name", c.value("fn", "")));
        return;
    }
    if (j.is_object() && !j.contains("class_name")) {
        for (const auto& kv : j.items()) // {output name: metrics}
            collect_metric_specs(kv.value(), out);
        return;
    }
    out.push_back(j);
}

/// A loss spec as the loss registry reads it: tf.keras's "reduction": "auto" is Keras 3's
/// default reduction and "fn" is a tf.keras LossFunctionWrapper detail.
json normalize_loss_spec(json loss)
{
    if (loss.is_object() && !loss.contains("class_name") && loss.size() == 1)
        loss = loss.begin().value(); // {output name: loss} of a single-output model
    if (loss.is_object() && loss.contains("config") && loss["config"].is_object()) {
        json& c = loss["config"];
        if (c.value("reduction", "") == "auto")
            c["reduction"] = "sum_over_batch_size";
        c.erase("fn");
    }
    return loss;
}

// Keras's configs nest a few dozen levels at most (a layer in a wrapper in a model in a model);
// the builders walk them recursively, so a deeper document is refused while it is parsed, before
// it can exhaust the stack.
constexpr int k_max_config_depth = 200;

/// Parses a model or training config; `what` names it in errors ("f.h5: the 'model_config'
/// attribute").
json parse_config_text(const std::string& text, const std::string& what)
{
    auto depth_guard = [&](int depth, json::parse_event_t, json&) {
        if (depth > k_max_config_depth)
            throw ValueError(what + " nests deeper than " + std::to_string(k_max_config_depth) +
                             " levels; Keras configs do not");
        return true;
    };
    try {
        return json::parse(text, depth_guard);
    } catch (const json::exception& e) {
        // parse_error, and out_of_range for a number too large for a double ("8e98809"; found by
        // fuzz_model_config, tests/fuzz_regressions/model_config/).
        throw ValueError(what + " is not valid JSON: " + e.what());
    }
}

json config_of_file(const io::H5Group& root, const std::string& attr, const std::string& file)
{
    return parse_config_text(root.read_string_attribute(attr), file + ": the '" + attr + "' attribute");
}

} // namespace

// ---- public API ------------------------------------------------------------------------------------

namespace {

template <class T>
json loss_json(const LossSpec<T>& l)
{
    return l.ptr ? json{ { "class_name", l.ptr->class_name() }, { "config", l.ptr->get_config() } } : json();
}

template <class T>
json metrics_json(const std::vector<MetricSpec<T>>& specs)
{
    // What compile() was given, as tf.keras stores it: "accuracy" stays "accuracy" (compile
    // resolves it again from the data's shapes), an instance is stored as {class_name, config}.
    json out = json::array();
    for (const auto& spec : specs) {
        if (spec.ptr)
            out.push_back(json{ { "class_name", spec.ptr->class_name() }, { "config", spec.ptr->get_config() } });
        else
            out.push_back(spec.id);
    }
    return out;
}

/// A per-output compile argument as tf.keras 2 stores it: one entry (for every output) as itself,
/// several as a list, by name as a dict; null when not given.
template <class V, class F>
json per_output_json(const std::vector<V>& list, const std::map<std::string, V>& by_name, F to_json)
{
    if (!by_name.empty()) {
        json o = json::object();
        for (const auto& kv : by_name)
            o[kv.first] = to_json(kv.second);
        return o;
    }
    if (list.empty())
        return json();
    if (list.size() == 1)
        return to_json(list[0]);
    json a = json::array();
    for (const auto& v : list)
        a.push_back(to_json(v));
    return a;
}

/// Metrics of one output from a training_config entry (flattened: names, dicts, nested lists).
template <class T>
std::vector<MetricSpec<T>> metric_specs_of(const json& j)
{
    std::vector<json> ids;
    collect_metric_specs(j, ids);
    return std::vector<MetricSpec<T>>(ids.begin(), ids.end());
}

bool is_keras_object(const json& j) { return j.is_object() && j.contains("class_name"); }

/// "metrics" / "weighted_metrics" of a training_config into CompileOptions: for one output every
/// form is flattened onto it; for several, a dict names outputs, a list with one list (or null)
/// per output is per output, any other list is for every output (tf.keras 2's rules).
template <class T>
void read_metrics(const json& j, std::size_t outputs, std::vector<std::vector<MetricSpec<T>>>& list,
                  std::map<std::string, std::vector<MetricSpec<T>>>& by_name)
{
    if (j.is_null())
        return;
    if (outputs > 1 && j.is_object() && !is_keras_object(j)) {
        for (const auto& kv : j.items())
            by_name[kv.key()] = metric_specs_of<T>(kv.value());
        return;
    }
    const bool per_output = outputs > 1 && j.is_array() && j.size() == outputs &&
                            std::all_of(j.begin(), j.end(), [](const json& e) { return e.is_array() || e.is_null(); });
    if (per_output) {
        for (const auto& e : j)
            list.push_back(metric_specs_of<T>(e));
        return;
    }
    auto all = metric_specs_of<T>(j);
    if (!all.empty())
        list.push_back(std::move(all));
}

} // namespace

template <class T>
json training_config_of(const Model<T>& model)
{
    if (!model.compiled())
        return json();
    const CompileOptions<T>& c = model.compile_options();
    json opt;
    if (model.optimizer())
        opt = json{ { "class_name", model.optimizer()->class_name() }, { "config", model.optimizer()->get_config() } };
    json metrics = per_output_json(c.metrics, c.metrics_by_name, metrics_json<T>);
    if (metrics.is_null())
        metrics = json::array();
    return json{ { "loss", per_output_json(c.loss, c.loss_by_name, loss_json<T>) },
                 { "metrics", metrics },
                 { "weighted_metrics", per_output_json(c.weighted_metrics, c.weighted_metrics_by_name, metrics_json<T>) },
                 { "loss_weights", per_output_json(c.loss_weights, c.loss_weights_by_name, [](double w) { return json(w); }) },
                 { "optimizer_config", opt } };
}

std::vector<json> metrics_from_training_config(const json& training_config)
{
    std::vector<json> ids;
    if (training_config.is_object()) {
        auto mc = training_config.find("metrics");
        if (mc != training_config.end())
            collect_metric_specs(*mc, ids);
    }
    return ids;
}

template <class T>
void compile_from_training_config(Model<T>& model, const json& training_config, const std::string& keras_version)
{
    if (!training_config.is_object())
        throw ValueError("training_config: expected a JSON object, got " + training_config.dump().substr(0, 200));
    auto oc = training_config.find("optimizer_config");
    if (oc == training_config.end() || oc->is_null())
        throw ValueError("training_config has no optimizer_config");
    auto lc = training_config.find("loss");
    if (lc == training_config.end() || lc->is_null())
        throw ValueError("training_config has no loss");
    const std::size_t outputs = model.graph() ? model.graph()->outputs().size() : 1;
    CompileOptions<T> o;
    const json& loss = *lc;
    if (loss.is_object() && !is_keras_object(loss) && !(outputs == 1 && loss.size() == 1)) {
        for (const auto& kv : loss.items()) // {output name: loss}
            o.loss_by_name.emplace(kv.key(), kv.value().is_null() ? LossSpec<T>(LossPtr<T>())
                                                                  : LossSpec<T>(normalize_loss_spec(kv.value())));
    } else if (loss.is_array()) { // one per output, null: none
        for (const auto& l : loss)
            o.loss.push_back(l.is_null() ? LossSpec<T>(LossPtr<T>()) : LossSpec<T>(normalize_loss_spec(l)));
    } else {
        o.loss.push_back(LossSpec<T>(normalize_loss_spec(loss)));
    }
    const json lw = training_config.value("loss_weights", json());
    if (lw.is_object()) {
        for (const auto& kv : lw.items())
            o.loss_weights_by_name[kv.key()] = kv.value().get<double>();
    } else if (lw.is_array()) {
        for (const auto& w : lw)
            o.loss_weights.push_back(w.get<double>());
    } else if (lw.is_number()) {
        o.loss_weights.push_back(lw.get<double>());
    }
    read_metrics<T>(training_config.value("metrics", json()), outputs, o.metrics, o.metrics_by_name);
    read_metrics<T>(training_config.value("weighted_metrics", json()), outputs, o.weighted_metrics,
                    o.weighted_metrics_by_name);
    model.compile(OptimizerSpec<T>(get_optimizer<T>(*oc, keras_version)), std::move(o));
}

template <class T>
std::shared_ptr<Model<T>> model_from_json(const std::string& json_text, const std::string& source)
{
    return model_from_spec_json<T>(parse_config_text(json_text, source), source);
}

json keras_h5::parse_config(const std::string& text, const std::string& what) { return parse_config_text(text, what); }

template <class T>
std::shared_ptr<Model<T>> keras_h5::model_from_config_json(const json& model_config, const std::string& source)
{
    return model_from_spec_json<T>(model_config, source);
}

template <class T>
std::string model_to_json_string(const Model<T>& model)
{
    json j = keras_h5::to_tf_keras_model_config(model_to_json(model));
    j["keras_version"] = keras_h5_written_keras_version;
    j["backend"] = keras_h5_written_backend;
    return j.dump();
}

template <class T>
std::shared_ptr<Model<T>> load_model(const std::string& path, bool compile)
{
    // Keras 3 chooses by extension; the first bytes are what a file is (a tf.keras 2.11 ".keras"
    // can be HDF5, an ".h5" can be misnamed).
    if (io::has_zip_signature(path))
        return keras3::load_archive<T>(path, compile);
    io::H5File f = io::H5File::open_read(path);
    io::H5Group root = f.root();
    if (!root.has_attribute("model_config")) {
        if (keras_h5::is_weights_only_root(root))
            throw ValueError(path + ": no model found in this file: it holds only weights (save_weights); "
                                    "build the model (e.g. model_from_json) and call load_weights");
        if (keras3::is_weights_store(root))
            throw ValueError(path + ": no model found in this file: it holds only weights, in Keras 3's "
                                    ".weights.h5 layout; build the model and call load_weights");
        throw ValueError(path + ": no model found in this file: there is no 'model_config' attribute");
    }
    const json model_config = config_of_file(root, "model_config", path);
    std::shared_ptr<Model<T>> model = model_from_spec_json<T>(model_config, path);
    auto weights = keras_h5::read_weights_group<T>(keras_h5::weights_group_of(root));
    // The version that wrote the file decides the optimizer defaults it left out (Note
    // [Optimizer defaults by version] in optim/registry.cpp); Keras's loader reads it from the
    // weights group too, a missing one meaning Keras 1.
    const std::string keras_version = weights.keras_version;
    apply_weights(*model, std::move(weights), path, false, false);

    if (compile && root.has_attribute("training_config")) {
        try {
            compile_from_training_config(*model, config_of_file(root, "training_config", path), keras_version);
        } catch (const Error& e) {
            warn(path + ": the model is loaded uncompiled: its training_config cannot be used (" + e.what() + ")");
            return model;
        }
        restore_optimizer_state(*model, root, path);
    }
    return model;
}

template <class T>
void load_weights(Model<T>& model, const std::string& path, bool by_name, bool skip_mismatch)
{
    if (!io::has_zip_signature(path)) {
        io::H5File f = io::H5File::open_read(path);
        io::H5Group root = f.root();
        if (!keras3::is_weights_store(root)) {
            apply_weights(model, keras_h5::read_weights_group<T>(keras_h5::weights_group_of(root)), path, by_name,
                          skip_mismatch);
            return;
        }
    }
    // Keras 3 finds a layer's weights by object path, never by layer name.
    if (by_name)
        throw ValueError(path + ": by_name loading is not supported for Keras 3 weight stores (.keras, "
                                ".weights.h5); their weights are found by object path");
    keras3::load_weights_store(model, path);
}

namespace {
template <class T>
void write_model_file(const Model<T>& model, const std::string& path, bool include_optimizer)
{
    if (keras3::is_archive_path(path))
        return keras3::save_archive(model, path, include_optimizer);
    if (!model.built())
        throw ValueError(path + ": cannot save model '" + model.name() +
                         "': it is not built yet, so its weights do not exist; build it or call it on data first");
    const json model_config = keras_h5::to_tf_keras_model_config(model_to_json(model));
    const json training_config = training_config_of(model);

    io::write_atomically(path, [&](const std::string& tmp) {
        io::H5File f = io::H5File::create(tmp);
        {
            io::H5Group root = f.root();
            root.write_string_attribute("keras_version", keras_h5_written_keras_version);
            root.write_string_attribute("backend", keras_h5_written_backend);
            root.write_string_attribute("xtape_version", xtape_version);
            root.write_string_attribute("model_config", model_config.dump());
            if (!training_config.is_null())
                root.write_string_attribute("training_config", training_config.dump());
            io::H5Group mw = root.create_group("model_weights");
            std::vector<std::vector<Variable<T>>> keep_alive;
            keras_h5::write_weights_group<T>(mw, weight_refs(model, keep_alive),
                                             keras_h5_written_keras_version, keras_h5_written_backend);
            save_stage("model_weights");
            if (include_optimizer) {
                write_optimizer_weights(root, model);
                save_stage("optimizer_weights");
            }
        }
        f.close();
    });
}

template <class T>
void write_weights_file(const Model<T>& model, const std::string& path)
{
    if (keras3::is_weights_store_path(path))
        return keras3::save_weights_store(model, path);
    if (!model.built())
        throw ValueError(path + ": cannot save the weights of model '" + model.name() + "': it is not built yet");
    io::write_atomically(path, [&](const std::string& tmp) {
        io::H5File f = io::H5File::create(tmp);
        {
            io::H5Group root = f.root();
            std::vector<std::vector<Variable<T>>> keep_alive;
            keras_h5::write_weights_group<T>(root, weight_refs(model, keep_alive),
                                             keras_h5_written_keras_version, keras_h5_written_backend);
            save_stage("model_weights");
        }
        f.close();
    });
}

} // namespace

// Several processes: rank 0 writes, every rank returns once the file is complete (Note [Saving on
// rank 0] in framework/collective.hpp).
template <class T>
void save_model(const Model<T>& model, const std::string& path, bool include_optimizer)
{
    write_on_rank_zero("save_model(" + path + ")", [&] { write_model_file(model, path, include_optimizer); });
}

template <class T>
void save_weights(const Model<T>& model, const std::string& path)
{
    write_on_rank_zero("save_weights(" + path + ")", [&] { write_weights_file(model, path); });
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template std::shared_ptr<Model<T>> load_model<T>(const std::string&, bool);                              \
    template void save_model<T>(const Model<T>&, const std::string&, bool);                                  \
    template void save_weights<T>(const Model<T>&, const std::string&);                                      \
    template void load_weights<T>(Model<T>&, const std::string&, bool, bool);                                \
    template std::shared_ptr<Model<T>> model_from_json<T>(const std::string&, const std::string&);           \
    template std::shared_ptr<Model<T>> keras_h5::model_from_config_json<T>(const json&, const std::string&); \
    template std::string model_to_json_string<T>(const Model<T>&);                                           \
    template json training_config_of<T>(const Model<T>&);                                                    \
    template void compile_from_training_config<T>(Model<T>&, const json&, const std::string&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
