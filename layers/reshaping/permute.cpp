#include "layers/reshaping/permute.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

#include <algorithm>

namespace xtape {

template <class T>
Permute<T>::Permute(const std::vector<long>& dims, const std::string& name, bool trainable)
    : Layer<T>("Permute", name, trainable)
    , m_dims(dims)
{
    std::vector<long> sorted = dims;
    std::sort(sorted.begin(), sorted.end());
    bool ok = !dims.empty();
    for (std::size_t i = 0; ok && i < sorted.size(); ++i)
        ok = sorted[i] == static_cast<long>(i + 1);
    if (!ok)
        throw ValueError("Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` must "
                         "be consecutive and start from 1. Received dims=" +
                         dims_str(dims));
}

template <class T>
std::shared_ptr<Permute<T>> Permute<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    auto it = config.find("dims");
    if (it == config.end() || !it->is_array())
        throw ValueError("Permute config: expected a list 'dims', got " + config.dump());
    return std::make_shared<Permute<T>>(dims_from_json(*it, "dims"), a.name, a.trainable);
}

template <class T>
json Permute<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["dims"] = m_dims;
    return c;
}

template <class T>
dims_t Permute<T>::compute_output_shape(const dims_t& s) const
{
    if (s.size() != m_dims.size() + 1)
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(m_dims.size() + 1) + ", found ndim=" + std::to_string(s.size()) +
                         ". Full shape received: " + dims_str(s));
    dims_t out{ s[0] };
    for (long d : m_dims)
        out.push_back(s[static_cast<std::size_t>(d)]);
    return out;
}

template <class T>
void Permute<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template <class T>
Tensor<T> Permute<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    std::vector<std::size_t> perm{ 0 };
    for (long d : m_dims)
        perm.push_back(static_cast<std::size_t>(d));
    return transpose(x, perm);
}

template class Permute<float>;
template class Permute<double>;

} // namespace xtape
