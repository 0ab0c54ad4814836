#include "saving/keras3/keras3_format.hpp"

#include "framework/io/atomic_file.hpp"
#include "framework/io/zip.hpp"
#include "framework/keras_object.hpp"
#include "layers/layer_config.hpp"
#include "layers/wrappers/time_distributed.hpp"
#include "optim/optimizer_base.hpp"
#include "optim/registry.hpp"
#include "saving/keras_h5.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <iostream>
#include <map>
#include <regex>
#include <set>

namespace xtape::keras3 {

namespace {

constexpr const char* k_config_entry = "config.json";
constexpr const char* k_metadata_entry = "metadata.json";
constexpr const char* k_weights_entry = "model.weights.h5";

void warn(const std::string& message) { std::cerr << "xtape: warning: " << message << std::endl; }

bool ends_with(const std::string& s, const std::string& suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Keras's naming.to_snake_case: "BatchNormalization" -> "batch_normalization",
/// "Conv2D" -> "conv2d", "MaxPooling2D" -> "max_pooling2d".
std::string to_snake_case(const std::string& name)
{
    static const std::regex non_word("[^A-Za-z0-9_]+"), word("(.)([A-Z][a-z]+)"), lower_upper("([a-z])([A-Z])");
    std::string s = std::regex_replace(name, non_word, "");
    s = std::regex_replace(s, word, "$1_$2");
    s = std::regex_replace(s, lower_upper, "$1_$2");
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

/// Orders HDF5 member names as Keras wrote them: digit runs compared as numbers ("vars/2" before
/// "vars/10"; HDF5 itself lists them alphabetically).
bool natural_less(const std::string& a, const std::string& b)
{
    std::size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
            std::size_t i2 = i, j2 = j;
            while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2])))
                ++i2;
            while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2])))
                ++j2;
            std::string x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
            x.erase(0, std::min(x.find_first_not_of('0'), x.size()));
            y.erase(0, std::min(y.find_first_not_of('0'), y.size()));
            if (x.size() != y.size())
                return x.size() < y.size();
            if (x != y)
                return x < y;
            i = i2;
            j = j2;
        } else {
            if (a[i] != b[j])
                return a[i] < b[j];
            ++i;
            ++j;
        }
    }
    return a.size() - i < b.size() - j;
}

std::vector<std::string> sorted_members(const io::H5Group& g)
{
    std::vector<std::string> m = g.member_names();
    std::sort(m.begin(), m.end(), natural_less);
    return m;
}

template <class T>
bool is_model(const Layer<T>& l)
{
    return dynamic_cast<const Model<T>*>(&l) != nullptr;
}

/// The layers Keras's model.layers lists: a Functional's include its InputLayers.
template <class T>
std::vector<LayerPtr<T>> keras_layers(const Model<T>& m)
{
    return m.graph() ? m.graph()->all_layers() : m.layers();
}

/// The variables a layer saves itself (Keras's save_own_variables): none for a model or a
/// wrapper, whose sublayers save theirs at their own paths.
template <class T>
std::vector<Variable<T>> own_weights(const Layer<T>& l)
{
    if (is_model(l) || dynamic_cast<const TimeDistributed<T>*>(&l))
        return {};
    return l.weights();
}

template <class T>
void walk(const Model<T>& m, const std::string& prefix, std::set<const Layer<T>*>& visited,
          std::vector<ObjectPath<T>>& out)
{
    std::map<std::string, int> used;
    for (const auto& l : keras_layers(m)) {
        std::string name = to_snake_case(l->class_name());
        // Keras's _get_unique_name: the first is "dense", then "dense_1", "dense_2", ...
        auto it = used.find(name);
        if (it == used.end())
            used[name] = 0;
        else
            name += "_" + std::to_string(++it->second);
        const std::string path = (prefix.empty() ? "" : prefix + "/") + "layers/" + name;
        if (!visited.insert(l.get()).second)
            continue; // a layer already saved elsewhere (Keras skips it by id)
        out.push_back(ObjectPath<T>{ l, path });
        if (const auto* sub = dynamic_cast<const Model<T>*>(l.get()))
            walk(*sub, path, visited, out);
        else if (const auto* td = dynamic_cast<const TimeDistributed<T>*>(l.get()))
            if (td->layer() && visited.insert(td->layer().get()).second)
                out.push_back(ObjectPath<T>{ td->layer(), path + "/layer" });
    }
}

