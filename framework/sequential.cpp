#include "framework/sequential.hpp"

#include <map>
#include <set>

namespace xtape {
namespace {

bool is_model_class(const std::string& c) { return c == "Sequential" || c == "Functional" || c == "Model"; }

dims_t dims_from(const json& j, const std::string& what)
{
    if (!j.is_array())
        throw ValueError("model config: '" + what + "' must be a list of dimensions, got " + j.dump());
    dims_t d;
    for (const auto& e : j) {
        if (e.is_null())
            d.push_back(none_dim);
        else if (e.is_number_integer())
            d.push_back(e.get<long>());
        else if (e.is_number() && e.get<double>() == static_cast<double>(static_cast<long>(e.get<double>())))
            d.push_back(static_cast<long>(e.get<double>()));
        else
            throw ValueError("model config: '" + what + "' must hold integers or null, got " + j.dump());
    }
    return d;
}

json dims_json(const dims_t& d)
{
    json j = json::array();
    for (long v : d)
        j.push_back(v < 0 ? json() : json(v));
    return j;
}

/// The input shape a layer config declares (Keras 3 batch_shape, Keras 1/2 batch_input_shape,
/// input_shape with batch_size, Keras 1 input_dim), if any.
std::optional<dims_t> declared_input_shape(const json& c)
{
    if (!c.is_object())
        return std::nullopt;
    for (const char* k : { "batch_shape", "batch_input_shape" })
        if (c.contains(k) && !c[k].is_null())
            return dims_from(c[k], k);
    const long batch = c.contains("batch_size") && c["batch_size"].is_number_integer() ? c["batch_size"].get<long>()
                                                                                        : none_dim;
    if (c.contains("input_shape") && !c["input_shape"].is_null()) {
        dims_t d = dims_from(c["input_shape"], "input_shape");
        d.insert(d.begin(), batch);
        return d;
    }
    // An Embedding's input_dim is its vocabulary, not a feature count: Keras 1/2 declared its
    // sequence length as input_length (mask_zero is a key only an Embedding has).
    if (c.contains("mask_zero")) {
        if (c.contains("input_length") && c["input_length"].is_number_integer())
            return dims_t{ batch, c["input_length"].get<long>() };
        return std::nullopt;
    }
    if (c.contains("input_dim") && c["input_dim"].is_number_integer())
        return dims_t{ batch, c["input_dim"].get<long>() };
    return std::nullopt;
}

json input_layer_spec(const dims_t& shape, const std::string& name, const char* dtype)
{
    return json{ { "class_name", "InputLayer" },
                 { "config",
                   { { "batch_shape", dims_json(shape) }, { "dtype", dtype }, { "sparse", false }, { "name", name } } } };
}

std::string spec_class(const json& spec)
{
    if (!spec.is_object() || !spec.contains("class_name") || !spec["class_name"].is_string())
        throw ValueError("model config: a layer entry needs a string 'class_name', got " + spec.dump());
    return spec["class_name"].get<std::string>();
}

} // namespace

// ---- Sequential ----------------------------------------------------------------------------------------

template <class T>
Sequential<T>::Sequential(std::string name, bool trainable)
    : Model<T>("Sequential", name.empty() ? unique_layer_name("sequential") : std::move(name), trainable)
{
}

template <class T>
Sequential<T>::Sequential(const std::vector<LayerPtr<T>>& layers, std::string name)
    : Sequential(std::move(name))
{
    for (const auto& l : layers)
        add(l);
}

template <class T>
void Sequential<T>::set_input(const dims_t& shape, const std::string& name)
{
    m_input_shape = shape;
    m_input_name = name.empty() ? unique_layer_name("input_layer") : name;
}

template <class T>
void Sequential<T>::add_input(const dims_t& batch_shape, const std::string& name)
{
    if (m_input_layer || m_input_shape || !m_layers.empty())
        throw ValueError("Sequential model '" + this->name() +
                         "' has already been configured; an input can only be added first.");
    set_input(batch_shape, name);
}

template <class T>
std::optional<dims_t> Sequential<T>::input_shape() const
{
    if (m_input_shape)
        return m_input_shape;
    if (this->built())
        return this->build_input_shape();
    return std::nullopt;
}

template <class T>
void Sequential<T>::add(LayerPtr<T> layer)
{
    if (!layer)
        throw ValueError("Only instances of `keras.Layer` can be added to a Sequential model. Received: null");
    if (layer->class_name() == "InputLayer") {
        if (m_input_layer || m_input_shape || !m_layers.empty())
            throw ValueError("Sequential model '" + this->name() + "' has already been configured" +
                             (m_input_shape ? " to use input shape " + dims_str(*m_input_shape) : std::string()) +
                             ". You cannot add a different Input layer to it.");
        const auto shape = declared_input_shape(layer->get_config());
        if (!shape)
            throw ValueError("Sequential.add: the InputLayer '" + layer->name() + "' declares no batch_shape");
        m_input_layer = layer;
        set_input(*shape, layer->name());
        return;
    }
    for (const auto& l : m_layers)
        if (l->name() == layer->name() && l != layer)
            throw ValueError("All layers added to a Sequential model should have unique names. Name '" +
                             layer->name() +
                             "' is already the name of a layer in this model. Update the `name` argument to pass a "
                             "unique name.");
    if (m_layers.empty() && !m_input_shape && !this->built())
        if (auto shape = declared_input_shape(layer->get_config()))
            set_input(*shape, "");
    m_layers.push_back(layer);

    // Keras builds a Sequential as soon as it knows its input shape.
    if (!this->built()) {
        if (m_input_shape)
            build(*m_input_shape);
        return;
    }
    dims_t s = this->build_input_shape();
    for (std::size_t i = 0; i + 1 < m_layers.size(); ++i)
        s = m_layers[i]->compute_output_shape(s);
    layer->build_once(s);
}

template <class T>
LayerPtr<T> Sequential<T>::pop()
{
    if (m_layers.empty())
        throw ValueError("There are no layers in the model.");
    LayerPtr<T> l = m_layers.back();
    m_layers.pop_back();
    return l;
}

template <class T>
void Sequential<T>::build(const dims_t& input_shape)
{
    if (m_in_build) { // called by build_once: build the layers
        Model<T>::build(input_shape);
        return;
    }
    if (m_layers.empty())
        throw ValueError("Sequential model " + this->name() +
                         " cannot be built because it has no layers. Call `model.add(layer)`.");
    if (m_input_shape && *m_input_shape != input_shape)
        throw ValueError("Sequential model '" + this->name() + "' has already been configured to use input shape " +
                         dims_str(*m_input_shape) + ". You cannot build it with input_shape " + dims_str(input_shape));
    if (this->built()) {
        if (this->build_input_shape() != input_shape)
            throw ValueError("Sequential model '" + this->name() + "' was built for input shape " +
                             dims_str(this->build_input_shape()) + "; cannot build it for " + dims_str(input_shape));
        Model<T>::build(input_shape); // builds layers added since (no-op for the others)
        return;
    }
    m_in_build = true;
    try {
        this->build_once(input_shape);
    } catch (...) {
        m_in_build = false;
        throw;
    }
    m_in_build = false;
}

template <class T>
json Sequential<T>::get_config() const
{
    json c = Layer<T>::get_config();
    json layers = json::array();
    const auto shape = input_shape();
    if (m_input_layer)
        layers.push_back(json{ { "class_name", m_input_layer->class_name() }, { "config", m_input_layer->get_config() } });
    else if (shape)
        layers.push_back(input_layer_spec(*shape, m_input_name.empty() ? "input_layer" : m_input_name, dtype_name<T>()));
    for (const auto& l : m_layers)
        layers.push_back(json{ { "class_name", l->class_name() }, { "config", l->get_config() } });
    c["layers"] = layers;
    if (shape)
        c["build_input_shape"] = dims_json(*shape);
    return c;
}

template <class T>
std::shared_ptr<Sequential<T>> Sequential<T>::from_config(const json& config, const LayerSpecFactory<T>& make_layer)
{
    // Keras 1 wrote the layer list itself as the config.
    const json layers = config.is_array() ? config : (config.contains("layers") ? config["layers"] : json());
    if (!layers.is_array())
        throw ValueError("Sequential.from_config: expected a 'layers' list, got " + config.dump());
    const std::string name = config.is_object() ? config_string(config, "name", "") : "";
    auto model = std::make_shared<Sequential<T>>(name, config.is_object() ? config_bool(config, "trainable", true) : true);
    for (const auto& spec : layers) {
        const std::string cls = spec_class(spec);
        if (cls == "InputLayer") {
            // Read here rather than through the factory: only its shape and name matter.
            const json c = spec.contains("config") ? spec["config"] : json::object();
            const auto shape = declared_input_shape(c);
            if (!shape)
                throw ValueError("Sequential.from_config: the InputLayer entry declares no batch_shape: " + spec.dump());
            if (!model->m_layers.empty() || model->m_input_shape)
                throw ValueError("Sequential.from_config: an InputLayer is only allowed first: " + spec.dump());
            model->set_input(*shape, config_string(c, "name", ""));
            continue;
        }
        if (model->m_layers.empty() && !model->m_input_shape && spec.contains("config"))
            if (auto shape = declared_input_shape(spec["config"]))
                model->set_input(*shape, "");
        model->add(layer_from_spec<T>(spec, make_layer));
    }
    if (!model->built() && config.is_object() && config.contains("build_input_shape") &&
        !config["build_input_shape"].is_null() && !model->m_layers.empty())
        model->build(dims_from(config["build_input_shape"], "build_input_shape"));
    return model;
}

template <class T>
std::vector<Tensor<T>> Sequential<T>::call_list(const std::vector<Tensor<T>>& inputs,
                                                const std::vector<Tensor<T>>& masks, const CallArgs& args)
{
    this->require_one_input(inputs.size());
    Tensor<T> h = inputs[0], mask = masks.empty() ? Tensor<T>() : masks[0];
    const bool training = args.training.value_or(false);
    for (const auto& l : m_layers) {
        Tensor<T> in = h;
        h = (*l)(in, training, mask);
        std::vector<Tensor<T>> out_masks = l->output_masks({ in }, mask.defined() ? std::vector<Tensor<T>>{ mask } : std::vector<Tensor<T>>());
        mask = out_masks.empty() ? Tensor<T>() : out_masks[0];
    }
    this->remember_output_masks(inputs, { mask });
    return { h };
}

// ---- free functions -----------------------------------------------------------------------------------------

template <class T>
LayerPtr<T> layer_from_spec(const json& spec, const LayerSpecFactory<T>& make_layer)
{
    if (spec.is_object() && spec.contains("class_name") && spec["class_name"].is_string() &&
        is_model_class(spec["class_name"].get<std::string>()))
        return model_from_config<T>(spec, make_layer);
    if (!make_layer)
        throw ValueError("model_from_config: no layer factory given for layer spec " + spec.dump());
    LayerPtr<T> l = make_layer(spec);
    if (!l)
        throw ValueError("model_from_config: the layer factory returned null for " + spec.dump());
    return l;
}

template <class T>
std::shared_ptr<Model<T>> model_from_config(const json& spec, const LayerSpecFactory<T>& make_layer)
{
    const std::string cls = spec_class(spec);
    const json config = spec.contains("config") ? spec["config"] : json::object();
    std::shared_ptr<Model<T>> m;
    if (cls == "Sequential")
        m = Sequential<T>::from_config(config, make_layer);
    else if (cls == "Functional" || cls == "Model")
        m = Functional<T>::from_config(config, make_layer);
    else
        throw KeyError("model_from_config: unknown model class '" + cls + "' (expected Sequential, Functional or Model)");
    if (config.is_object() && !config_bool(config, "trainable", true))
        m->set_trainable(false);
    return m;
}

template <class T>
json model_to_json(const Model<T>& model)
{
    return json{ { "class_name", model.class_name() }, { "config", model.get_config() } };
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template class Sequential<T>;                                                                            \
    template LayerPtr<T> layer_from_spec<T>(const json&, const LayerSpecFactory<T>&);                        \
    template std::shared_ptr<Model<T>> model_from_config<T>(const json&, const LayerSpecFactory<T>&);            \
    template json model_to_json<T>(const Model<T>&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
