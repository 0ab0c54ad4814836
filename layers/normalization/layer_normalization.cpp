#include "layers/normalization/layer_normalization.hpp"

#include "layers/layer_config.hpp"

#include <algorithm>
#include <cmath>

namespace xtape {

template <class T>
LayerNormalization<T>::LayerNormalization(const LayerNormalizationOptions<T>& options)
    : Layer<T>("LayerNormalization", options.name, options.trainable)
    , m_options(options)
    , m_workspace(std::make_shared<ln::Workspace<T>>())
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (m_options.axis.empty())
        throw ValueError("LayerNormalization: `axis` must name at least one axis. Received: axis=[]");
    if (!(m_options.epsilon >= 0.0) || !std::isfinite(m_options.epsilon))
        throw ValueError("LayerNormalization: `epsilon` must be a non-negative float. Received: epsilon=" +
                         json(m_options.epsilon).dump());
    m_options.affine = m_options.affine.with_defaults();
    m_spec.axes = m_options.axis;
    m_spec.epsilon = m_options.epsilon;
    m_spec.rms_scaling = m_options.rms_scaling;
}

template <class T>
std::shared_ptr<LayerNormalization<T>> LayerNormalization<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    LayerNormalizationOptions<T> o;
    o.name = a.name;
    o.trainable = a.trainable;
    if (config.contains("axis") && !config["axis"].is_null()) {
        o.axis = axis_from_config(config["axis"], "LayerNormalization '" + a.name + "'");
        o.axis_is_list = config["axis"].is_array();
    }
    o.epsilon = config_number(config, "epsilon", o.epsilon);
    o.rms_scaling = config_bool(config, "rms_scaling", false);
    o.affine = AffineParams<T>::from_config(config);
    return std::make_shared<LayerNormalization<T>>(o);
}

template <class T>
json LayerNormalization<T>::get_config() const
{
    json c = Layer<T>::get_config();
    if (this->built())
        c["axis"] = m_axes;
    else if (m_options.axis.size() == 1 && !m_options.axis_is_list)
        c["axis"] = m_options.axis[0];
    else
        c["axis"] = m_options.axis;
    c["epsilon"] = m_options.epsilon;
    m_options.affine.to_config(c);
    c["rms_scaling"] = m_options.rms_scaling;
    return c;
}

template <class T>
void LayerNormalization<T>::build(const dims_t& input_shape)
{
    const long rank = static_cast<long>(input_shape.size());
    std::vector<std::size_t> axes;
    for (int a : m_options.axis) {
        const long r = a < 0 ? a + rank : a;
        if (r < 0 || r >= rank)
            throw ValueError("LayerNormalization '" + this->name() + "': axis " + std::to_string(a) +
                             " is out of bounds for array of dimension " + std::to_string(rank) +
                             " (input shape " + dims_str(input_shape) + ")");
        axes.push_back(static_cast<std::size_t>(r));
    }
    std::sort(axes.begin(), axes.end());
    if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
        throw ValueError("LayerNormalization '" + this->name() +
                         "': Duplicate axes are not allowed. Received: axis=" + axis_list_str(m_options.axis));
    shape_t shape;
    for (auto a : axes) {
        if (input_shape[a] < 0)
            throw ValueError("LayerNormalization '" + this->name() + "': the normalized axis " + std::to_string(a) +
                             " of input shape " + dims_str(input_shape) + " must be defined");
        shape.push_back(static_cast<std::size_t>(input_shape[a]));
    }
    m_axes = axes;
    // Keras's kernel-side axes are the sorted non-negative ones.
    m_spec.axes.assign(axes.begin(), axes.end());
    const AffineParams<T>& p = m_options.affine;
    if (p.scale || m_options.rms_scaling)
        m_gamma = this->add_weight("gamma", shape, p.gamma_initializer, p.gamma_regularizer, p.gamma_constraint, true);
    if (p.center && !m_options.rms_scaling)
        m_beta = this->add_weight("beta", shape, p.beta_initializer, p.beta_regularizer, p.beta_constraint, true);
}

template <class T>
void LayerNormalization<T>::check_input(const shape_t& x) const
{
    const dims_t& b = this->build_input_shape();
    bool ok = x.size() == b.size();
    for (std::size_t k = 0; ok && k < m_axes.size(); ++k)
        ok = static_cast<long>(x[m_axes[k]]) == b[m_axes[k]];
    if (!ok)
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected shape=" +
                         dims_str(b) + " on the normalized axes " + axis_list_str(m_spec.axes) +
                         ", found shape=" + shape_str(x));
}

template <class T>
Tensor<T> LayerNormalization<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    return layer_norm(x, m_gamma.defined() ? m_gamma.tensor() : Tensor<T>(),
                      m_beta.defined() ? m_beta.tensor() : Tensor<T>(), m_spec, m_workspace);
}

template <class T>
const Variable<T>& LayerNormalization<T>::gamma() const
{
    return require_weight(m_gamma, this->name(), "gamma", "not built, or scale=False");
}

template <class T>
const Variable<T>& LayerNormalization<T>::beta() const
{
    return require_weight(m_beta, this->name(), "beta", "not built, center=False or rms_scaling=True");
}

template class LayerNormalization<float>;
template class LayerNormalization<double>;

} // namespace xtape
