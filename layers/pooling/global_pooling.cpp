#include "layers/pooling/global_pooling.hpp"

#include "framework/pooling.hpp"
#include "layers/layer_config.hpp"
#include "layers/spatial_config.hpp"

namespace xtape {

template <class T>
GlobalPooling<T>::GlobalPooling(const char* class_name, std::size_t spatial_axes, bool max,
                                const GlobalPoolingOptions& o)
    : Layer<T>(class_name, o.name, o.trainable)
    , m_spatial_axes(spatial_axes)
    , m_max(max)
    , m_data_format(standardize_data_format(o.data_format))
    , m_keepdims(o.keepdims)
{
    // Keras 3: only GlobalAveragePooling1D supports masking (it averages the unmasked steps and
    // its output carries no mask); the others drop a mask (Note [Masks across layers]).
    this->set_supports_masking(spatial_axes == 1 && !max);
}

template <class T>
GlobalPoolingOptions GlobalPooling<T>::options_from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    GlobalPoolingOptions o;
    o.name = a.name;
    o.trainable = a.trainable;
    o.data_format = data_format_from_config(config);
    o.keepdims = config_bool(config, "keepdims", false);
    return o;
}

template <class T>
json GlobalPooling<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["data_format"] = m_data_format;
    c["keepdims"] = m_keepdims;
    return c;
}

template <class T>
dims_t GlobalPooling<T>::compute_output_shape(const dims_t& s) const
{
    if (s.size() != m_spatial_axes + 2)
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(m_spatial_axes + 2) + ", found ndim=" + std::to_string(s.size()) +
                         ". Full shape received: " + dims_str(s));
    const bool cf = m_data_format == "channels_first";
    const long c = cf ? s[1] : s.back();
    if (!m_keepdims)
        return dims_t{ s[0], c };
    dims_t out(s.size(), 1);
    out[0] = s[0];
    out[cf ? 1 : s.size() - 1] = c;
    return out;
}

template <class T>
void GlobalPooling<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template <class T>
Tensor<T> GlobalPooling<T>::call(const Tensor<T>& x, bool, const Tensor<T>& mask)
{
    const bool cf = m_data_format == "channels_first";
    if (m_max)
        return global_max_pool(x, cf, m_keepdims);
    // Only the 1-D average takes a mask in Keras 3 (supports_masking); the 2-D one ignores it.
    return global_average_pool(x, cf, m_keepdims, m_spatial_axes == 1 ? mask : Tensor<T>());
}

template class GlobalPooling<float>;
template class GlobalPooling<double>;

} // namespace xtape