// Note [Keras 3 optimizer order]
// Keras 3's optimizer.variables lists the iteration counter (int64), the learning rate (a float32
// variable unless it is a schedule), then the slots in the order build() creates them:
// add_optimizer_variables(vars, ["momentum", "velocity"]) interleaves its kinds per variable
// (m0, v0, m1, v1, ...) while one call per kind gives a block; Nadam's u_product comes last.
// xtape's OptimizerBase lists [iteration, one block per kind, extras], so the Keras order is a
// permutation of xtape's plus the learning rate (index -1 below).
bool interleaves_first_two_kinds(const std::string& class_name)
{
    return class_name == "Adam" || class_name == "AdamW" || class_name == "Nadam" || class_name == "Adamax" ||
           class_name == "Lamb" || class_name == "Ftrl" || class_name == "Adadelta";
}

template <class T>
std::vector<long> keras_optimizer_order(const OptimizerBase<T>& opt, std::size_t n_vars)
{
    const std::size_t kinds = opt.num_slot_kinds(), extras = opt.num_extra_variables();
    std::vector<long> order{ 0 };
    if (!opt.learning_rate_spec().schedule())
        order.push_back(-1);
    const std::size_t inter = interleaves_first_two_kinds(opt.class_name()) ? std::min<std::size_t>(2, kinds) : 1;
    for (std::size_t j = 0; j < n_vars && kinds > 0; ++j)
        for (std::size_t s = 0; s < inter; ++s)
            order.push_back(static_cast<long>(1 + s * n_vars + j));
    for (std::size_t s = inter; s < kinds; ++s)
        for (std::size_t j = 0; j < n_vars; ++j)
            order.push_back(static_cast<long>(1 + s * n_vars + j));
    for (std::size_t x = 0; x < extras; ++x)
        order.push_back(static_cast<long>(1 + kinds * n_vars + x));
    return order;
}

// ---- writing ---------------------------------------------------------------------------------------------

template <class T>
void write_store(io::H5Group& root, const Model<T>& model, bool include_optimizer)
{
    root.create_group("vars").write_string_attribute("name", model.name());
    for (const auto& op : object_paths(model)) {
        io::H5Group g = root.create_group(op.path + "/vars");
        g.write_string_attribute("name", op.layer->name());
        const auto vars = own_weights(*op.layer);
        for (std::size_t i = 0; i < vars.size(); ++i)
            g.write_dataset<T>(std::to_string(i), vars[i].value());
    }
    if (!include_optimizer)
        return;
    auto* opt = dynamic_cast<const OptimizerBase<T>*>(model.optimizer().get());
    if (!opt || !opt->built())
        return; // never stepped: Keras writes its unbuilt variables, xtape has none to write
    const std::vector<Variable<T>> state = opt->variables();
    io::H5Group g = root.create_group("optimizer/vars");
    g.write_string_attribute("name", opt->name());
    const auto order = keras_optimizer_order(*opt, opt->built_variables().size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        const std::string key = std::to_string(i);
        if (order[i] < 0) {
            g.write_dataset<float>(key, array_t<float>(static_cast<float>(opt->learning_rate())));
        } else if (order[i] == 0) {
            g.write_dataset<std::int64_t>(key, array_t<std::int64_t>(opt->iterations()));
        } else {
            g.write_dataset<T>(key, state.at(static_cast<std::size_t>(order[i])).value());
        }
    }
}

json dtype_policy(const std::string& name) { return keras3_serialized("keras", "DTypePolicy", json{ { "name", name } }); }

