#include "layers/reshaping/zero_padding.hpp"

#include "layers/layer_config.hpp"
#include "layers/reshaping/spatial_widths.hpp"
#include "layers/spatial_config.hpp"

namespace xtape {

template <class T>
ZeroPadding<T>::ZeroPadding(const char* class_name, const pad_widths_t& padding, const std::string& data_format,
                            const std::string& name, bool trainable)
    : Layer<T>(class_name, name, trainable)
    , m_padding(padding)
    , m_data_format(standardize_data_format(data_format))
{
    if (padding.empty() || padding.size() > 2)
        throw ValueError("layer \"" + this->name() + "\": expected one (before, after) padding per spatial axis, got " +
                         std::to_string(padding.size()));
}

template <class T>
json ZeroPadding<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["padding"] = widths_to_json(m_padding);
    c["data_format"] = m_data_format;
    return c;
}

template <class T>
pad_widths_t ZeroPadding<T>::all_axes(std::size_t rank) const
{
    pad_widths_t w(rank, { 0, 0 });
    const std::size_t first = m_data_format == "channels_first" ? 2 : 1;
    for (std::size_t i = 0; i < m_padding.size(); ++i)
        w[first + i] = m_padding[i];
    return w;
}

template <class T>
dims_t ZeroPadding<T>::compute_output_shape(const dims_t& s) const
{
    const std::size_t rank = m_padding.size() + 2;
    if (s.size() != rank)
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(rank) + ", found ndim=" + std::to_string(s.size()) +
                         ". Full shape received: " + dims_str(s));
    const pad_widths_t w = all_axes(rank);
    dims_t out = s;
    for (std::size_t d = 1; d < rank; ++d)
        if (s[d] >= 0)
            out[d] += static_cast<long>(w[d].first + w[d].second);
    return out;
}

template <class T>
void ZeroPadding<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template <class T>
Tensor<T> ZeroPadding<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return zero_pad(x, all_axes(x.dim()));
}

template <class T>
std::shared_ptr<ZeroPadding1D<T>> ZeroPadding1D<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json p = config_first(config, { "padding" });
    const pad_widths_t w = p.is_null() ? pad_widths_t{ { 1, 1 } } : widths_from_json(p, 1, "padding");
    return std::make_shared<ZeroPadding1D<T>>(w[0], data_format_from_config(config), a.name, a.trainable);
}

template <class T>
std::shared_ptr<ZeroPadding2D<T>> ZeroPadding2D<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json p = config_first(config, { "padding" });
    const pad_widths_t w = p.is_null() ? pad_widths_t{ { 1, 1 }, { 1, 1 } } : widths_from_json(p, 2, "padding");
    return std::make_shared<ZeroPadding2D<T>>(w, data_format_from_config(config), a.name, a.trainable);
}

template class ZeroPadding<float>;
template class ZeroPadding<double>;
template class ZeroPadding1D<float>;
template class ZeroPadding1D<double>;
template class ZeroPadding2D<float>;
template class ZeroPadding2D<double>;

} // namespace xtape
