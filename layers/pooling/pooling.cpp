#include "layers/pooling/pooling.hpp"

#include "layers/layer_config.hpp"
#include "layers/spatial_config.hpp"

namespace xtape {

namespace {

std::vector<std::size_t> to_sizes(const std::vector<long>& v)
{
    return std::vector<std::size_t>(v.begin(), v.end());
}

json to_json_list(const std::vector<std::size_t>& v)
{
    json j = json::array();
    for (auto d : v)
        j.push_back(d);
    return j;
}

} // namespace

template <class T>
Pooling<T>::Pooling(const char* class_name, std::size_t spatial_axes, bool max, const PoolingOptions& o)
    : Layer<T>(class_name, o.name, o.trainable)
    , m_max(max)
    , m_padding(standardize_padding(o.padding))
    , m_data_format(standardize_data_format(o.data_format))
{
    const std::vector<long> pool = o.pool_size.empty() ? std::vector<long>(spatial_axes, 2)
                                                       : int_tuple(o.pool_size, spatial_axes, "pool_size");
    m_spec.pool_size = to_sizes(pool);
    m_spec.strides = to_sizes(o.strides.empty() ? pool : int_tuple(o.strides, spatial_axes, "strides"));
    m_spec.same_padding = m_padding == "same";
    m_spec.channels_first = m_data_format == "channels_first";
}

template <class T>
PoolingOptions Pooling<T>::options_from_config(const json& config, std::size_t spatial_axes)
{
    const LayerArgs a = layer_args_from_config(config);
    PoolingOptions o;
    o.name = a.name;
    o.trainable = a.trainable;
    const json pool = config_first(config, { "pool_size", "pool_length" });
    if (!pool.is_null())
        o.pool_size = int_tuple(pool, spatial_axes, "pool_size");
    const json strides = config_first(config, { "strides", "stride" });
    if (!strides.is_null())
        o.strides = int_tuple(strides, spatial_axes, "strides");
    const json padding = config_first(config, { "padding", "border_mode" });
    if (!padding.is_null()) {
        if (!padding.is_string())
            throw ValueError("pooling config: expected 'padding' to be a string, got " + padding.dump());
        o.padding = padding.get<std::string>();
    }
    o.data_format = data_format_from_config(config);
    return o;
}

template <class T>
json Pooling<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["pool_size"] = to_json_list(m_spec.pool_size);
    c["padding"] = m_padding;
    c["strides"] = to_json_list(m_spec.strides);
    c["data_format"] = m_data_format;
    return c;
}

template <class T>
dims_t Pooling<T>::compute_output_shape(const dims_t& s) const
{
    const std::size_t nd = spatial_axes();
    if (s.size() != nd + 2)
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(nd + 2) + ", found ndim=" + std::to_string(s.size()) +
                         ". Full shape received: " + dims_str(s));
    dims_t out = s;
    const std::size_t first = m_spec.channels_first ? 2 : 1;
    for (std::size_t i = 0; i < nd; ++i) {
        const long in = s[first + i];
        if (in < 0)
            continue;
        const std::size_t o = pool_output_length(static_cast<std::size_t>(in), m_spec.pool_size[i], m_spec.strides[i],
                                                 m_spec.same_padding);
        if (o == 0)
            throw ShapeError("layer \"" + this->name() +
                             "\": Computed output size would be zero or negative. Received: `inputs.shape=" +
                             dims_str(s) + "`, `pool_size=" + shape_str(m_spec.pool_size) + "`, `strides=" +
                             shape_str(m_spec.strides) + "`, `padding=" + m_padding + "`.");
        out[first + i] = static_cast<long>(o);
    }
    return out;
}

template <class T>
void Pooling<T>::check_input(const shape_t& x) const
{
    compute_output_shape(dims_of(x));
}

template <class T>
Tensor<T> Pooling<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return m_max ? max_pool(x, m_spec) : average_pool(x, m_spec);
}

template class Pooling<float>;
template class Pooling<double>;

} // namespace xtape
