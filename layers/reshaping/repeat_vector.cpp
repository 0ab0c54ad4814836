#include "layers/reshaping/repeat_vector.hpp"

#include "framework/ops.hpp"
#include "framework/resampling.hpp"
#include "layers/layer_config.hpp"

namespace xtape {

template <class T>
RepeatVector<T>::RepeatVector(long n, const std::string& name, bool trainable)
    : Layer<T>("RepeatVector", name, trainable)
    , m_n(static_cast<std::size_t>(n))
{
    if (n <= 0)
        throw ValueError("Argument `n` should be a positive integer. Received: n=" + std::to_string(n));
}

template <class T>
std::shared_ptr<RepeatVector<T>> RepeatVector<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    auto it = config.find("n");
    if (it == config.end() || !it->is_number_integer())
        throw ValueError("RepeatVector config: expected an integer 'n', got " + config.dump());
    return std::make_shared<RepeatVector<T>>(it->get<long>(), a.name, a.trainable);
}

template <class T>
json RepeatVector<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["n"] = m_n;
    return c;
}

template <class T>
dims_t RepeatVector<T>::compute_output_shape(const dims_t& s) const
{
    if (s.size() != 2)
        throw ShapeError("Input 0 of layer \"" + this->name() +
                         "\" is incompatible with the layer: expected ndim=2, found ndim=" + std::to_string(s.size()) +
                         ". Full shape received: " + dims_str(s));
    return dims_t{ s[0], static_cast<long>(m_n), s[1] };
}

template <class T>
void RepeatVector<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template <class T>
Tensor<T> RepeatVector<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return repeat_elements(expand_dims(x, 1), { 1, m_n, 1 });
}

template class RepeatVector<float>;
template class RepeatVector<double>;

} // namespace xtape
