#include "layers/reshaping/cropping.hpp"

#include "layers/layer_config.hpp"
#include "layers/reshaping/spatial_widths.hpp"
#include "layers/spatial_config.hpp"

namespace xtape {

template <class T>
Cropping<T>::Cropping(const char* class_name, const pad_widths_t& cropping, const std::string& data_format,
                      const std::string& name, bool trainable)
    : Layer<T>(class_name, name, trainable)
    , m_cropping(cropping)
    , m_data_format(standardize_data_format(data_format))
{
    if (cropping.empty() || cropping.size() > 2)
        throw ValueError("layer \"" + this->name() + "\": expected one (before, after) cropping per spatial axis, got " +
                         std::to_string(cropping.size()));
}

template <class T>
json Cropping<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["cropping"] = widths_to_json(m_cropping);
    if (m_cropping.size() == 2)
        c["data_format"] = m_data_format;
    return c;
}

template <class T>
pad_widths_t Cropping<T>::all_axes(std::size_t rank) const
{
    pad_widths_t w(rank, { 0, 0 });
    const std::size_t first = m_data_format == "channels_first" ? 2 : 1;
    for (std::size_t i = 0; i < m_cropping.size(); ++i)
        w[first + i] = m_cropping[i];
    return w;
}

template <class T>
dims_t Cropping<T>::compute_output_shape(const dims_t& s) const
{
    const std::size_t rank = m_cropping.size() + 2;
    if (s.size() != rank)
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(rank) + ", found ndim=" + std::to_string(s.size()) +
                         ". Full shape received: " + dims_str(s));
    const pad_widths_t w = all_axes(rank);
    dims_t out = s;
    for (std::size_t d = 1; d < rank; ++d) {
        if (s[d] < 0)
            continue;
        const long total = static_cast<long>(w[d].first + w[d].second);
        if (total > 0 && total >= s[d]) {
            std::string widths = "(";
            for (std::size_t i = 0; i < m_cropping.size(); ++i)
                widths += (i ? ", (" : "(") + std::to_string(m_cropping[i].first) + ", " +
                          std::to_string(m_cropping[i].second) + ")";
            throw ShapeError("layer \"" + this->name() +
                             (rank == 3 ? "\": `cropping` parameter of `Cropping1D` layer must be smaller than the "
                                          "input length. Received: input_shape="
                                        : "\": Values in `cropping` argument should be smaller than the "
                                          "corresponding spatial dimension of the input. Received: input_shape=") +
                             dims_str(s) + ", cropping=" + widths + ")");
        }
        out[d] -= total;
    }
    return out;
}

template <class T>
void Cropping<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template <class T>
Tensor<T> Cropping<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return crop(x, all_axes(x.dim()));
}

template <class T>
std::shared_ptr<Cropping1D<T>> Cropping1D<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json c = config_first(config, { "cropping" });
    const pad_widths_t w = c.is_null() ? pad_widths_t{ { 1, 1 } } : widths_from_json(c, 1, "cropping");
    return std::make_shared<Cropping1D<T>>(w[0], a.name, a.trainable);
}

template <class T>
std::shared_ptr<Cropping2D<T>> Cropping2D<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json c = config_first(config, { "cropping" });
    const pad_widths_t w = c.is_null() ? pad_widths_t{ { 0, 0 }, { 0, 0 } } : widths_from_json(c, 2, "cropping");
    return std::make_shared<Cropping2D<T>>(w, data_format_from_config(config), a.name, a.trainable);
}

template class Cropping<float>;
template class Cropping<double>;
template class Cropping1D<float>;
template class Cropping1D<double>;
template class Cropping2D<float>;
template class Cropping2D<double>;

} // namespace xtape