json shapes_json(const std::vector<dims_t>& shapes)
{
    if (shapes.size() == 1)
        return dims_to_json(shapes[0]);
    json a = json::array();
    for (const auto& s : shapes)
        a.push_back(dims_to_json(s));
    return a;
}

bool is_model_class(const std::string& c) { return c == "Sequential" || c == "Functional" || c == "Model"; }

/// Rewrites one serialized layer (or model) into Keras 3's form in place; `layer` is the object
/// it serializes (null when unknown), whose sublayers are found by name within it (names are
/// unique within one model, not across nested ones).
template <class T>
void to_keras3_entry(json& entry, const Layer<T>* layer)
{
    if (!entry.is_object() || !entry.contains("class_name") || !entry["class_name"].is_string())
        return;
    const std::string cls = entry["class_name"].get<std::string>();
    if (!entry.contains("module"))
        entry["module"] = cls == "Sequential" ? "keras" : is_model_class(cls) ? "keras.src.models.functional" : "keras.layers";
    if (!entry.contains("registered_name"))
        entry["registered_name"] = nullptr;
    auto c = entry.find("config");
    if (c == entry.end() || !c->is_object())
        return;
    // InputLayer keeps its dtype a plain string, as Keras 3 writes it.
    auto dt = c->find("dtype");
    if (cls != "InputLayer" && dt != c->end() && dt->is_string())
        *dt = dtype_policy(dt->get<std::string>());
    auto layers = c->find("layers");
    if (layers != c->end() && layers->is_array()) {
        std::map<std::string, const Layer<T>*> by_name;
        if (const auto* m = dynamic_cast<const Model<T>*>(layer))
            for (const auto& l : keras_layers(*m))
                by_name.emplace(l->name(), l.get());
        for (auto& l : *layers) {
            const std::string name = l.contains("config") && l["config"].is_object() ? l["config"].value("name", "") : "";
            auto it = by_name.find(name);
            to_keras3_entry<T>(l, it == by_name.end() ? nullptr : it->second);
        }
    }
    auto inner = c->find("layer"); // a wrapper's layer
    if (inner != c->end()) {
        const auto* td = dynamic_cast<const TimeDistributed<T>*>(layer);
        to_keras3_entry<T>(*inner, td ? td->layer().get() : nullptr);
    }
    if (cls != "InputLayer" && layer && layer->built() && !layer->build_input_shapes().empty())
        entry["build_config"] = json{ { "input_shape", shapes_json(layer->build_input_shapes()) } };
}

/// Adds Keras 3's module to a serialized loss or metric ({class_name, config} from
/// training_config_of); names stay names.
json with_module(json j, const char* module)
{
    if (j.is_object() && j.contains("class_name") && !j.contains("module")) {
        j["module"] = module;
        j["registered_name"] = nullptr;
    } else if (j.is_array() || (j.is_object() && !j.contains("class_name"))) {
        for (auto& e : j)
            e = with_module(e, module);
    }
    return j;
}

template <class T>
json compile_config_of(const Model<T>& model)
{
    const json tc = training_config_of(model);
    if (tc.is_null())
        return json();
    return json{ { "optimizer", model.optimizer() ? serialize_optimizer(*model.optimizer()) : json() },
                 { "loss", with_module(tc.value("loss", json()), "keras.losses") },
                 { "loss_weights", tc.value("loss_weights", json()) },
                 { "metrics", with_module(tc.value("metrics", json()), "keras.metrics") },
                 { "weighted_metrics", with_module(tc.value("weighted_metrics", json()), "keras.metrics") },
                 { "run_eagerly", false },
                 { "steps_per_execution", 1 },
                 { "jit_compile", false } };
}

/// Keras 3's compile_config as the training_config that compile_from_training_config reads.
json training_config_from_compile_config(const json& cc)
{
    // Keras's compile_from_config calls compile(**config): an absent optimizer is compile()'s
    // default, "rmsprop".
    json opt = cc.contains("optimizer") && !cc["optimizer"].is_null() ? cc["optimizer"] : json("rmsprop");
    return json{ { "optimizer_config", opt },
                 { "loss", cc.value("loss", json()) },
                 { "metrics", cc.value("metrics", json()) },
                 { "weighted_metrics", cc.value("weighted_metrics", json()) },
                 { "loss_weights", cc.value("loss_weights", json()) } };
}

