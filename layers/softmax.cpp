#include "layers/softmax.hpp"

#include "layers/layer_config.hpp"

namespace xtape {

namespace {
// Keras's _large_negative_number for float32/float64: large enough to zero a probability,
// small enough that adding it to a logit stays finite.
constexpr double masked_logit = -1e9;
} // namespace

template<class T>
Softmax<T>::Softmax(int axis, const std::string& name, bool trainable)
  : Layer<T>("Softmax", name, trainable)
  , m_axes{ axis }
  , m_axis_is_list(false)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
}

template<class T>
Softmax<T>::Softmax(const axes_t& axes, const std::string& name, bool trainable)
  : Layer<T>("Softmax", name, trainable)
  , m_axes(axes)
  , m_axis_is_list(true)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (axes.empty())
        throw ValueError("layer \"" + this->name() + "\": Softmax needs at least one axis");
}

template<class T>
std::shared_ptr<Softmax<T>> Softmax<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    auto it = config.find("axis");
    if (it == config.end() || it->is_null())
        return std::make_shared<Softmax<T>>(-1, a.name, a.trainable);
    if (it->is_number_integer())
        return std::make_shared<Softmax<T>>(it->get<int>(), a.name, a.trainable);
    if (it->is_array()) {
        axes_t axes;
        for (const auto& e : *it) {
            if (!e.is_number_integer())
                throw ValueError("Softmax config: axis must be an integer or a list of integers, got " +
                                 it->dump());
            axes.push_back(e.get<int>());
        }
        return std::make_shared<Softmax<T>>(axes, a.name, a.trainable);
    }
    throw ValueError("Softmax config: axis must be an integer or a list of integers, got " + it->dump());
}

template<class T>
json Softmax<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["axis"] = m_axis_is_list ? json(m_axes) : json(m_axes[0]);
    return c;
}

template<class T>
void Softmax<T>::check_input(const shape_t& x) const
{
    const long rank = static_cast<long>(x.size());
    for (int a : m_axes)
        if (a >= rank || a < -rank)
            throw ShapeError("Input 0 of layer \"" + this->name() +
                             "\" is incompatible with the layer: softmax axis " + std::to_string(a) +
                             " is out of range for input with shape " + shape_str(x));
}

template<class T>
Tensor<T> Softmax<T>::call(const Tensor<T>& x, bool, const Tensor<T>& mask)
{
    Tensor<T> logits = x;
    if (mask.defined()) {
        // adder = (1 - mask) * large_negative; a constant, so it needs no gradient.
        array_t<T> adder = mask.value();
        for (auto& v : adder)
            v = (T(1) - v) * static_cast<T>(masked_logit);
        logits = add(x, Tensor<T>(std::move(adder)));
    }
    if (m_axes.size() == 1)
        return softmax(logits, m_axes[0]);
    // Several axes: exp(x - max) / sum(exp(x - max)) over all of them; the shift cancels in the
    // gradient, so composing differentiable ops is exact.
    Tensor<T> shifted = sub(logits, max(logits, m_axes, true));
    Tensor<T> e = exp(shifted);
    return div(e, sum(e, m_axes, true));
}

template class Softmax<float>;
template class Softmax<double>;

} // namespace xtape
