#include "layers/input_layer.hpp"

#include "layers/layer_config.hpp"

namespace xtape {

namespace {
dims_t with_batch(const dims_t& shape, long batch_size)
{
    dims_t d{ batch_size };
    d.insert(d.end(), shape.begin(), shape.end());
    return d;
}
} // namespace

template<class T>
InputLayer<T>::InputLayer(const dims_t& shape, long batch_size, const std::string& name)
  : Layer<T>("InputLayer", name, true)
{
    for (long d : shape)
        if (d == 0 || d < none_dim)
            throw ValueError("layer \"" + this->name() +
                             "\": input shape dimensions must be positive or None. "
                             "Received: shape=" +
                             dims_str(shape));
    const dims_t batch_shape = with_batch(shape, batch_size < 0 ? none_dim : batch_size);
    this->build_once(batch_shape);
    this->add_input_node(batch_shape);
}

template<class T>
std::shared_ptr<InputLayer<T>> InputLayer<T>::with_batch_shape(const dims_t& batch_shape,
                                                               const std::string& name)
{
    if (batch_shape.empty())
        throw ValueError(
          "InputLayer: batch_shape must include the batch dimension. Received: batch_shape=()");
    return std::make_shared<InputLayer<T>>(
      dims_t(batch_shape.begin() + 1, batch_shape.end()), batch_shape[0], name);
}

template<class T>
std::shared_ptr<InputLayer<T>> InputLayer<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    if (config_bool(config, "sparse", false) || config_bool(config, "ragged", false))
        throw NotImplementedError("InputLayer \"" + a.name +
                                  "\": sparse and ragged inputs are not supported by xtape");
    const bool has_batch_shape = !config_first(config, { "batch_shape", "batch_input_shape" }).is_null();
    const bool has_shape = !config_first(config, { "shape", "input_shape" }).is_null();
    if (has_batch_shape && has_shape)
        throw ValueError("You cannot pass both `shape` and `batch_shape` at the same time.");
    if (has_batch_shape)
        return with_batch_shape(*batch_input_shape_from_config(config), a.name);
    if (!has_shape)
        throw ValueError("You must pass a `shape` argument. InputLayer config: " + config.dump());
    const json shape = config_first(config, { "shape", "input_shape" });
    const json batch_json = config_first(config, { "batch_size" });
    const long batch = batch_json.is_null() ? none_dim : config_integer_value<long>(batch_json, "batch_size");
    return std::make_shared<InputLayer<T>>(dims_from_json(shape, "shape"), batch, a.name);
}

template<class T>
json InputLayer<T>::get_config() const
{
    return json{ { "batch_shape", dims_to_json(batch_shape()) },
                 { "dtype", dtype_name<T>() },
                 { "sparse", false },
                 { "ragged", false },
                 { "name", this->name() },
                 { "optional", false } };
}

template<class T>
Tensor<T> InputLayer<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return x;
}

template<class T>
KerasTensor<T> Input(const dims_t& shape, long batch_size, const std::string& name, const std::string& dtype)
{
    if (!dtype.empty() && dtype != dtype_name<T>()) {
        // Only the two scalar types xtape has get a hint; other dtypes have no Input<> to name.
        const std::string hint = dtype == "float64"   ? " (use Input<double> for float64)"
                                 : dtype == "float32" ? " (use Input<float> for float32)"
                                                      : "";
        throw ValueError("Input: dtype '" + dtype + "' does not match the model's scalar type " + dtype_name<T>() +
                         hint);
    }
    return std::make_shared<InputLayer<T>>(shape, batch_size, name)->get_output_at(0);
}

template class InputLayer<float>;
template class InputLayer<double>;
template KerasTensor<float> Input<float>(const dims_t&, long, const std::string&, const std::string&);
template KerasTensor<double> Input<double>(const dims_t&, long, const std::string&, const std::string&);

} // namespace xtape