// ---- reading -------------------------------------------------------------------------------------------

/// The datasets of a vars group, "0", "1", ... in numeric order; anything else is an error.
std::vector<std::string> var_keys(const io::H5Group& vars, const std::string& file, const std::string& where)
{
    std::vector<std::string> keys = sorted_members(vars);
    for (std::size_t i = 0; i < keys.size(); ++i)
        if (keys[i] != std::to_string(i))
            throw ValueError(file + ": '" + where + "' holds '" + keys[i] + "' where variable '" + std::to_string(i) +
                             "' was expected (Keras 3 numbers a layer's variables 0, 1, ...)");
    return keys;
}

template <class T>
void restore_optimizer(Model<T>& model, const io::H5Group& root, const std::string& file)
{
    auto* opt = dynamic_cast<OptimizerBase<T>*>(model.optimizer().get());
    if (!opt || !root.has_group("optimizer/vars"))
        return;
    try {
        const io::H5Group g = root.group("optimizer/vars");
        const std::vector<std::string> keys = var_keys(g, file, "optimizer/vars");
        if (keys.empty())
            return;
        if (!opt->built())
            opt->build(model.trainable_weights());
        const std::vector<Variable<T>> state = opt->variables();
        const auto order = keras_optimizer_order(*opt, model.trainable_weights().size());
        if (order.size() != keys.size())
            throw ValueError("optimizer '" + opt->name() + "' (" + opt->class_name() + ") has " +
                             std::to_string(order.size()) + " variables in Keras 3's order, the file has " +
                             std::to_string(keys.size()));
        std::vector<array_t<T>> values(state.size());
        std::optional<double> lr;
        for (std::size_t i = 0; i < order.size(); ++i) {
            array_t<T> v = g.read_dataset<T>(keys[i]);
            if (order[i] < 0) {
                if (v.size() != 1)
                    throw ShapeError("optimizer/vars/" + keys[i] + " (the learning rate) is not a scalar");
                lr = static_cast<double>(v.data()[0]);
            } else {
                values[static_cast<std::size_t>(order[i])] = std::move(v);
            }
        }
        opt->set_state(model.trainable_weights(), values);
        // The stored float32 rate changes the optimizer's only when a callback had changed it
        // (ReduceLROnPlateau); the config's double stays when it rounds to the same float.
        if (lr && static_cast<float>(opt->learning_rate()) != static_cast<float>(*lr))
            opt->set_learning_rate(*lr);
    } catch (const Error& e) {
        // Keras warns and keeps a fresh optimizer when the saved one does not fit.
        warn(file + ": could not restore the saved optimizer state (" + e.what() +
             "); the model starts with a freshly initialized optimizer");
    }
}

/// Loads every layer's variables from a store; all checks happen before any weight changes.
template <class T>
void apply_store(Model<T>& model, const io::H5Group& root, const std::string& file)
{
    if (!model.built())
        throw ValueError(file + ": cannot load weights into model '" + model.name() +
                         "': it is not built yet (its weights do not exist); build it or call it on data first");
    std::vector<std::pair<Variable<T>, array_t<T>>> assignments;
    for (const auto& op : object_paths(model)) {
        const auto vars = own_weights(*op.layer);
        const std::string group = op.path + "/vars";
        std::vector<std::string> keys;
        if (root.has_group(group))
            keys = var_keys(root.group(group), file, group);
        const std::string who = "layer '" + op.layer->name() + "' (" + op.layer->class_name() + ", stored at '" +
                                op.path + "')";
        if (keys.size() != vars.size()) {
            std::string expected;
            for (const auto& v : vars)
                expected += (expected.empty() ? "" : ", ") + v.name();
            throw ValueError(file + ": " + who + " expected " + std::to_string(vars.size()) +
                             " variables, but received " + std::to_string(keys.size()) +
                             " variables during loading. Expected: [" + expected + "]");
        }
        for (std::size_t i = 0; i < vars.size(); ++i) {
            const std::string ds = group + "/" + keys[i];
            const shape_t stored = root.dataset_shape(ds);
            if (stored != vars[i].shape())
                throw ShapeError(file + ": " + who + ": variable '" + vars[i].name() + "' has shape " +
                                 shape_str(vars[i].shape()) + ", the file's '" + ds + "' has shape " +
                                 shape_str(stored));
            assignments.emplace_back(vars[i], root.read_dataset<T>(ds));
        }
    }
    for (auto& [var, value] : assignments)
        var.assign(value);
}

