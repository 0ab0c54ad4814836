#include "layers/reshape.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

namespace xtape {

template<class T>
Reshape<T>::Reshape(const dims_t& target_shape, const std::string& name, bool trainable)
  : Layer<T>("Reshape", name, trainable)
  , m_target_shape(target_shape)
{
    int unknown = 0;
    for (long d : target_shape) {
        unknown += d == -1;
        if (d == 0 || d < -1)
            throw ValueError("layer \"" + this->name() +
                             "\": target_shape entries must be positive or -1. "
                             "Received: target_shape=" +
                             dims_str(target_shape));
    }
    if (unknown > 1)
        throw ValueError("The `target_shape` argument must not contain more than one `-1` value. Received: "
                         "target_shape=" +
                         dims_str(target_shape));
}

template<class T>
std::shared_ptr<Reshape<T>> Reshape<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    auto it = config.find("target_shape");
    if (it == config.end() || it->is_null())
        throw KeyError("Reshape.from_config: the config has no 'target_shape': " + config.dump());
    return std::make_shared<Reshape<T>>(dims_from_json(*it, "target_shape"), a.name, a.trainable);
}

template<class T>
json Reshape<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["target_shape"] = m_target_shape;
    return c;
}

template<class T>
dims_t Reshape<T>::compute_output_shape(const dims_t& s) const
{
    if (s.empty())
        throw ShapeError("Input 0 of layer \"" + this->name() +
                         "\" is incompatible with the layer: expected a "
                         "batch dimension, received input with shape ()");
    dims_t out{ s[0] };
    bool known = true;
    long size = 1;
    for (std::size_t i = 1; i < s.size(); ++i) {
        known = known && s[i] >= 0;
        size *= s[i] >= 0 ? s[i] : 1;
    }
    const dims_t in(s.begin() + 1, s.end());
    long known_target = 1;
    int unknown_at = -1;
    for (std::size_t i = 0; i < m_target_shape.size(); ++i) {
        if (m_target_shape[i] == -1)
            unknown_at = static_cast<int>(i);
        else
            known_target *= m_target_shape[i];
    }
    dims_t t = m_target_shape;
    if (!known) {
        // As Keras: with an unknown input dimension, -1 stays unknown.
        if (unknown_at >= 0)
            t[unknown_at] = none_dim;
    } else if (unknown_at < 0) {
        if (size != known_target)
            throw ShapeError("layer \"" + this->name() +
                             "\": The total size of the tensor must be unchanged. "
                             "Received: input_shape=" +
                             dims_str(in) + ", target_shape=" + dims_str(m_target_shape));
    } else {
        if (known_target == 0 || size % known_target != 0)
            throw ShapeError("layer \"" + this->name() +
                             "\": The total size of the tensor must be unchanged, "
                             "however, the input size cannot by divided by the specified dimensions in "
                             "target_shape. Received: input_shape=" +
                             dims_str(in) + ", target_shape=" + dims_str(m_target_shape));
        t[unknown_at] = size / known_target;
    }
    out.insert(out.end(), t.begin(), t.end());
    return out;
}

template<class T>
void Reshape<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template<class T>
Tensor<T> Reshape<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    const dims_t out = compute_output_shape(dims_of(x.shape()));
    return reshape(x, std::vector<long>(out.begin(), out.end()));
}

template class Reshape<float>;
template class Reshape<double>;

} // namespace xtape
