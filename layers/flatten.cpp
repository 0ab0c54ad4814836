#include "layers/flatten.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

#include <numeric>

namespace xtape {

template<class T>
Flatten<T>::Flatten(const std::string& data_format, const std::string& name, bool trainable)
  : Layer<T>("Flatten", name, trainable)
  , m_data_format(data_format)
{
    if (data_format != "channels_last" && data_format != "channels_first")
        throw ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         "Received: data_format=" +
                         data_format);
}

template<class T>
std::shared_ptr<Flatten<T>> Flatten<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    return std::make_shared<Flatten<T>>(
      config_string(config, "data_format", "channels_last"), a.name, a.trainable);
}

template<class T>
json Flatten<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["data_format"] = m_data_format;
    return c;
}

template<class T>
dims_t Flatten<T>::compute_output_shape(const dims_t& s) const
{
    if (s.empty())
        throw ShapeError("Input 0 of layer \"" + this->name() +
                         "\" is incompatible with the layer: expected min_ndim=1, found ndim=0. Full shape "
                         "received: ()");
    long flat = 1;
    for (std::size_t i = 1; i < s.size(); ++i)
        flat = (flat < 0 || s[i] < 0) ? none_dim : flat * s[i];
    return dims_t{ s[0], flat };
}

template<class T>
void Flatten<T>::check_input(const shape_t& x) const
{
    if (x.empty())
        throw ShapeError("Input 0 of layer \"" + this->name() +
                         "\" is incompatible with the layer: expected min_ndim=1, found ndim=0. Full shape "
                         "received: ()");
}

template<class T>
Tensor<T> Flatten<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    const shape_t s = x.shape();
    Tensor<T> in = x;
    if (m_data_format == "channels_first" && s.size() > 2) {
        // (batch, c, d1, ..., dn) -> (batch, d1, ..., dn, c)
        std::vector<std::size_t> perm{ 0 };
        for (std::size_t i = 2; i < s.size(); ++i)
            perm.push_back(i);
        perm.push_back(1);
        in = transpose(x, perm);
    }
    const long flat =
      static_cast<long>(std::accumulate(s.begin() + 1, s.end(), std::size_t(1), std::multiplies<>()));
    return reshape(in, std::vector<long>{ static_cast<long>(s[0]), flat });
}

template class Flatten<float>;
template class Flatten<double>;

} // namespace xtape