/// The weights entry of an archive, opened in memory.
io::H5File open_archive_weights(const io::ZipReader& z)
{
    const std::string& path = z.path();
    if (!z.has(k_weights_entry)) {
        if (z.has("model.weights.npz"))
            throw NotImplementedError(path + ": the weights are in 'model.weights.npz'; xtape reads the HDF5 store "
                                             "'model.weights.h5' only");
        throw IOError(path + ": missing entry '" + std::string(k_weights_entry) +
                      "' in the archive (a Keras 3 .keras file holds metadata.json, config.json and model.weights.h5)");
    }
    return io::H5File::open_image(path + ":" + k_weights_entry, z.read(k_weights_entry));
}

void collect_datasets(const io::H5Group& g, const std::string& prefix,
                      std::vector<std::pair<std::string, array_t<double>>>& out)
{
    for (const auto& m : sorted_members(g)) {
        const std::string p = prefix.empty() ? m : prefix + "/" + m;
        if (g.has_group(m))
            collect_datasets(g.group(m), p, out);
        else if (g.has_dataset(m) && g.dataset_dtype(m) != "string" && g.dataset_dtype(m) != "other")
            out.emplace_back(p, g.read_dataset<double>(m));
    }
}

} // namespace

bool is_archive_path(const std::string& path) { return ends_with(path, ".keras"); }
bool is_weights_store_path(const std::string& path) { return ends_with(path, ".weights.h5"); }

bool is_weights_store(const io::H5Group& root)
{
    return !root.has_string_array_attribute("layer_names") && !root.has_group("model_weights") &&
           (root.has_group("layers") || root.has_group("vars"));
}

template <class T>
std::vector<ObjectPath<T>> object_paths(const Model<T>& model)
{
    std::vector<ObjectPath<T>> out;
    std::set<const Layer<T>*> visited{ &model };
    walk(model, "", visited, out);
    return out;
}

std::vector<std::pair<std::string, array_t<double>>> list_weights(const std::string& path)
{
    std::vector<std::pair<std::string, array_t<double>>> out;
    if (io::has_zip_signature(path)) {
        const io::ZipReader z = io::ZipReader::open(path);
        io::H5File f = open_archive_weights(z);
        collect_datasets(f.root(), "", out);
    } else {
        io::H5File f = io::H5File::open_read(path);
        collect_datasets(f.root(), "", out);
    }
    return out;
}

template <class T>
json archive_config(const Model<T>& model)
{
    json j = model_to_json(model);
    to_keras3_entry<T>(j, &model);
    if (j["class_name"] == "Functional")
        j["registered_name"] = "Functional";
    const json cc = compile_config_of(model);
    if (!cc.is_null())
        j["compile_config"] = cc;
    return j;
}

