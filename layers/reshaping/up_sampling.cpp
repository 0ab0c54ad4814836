#include "layers/reshaping/up_sampling.hpp"

#include "framework/resampling.hpp"
#include "layers/layer_config.hpp"
#include "layers/spatial_config.hpp"

namespace xtape {

namespace {
std::string rank_error(const std::string& layer, std::size_t rank, const dims_t& s)
{
    return "Input 0 of layer \"" + layer + "\" is incompatible with the layer: expected ndim=" + std::to_string(rank) +
           ", found ndim=" + std::to_string(s.size()) + ". Full shape received: " + dims_str(s);
}
} // namespace

// ---- UpSampling1D --------------------------------------------------------------------------------

template <class T>
UpSampling1D<T>::UpSampling1D(long size, const std::string& name, bool trainable)
    : Layer<T>("UpSampling1D", name, trainable)
    , m_size(static_cast<std::size_t>(size))
{
    if (size <= 0)
        throw ValueError("Argument `size` should be a positive integer. Received: size=" + std::to_string(size));
}

template <class T>
std::shared_ptr<UpSampling1D<T>> UpSampling1D<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json s = config_first(config, { "size", "length" });
    long size = 2;
    if (!s.is_null()) {
        // tf.keras 2 wrote an int; accept a one-element list too.
        const json v = s.is_array() && s.size() == 1 ? s[0] : s;
        if (!v.is_number_integer())
            throw ValueError("UpSampling1D config: expected an integer 'size', got " + s.dump());
        size = v.get<long>();
    }
    return std::make_shared<UpSampling1D<T>>(size, a.name, a.trainable);
}

template <class T>
json UpSampling1D<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["size"] = m_size;
    return c;
}

template <class T>
dims_t UpSampling1D<T>::compute_output_shape(const dims_t& s) const
{
    if (s.size() != 3)
        throw ShapeError(rank_error(this->name(), 3, s));
    dims_t out = s;
    if (s[1] >= 0)
        out[1] = s[1] * static_cast<long>(m_size);
    return out;
}

template <class T>
void UpSampling1D<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template <class T>
Tensor<T> UpSampling1D<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return repeat_elements(x, { 1, m_size, 1 });
}

// ---- UpSampling2D --------------------------------------------------------------------------------

template <class T>
UpSampling2D<T>::UpSampling2D(const std::vector<long>& size, const std::string& data_format,
                              const std::string& interpolation, const std::string& name, bool trainable)
    : Layer<T>("UpSampling2D", name, trainable)
    , m_data_format(standardize_data_format(data_format))
    , m_interpolation(lower_case(interpolation))
{
    const std::vector<long> s = int_tuple(size, 2, "size");
    m_size.assign(s.begin(), s.end());
    if (m_interpolation == "bicubic" || m_interpolation == "lanczos3" || m_interpolation == "lanczos5" ||
        m_interpolation == "area" || m_interpolation == "gaussian" || m_interpolation == "mitchellcubic" ||
        m_interpolation == "lanczos")
        throw NotImplementedError("layer \"" + this->name() + "\": UpSampling2D interpolation '" + m_interpolation +
                                  "' is not implemented in xtape (supported: 'nearest', 'bilinear')");
    if (m_interpolation != "nearest" && m_interpolation != "bilinear")
        throw ValueError("layer \"" + this->name() +
                         "\": `interpolation` should be one of 'nearest', 'bilinear', 'bicubic', 'lanczos3', "
                         "'lanczos5'. Received: interpolation=" +
                         interpolation);
}

template <class T>
std::shared_ptr<UpSampling2D<T>> UpSampling2D<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json s = config_first(config, { "size" });
    const std::vector<long> size = s.is_null() ? std::vector<long>{ 2, 2 } : int_tuple(s, 2, "size");
    return std::make_shared<UpSampling2D<T>>(size, data_format_from_config(config),
                                             config_string(config, "interpolation", "nearest"), a.name, a.trainable);
}

template <class T>
json UpSampling2D<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["size"] = json::array({ m_size[0], m_size[1] });
    c["data_format"] = m_data_format;
    c["interpolation"] = m_interpolation;
    return c;
}

template <class T>
dims_t UpSampling2D<T>::compute_output_shape(const dims_t& s) const
{
    if (s.size() != 4)
        throw ShapeError(rank_error(this->name(), 4, s));
    dims_t out = s;
    const std::size_t first = m_data_format == "channels_first" ? 2 : 1;
    for (std::size_t i = 0; i < 2; ++i)
        if (s[first + i] >= 0)
            out[first + i] = s[first + i] * static_cast<long>(m_size[i]);
    return out;
}

template <class T>
void UpSampling2D<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template <class T>
Tensor<T> UpSampling2D<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    const bool cf = m_data_format == "channels_first";
    if (m_interpolation == "bilinear")
        return upsample_bilinear(x, m_size[0], m_size[1], cf);
    return repeat_elements(x, cf ? std::vector<std::size_t>{ 1, 1, m_size[0], m_size[1] }
                                 : std::vector<std::size_t>{ 1, m_size[0], m_size[1], 1 });
}

template class UpSampling1D<float>;
template class UpSampling1D<double>;
template class UpSampling2D<float>;
template class UpSampling2D<double>;

} // namespace xtape
