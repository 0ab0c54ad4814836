#include "layers/core/embedding.hpp"

#include "framework/embedding.hpp"
#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

namespace xtape {

template <class T>
Embedding<T>::Embedding(const EmbeddingOptions<T>& options)
    : Layer<T>("Embedding", options.name, options.trainable)
    , m_options(options)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (m_options.input_dim <= 0)
        throw ValueError("`input_dim` must be a positive integer. Received: input_dim=" +
                         std::to_string(m_options.input_dim) + " (layer \"" + this->name() + "\")");
    if (m_options.output_dim <= 0)
        throw ValueError("`output_dim` must be a positive integer. Received: output_dim=" +
                         std::to_string(m_options.output_dim) + " (layer \"" + this->name() + "\")");
    if (!m_options.embeddings_initializer)
        m_options.embeddings_initializer = get_initializer<T>("uniform");
    this->set_activity_regularizer(m_options.activity_regularizer);
}

template <class T>
std::shared_ptr<Embedding<T>> Embedding<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    EmbeddingOptions<T> o;
    o.name = a.name;
    o.trainable = a.trainable;
    auto dim = [&](const char* key) {
        const json j = config_first(config, { key });
        if (!j.is_number_integer())
            throw ValueError("`" + std::string(key) + "` must be a positive integer. Received: " + key + "=" + j.dump() +
                             " (layer \"" + a.name + "\")");
        return j.get<long>();
    };
    o.input_dim = dim("input_dim");
    o.output_dim = dim("output_dim");
    if (json j = config_first(config, { "embeddings_initializer", "init" }); !j.is_null())
        o.embeddings_initializer = get_initializer<T>(j);
    o.embeddings_regularizer = get_regularizer<T>(config_first(config, { "embeddings_regularizer", "W_regularizer" }));
    o.activity_regularizer = get_regularizer<T>(config_first(config, { "activity_regularizer" }));
    o.embeddings_constraint = get_constraint<T>(config_first(config, { "embeddings_constraint", "W_constraint" }));
    o.mask_zero = config_bool(config, "mask_zero", false);
    // Keras 1's "dropout" on the embedding rows is a training-time noise xtape does not implement.
    if (config_number(config, "dropout", 0.0) != 0.0)
        throw NotImplementedError("Embedding '" + a.name + "': Keras 1's `dropout` argument is not implemented");
    return std::make_shared<Embedding<T>>(o);
}

template <class T>
json Embedding<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["input_dim"] = m_options.input_dim;
    c["output_dim"] = m_options.output_dim;
    c["embeddings_initializer"] = serialize<T>(m_options.embeddings_initializer);
    c["embeddings_regularizer"] = serialize<T>(m_options.embeddings_regularizer);
    c["activity_regularizer"] = serialize<T>(m_options.activity_regularizer);
    c["embeddings_constraint"] = serialize<T>(m_options.embeddings_constraint);
    c["mask_zero"] = m_options.mask_zero;
    return c;
}

template <class T>
dims_t Embedding<T>::compute_output_shape(const dims_t& input_shape) const
{
    dims_t out = input_shape;
    out.push_back(m_options.output_dim);
    return out;
}

template <class T>
void Embedding<T>::build(const dims_t&)
{
    m_embeddings = this->add_weight(
        "embeddings", { static_cast<std::size_t>(m_options.input_dim), static_cast<std::size_t>(m_options.output_dim) },
        m_options.embeddings_initializer, m_options.embeddings_regularizer, m_options.embeddings_constraint, true);
}

template <class T>
Tensor<T> Embedding<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    try {
        return embedding_lookup(x, m_embeddings.tensor());
    } catch (const ShapeError& e) {
        throw ShapeError("layer \"" + this->name() + "\" (Embedding, input_dim=" + std::to_string(m_options.input_dim) +
                         "): " + e.what());
    } catch (const ValueError& e) {
        throw ValueError("layer \"" + this->name() + "\" (Embedding, input_dim=" + std::to_string(m_options.input_dim) +
                         "): " + e.what());
    }
}

template <class T>
Tensor<T> Embedding<T>::compute_mask(const Tensor<T>& x, const Tensor<T>&) const
{
    if (!m_options.mask_zero)
        return Tensor<T>();
    array_t<T> m = array_t<T>::from_shape(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i)
        m.data()[i] = x.data()[i] != T(0) ? T(1) : T(0);
    return Tensor<T>(std::move(m));
}

template <class T>
const Variable<T>& Embedding<T>::embeddings() const
{
    if (!m_embeddings.defined())
        throw RuntimeError("layer \"" + this->name() + "\": You must build the layer before accessing `embeddings`.");
    return m_embeddings;
}

// ---- Masking ---------------------------------------------------------------------------------------

template <class T>
Masking<T>::Masking(double mask_value, const std::string& name)
    : Layer<T>("Masking", name)
    , m_mask_value(mask_value)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
}

template <class T>
std::shared_ptr<Masking<T>> Masking<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    double value = 0.0;
    if (config.contains("mask_value") && !config["mask_value"].is_null()) {
        json v = config["mask_value"];
        // Keras 3 may serialize the value as a tensor: {"class_name": "__tensor__" (or "__numpy__"),
        // "config": {"value": 0.0, "dtype": "float32"}}.
        if (v.is_object() && v.contains("config") && v["config"].is_object() && v["config"].contains("value"))
            v = v["config"]["value"];
        if (!v.is_number())
            throw ValueError("Masking '" + a.name + "': expected a number for `mask_value`, got " +
                             config["mask_value"].dump());
        value = v.get<double>();
    }
    auto l = std::make_shared<Masking<T>>(value, a.name);
    l->set_trainable(a.trainable);
    return l;
}

template <class T>
json Masking<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["mask_value"] = m_mask_value;
    return c;
}

template <class T>
array_t<T> Masking<T>::keep(const Tensor<T>& x) const
{
    const shape_t s = x.shape();
    if (s.empty())
        throw ValueError("layer \"" + this->name() + "\" (Masking) expects an input of rank >= 1, got a scalar");
    const std::size_t F = s.back(), steps = F ? x.size() / F : 0;
    array_t<T> k = array_t<T>::from_shape(shape_t(s.begin(), s.end() - 1));
    const T mv = static_cast<T>(m_mask_value);
    for (std::size_t r = 0; r < steps; ++r) {
        const T* p = x.data() + r * F;
        k.data()[r] = std::any_of(p, p + F, [&](T v) { return v != mv; }) ? T(1) : T(0);
    }
    return k;
}

template <class T>
Tensor<T> Masking<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return mul(x, expand_dims(Tensor<T>(keep(x)), -1));
}

template <class T>
Tensor<T> Masking<T>::compute_mask(const Tensor<T>& x, const Tensor<T>&) const
{
    return Tensor<T>(keep(x));
}

template class Embedding<float>;
template class Embedding<double>;
template class Masking<float>;
template class Masking<double>;

} // namespace xtape
