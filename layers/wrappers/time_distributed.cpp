#include "layers/wrappers/time_distributed.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"
#include "layers/registry.hpp"

namespace xtape {
namespace {

dims_t child_shape(const dims_t& s)
{
    if (s.size() < 3)
        throw ValueError("`TimeDistributed` Layer should be passed an `input_shape` with at least 3 dimensions, "
                         "received: " +
                         dims_str(s));
    dims_t c{ s[0] };
    c.insert(c.end(), s.begin() + 2, s.end());
    return c;
}

} // namespace

template <class T>
TimeDistributed<T>::TimeDistributed(LayerPtr<T> layer, const std::string& name)
    : Layer<T>("TimeDistributed", name)
    , m_layer(std::move(layer))
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (!m_layer)
        throw ValueError("Please initialize `TimeDistributed` layer with a `keras.layers.Layer` instance. Received: "
                         "None");
}

template <class T>
std::shared_ptr<TimeDistributed<T>> TimeDistributed<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    if (!config.contains("layer") || !config["layer"].is_object())
        throw ValueError("TimeDistributed '" + a.name + "': the config has no nested `layer` ({\"class_name\": ..., "
                         "\"config\": ...})");
    auto l = std::make_shared<TimeDistributed<T>>(layer_from_config<T>(config["layer"]), a.name);
    l->set_trainable(a.trainable);
    return l;
}

template <class T>
json TimeDistributed<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["layer"] = { { "module", "keras.layers" },
                   { "class_name", m_layer->class_name() },
                   { "config", m_layer->get_config() },
                   { "registered_name", nullptr } };
    return c;
}

template <class T>
dims_t TimeDistributed<T>::compute_output_shape(const dims_t& input_shape) const
{
    const dims_t child = m_layer->compute_output_shape(child_shape(input_shape));
    dims_t out{ child[0], input_shape[1] };
    out.insert(out.end(), child.begin() + 1, child.end());
    return out;
}

template <class T>
void TimeDistributed<T>::build(const dims_t& input_shape)
{
    m_layer->build_once(child_shape(input_shape));
}

template <class T>
void TimeDistributed<T>::check_input(const shape_t& x) const
{
    if (x.size() < 3)
        throw ShapeError("`TimeDistributed` Layer \"" + this->name() +
                         "\" should be passed an input with at least 3 dimensions, received: " + shape_str(x));
}

template <class T>
Tensor<T> TimeDistributed<T>::call(const Tensor<T>& x, bool training, const Tensor<T>& mask)
{
    const shape_t s = x.shape();
    if (mask.defined()) {
        const shape_t ms = mask.shape();
        if (ms.size() < 2)
            throw ValueError("The `mask` passed to the `TimeDistributed` layer must be at least 2D (e.g., "
                             "`(batch_size, timesteps)`), but it has " +
                             std::to_string(ms.size()) + " dimension(s) with shape " + shape_str(ms) + ".");
        if (ms[0] != s[0] || ms[1] != s[1])
            throw ValueError("The `mask` passed to the `TimeDistributed` layer has a shape " + shape_str(ms) +
                             " that is incompatible with the input shape " + shape_str(s) +
                             ". The first two dimensions of the mask (batch size and timesteps) must match the "
                             "input's first two dimensions. Expected mask shape prefix: (" +
                             std::to_string(s[0]) + ", " + std::to_string(s[1]) + ").");
    }
    // One inner call per step (Note [TimeDistributed semantics]).
    std::vector<Tensor<T>> steps;
    steps.reserve(s[1]);
    for (std::size_t t = 0; t < s[1]; ++t) {
        const Tensor<T> xt = squeeze(slice(x, 1, t, t + 1), 1);
        const Tensor<T> mt = mask.defined() ? squeeze(slice(mask, 1, t, t + 1), 1) : Tensor<T>();
        steps.push_back(expand_dims((*m_layer)(xt, training, mt), 1));
    }
    return steps.size() == 1 ? steps[0] : concatenate(steps, 1);
}

template <class T>
std::vector<Variable<T>> TimeDistributed<T>::weights() const
{
    return m_layer->weights();
}

template <class T>
std::vector<Variable<T>> TimeDistributed<T>::trainable_weights() const
{
    return this->trainable() ? m_layer->trainable_weights() : std::vector<Variable<T>>{};
}

template <class T>
std::vector<Variable<T>> TimeDistributed<T>::non_trainable_weights() const
{
    if (this->trainable())
        return m_layer->non_trainable_weights();
    return m_layer->weights();
}

template <class T>
void TimeDistributed<T>::set_trainable(bool t)
{
    Layer<T>::set_trainable(t);
    m_layer->set_trainable(t);
}

template <class T>
void TimeDistributed<T>::collect_added_losses(std::vector<Tensor<T>>& out) const
{
    Layer<T>::collect_added_losses(out);
    m_layer->collect_added_losses(out);
}

template <class T>
void TimeDistributed<T>::clear_losses()
{
    Layer<T>::clear_losses();
    m_layer->clear_losses();
}

template class TimeDistributed<float>;
template class TimeDistributed<double>;

} // namespace xtape