template <class T>
std::shared_ptr<Model<T>> load_archive(const std::string& path, bool compile)
{
    const io::ZipReader z = io::ZipReader::open(path);
    if (!z.has(k_config_entry))
        throw IOError(path + ": missing entry 'config.json' in the archive (a Keras 3 .keras file holds "
                             "metadata.json, config.json and model.weights.h5)");
    const json config = keras_h5::parse_config(z.read(k_config_entry), path + ": config.json");
    if (!config.is_object() || !config.contains("class_name") || !config["class_name"].is_string())
        throw ValueError(path + ": config.json: expected a serialized model {module, class_name, config, ...}");
    const std::string cls = config["class_name"].get<std::string>();
    if (!is_model_class(cls)) {
        const json rn = config.value("registered_name", json());
        throw NotImplementedError(
            path + ": config.json: the model is of class '" + cls + "'" +
            (rn.is_string() ? " (registered custom object '" + rn.get<std::string>() + "')" : std::string()) +
            ", which xtape cannot build (it builds Sequential and Functional models); its weights can still be "
            "listed with keras3::list_weights");
    }
    std::shared_ptr<Model<T>> model = keras_h5::model_from_config_json<T>(config, path + ": config.json");
    {
        io::H5File f = open_archive_weights(z);
        const std::string store = path + ":" + k_weights_entry;
        apply_store(*model, f.root(), store);
        const json cc = config.value("compile_config", json());
        if (!compile || !cc.is_object() || cc.empty() || !cc.contains("loss") || cc["loss"].is_null())
            return model;
        try {
            compile_from_training_config(*model, training_config_from_compile_config(cc));
        } catch (const Error& e) {
            warn(path + ": the model is loaded uncompiled: its compile_config cannot be used (" + e.what() + ")");
            return model;
        } catch (const json::exception& e) { // a value of the wrong JSON type
            warn(path + ": the model is loaded uncompiled: its compile_config cannot be used (" + e.what() + ")");
            return model;
        }
        restore_optimizer(*model, f.root(), store);
    }
    return model;
}

template <class T>
void save_archive(const Model<T>& model, const std::string& path, bool include_optimizer)
{
    if (!model.built())
        throw ValueError(path + ": cannot save model '" + model.name() +
                         "': it is not built yet, so its weights do not exist; build it or call it on data first");
    const std::string config = archive_config(model).dump();
    char date[32] = {};
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(date, sizeof date, "%Y-%m-%d@%H:%M:%S", &tm);
    const std::string metadata = json{ { "keras_version", written_keras_version }, { "date_saved", date } }.dump();
    io::write_atomically(path, [&](const std::string& tmp) {
        std::string weights;
        {
            io::H5File f = io::H5File::create_in_memory(path + ":" + k_weights_entry);
            {
                io::H5Group root = f.root();
                write_store(root, model, include_optimizer);
            }
            weights = f.image();
            f.close();
        }
        io::write_zip(tmp, { { k_metadata_entry, metadata }, { k_config_entry, config }, { k_weights_entry, weights } });
    });
}

template <class T>
void save_weights_store(const Model<T>& model, const std::string& path)
{
    if (!model.built())
        throw ValueError(path + ": cannot save the weights of model '" + model.name() + "': it is not built yet");
    io::write_atomically(path, [&](const std::string& tmp) {
        io::H5File f = io::H5File::create(tmp);
        {
            io::H5Group root = f.root();
            write_store(root, model, true);
        }
        f.close();
    });
}

template <class T>
void load_weights_store(Model<T>& model, const std::string& path)
{
    if (io::has_zip_signature(path)) {
        const io::ZipReader z = io::ZipReader::open(path);
        io::H5File f = open_archive_weights(z);
        apply_store(model, f.root(), path + ":" + k_weights_entry);
        restore_optimizer(model, f.root(), path + ":" + k_weights_entry);
        return;
    }
    io::H5File f = io::H5File::open_read(path);
    apply_store(model, f.root(), path);
    restore_optimizer(model, f.root(), path);
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template std::vector<ObjectPath<T>> object_paths<T>(const Model<T>&);                                    \
    template json archive_config<T>(const Model<T>&);                                                        \
    template std::shared_ptr<Model<T>> load_archive<T>(const std::string&, bool);                            \
    template void save_archive<T>(const Model<T>&, const std::string&, bool);                                \
    template void save_weights_store<T>(const Model<T>&, const std::string&);                                \
    template void load_weights_store<T>(Model<T>&, const std::string&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape::keras3
