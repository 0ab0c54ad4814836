#include "layers/normalization/group_normalization.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"

#include <algorithm>

namespace xtape {

template <class T>
GroupNormalization<T>::GroupNormalization(const GroupNormalizationOptions<T>& options)
    : Layer<T>("GroupNormalization", options.name, options.trainable)
    , m_options(options)
    , m_workspace(std::make_shared<ln::Workspace<T>>())
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (m_options.groups <= 0 && m_options.groups != -1)
        throw ValueError("Received an invalid value for argument `groups`, expected a positive integer (or `-1` for "
                         "instance normalization). Received: groups=" +
                         std::to_string(m_options.groups));
    m_options.affine = m_options.affine.with_defaults();
}

template <class T>
std::shared_ptr<GroupNormalization<T>> GroupNormalization<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    GroupNormalizationOptions<T> o;
    o.name = a.name;
    o.trainable = a.trainable;
    if (config.contains("groups") && !config["groups"].is_null()) {
        if (!config["groups"].is_number_integer())
            throw ValueError("Received an invalid value for argument `groups`, expected a positive integer (or `-1` "
                             "for instance normalization). Received: groups=" +
                             config["groups"].dump());
        o.groups = config["groups"].get<long>();
    }
    if (config.contains("axis") && !config["axis"].is_null()) {
        const std::vector<int> axis = axis_from_config(config["axis"], "GroupNormalization '" + a.name + "'");
        if (axis.size() != 1)
            throw ValueError("GroupNormalization '" + a.name + "': expected one channel axis, got " +
                             config["axis"].dump());
        o.axis = axis[0];
    }
    o.epsilon = config_number(config, "epsilon", o.epsilon);
    o.affine = AffineParams<T>::from_config(config);
    return std::make_shared<GroupNormalization<T>>(o);
}

template <class T>
json GroupNormalization<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["groups"] = m_options.groups;
    c["axis"] = m_options.axis;
    c["epsilon"] = m_options.epsilon;
    m_options.affine.to_config(c);
    return c;
}

template <class T>
void GroupNormalization<T>::build(const dims_t& input_shape)
{
    const long rank = static_cast<long>(input_shape.size());
    const long a = m_options.axis < 0 ? m_options.axis + rank : m_options.axis;
    if (a < 1 || a >= rank) // axis 0 is the batch: Keras's reshape into groups keeps it first
        throw ValueError("Axis " + std::to_string(m_options.axis) + " is out of bounds for input shape " +
                         dims_str(input_shape) + ". Received: axis=" + std::to_string(m_options.axis) +
                         " (layer \"" + this->name() + "\")");
    const long dim = input_shape[a];
    if (dim < 0)
        throw ValueError("Axis " + std::to_string(m_options.axis) +
                         " of input tensor should have a defined dimension but the layer received an input with "
                         "shape " +
                         dims_str(input_shape) + ".");
    if (m_options.groups == -1)
        m_options.groups = dim;
    if (dim < m_options.groups)
        throw ValueError("Number of groups (" + std::to_string(m_options.groups) +
                         ") cannot be more than the number of channels (" + std::to_string(dim) + ").");
    if (dim % m_options.groups != 0)
        throw ValueError("Number of groups (" + std::to_string(m_options.groups) +
                         ") must be a multiple of the number of channels (" + std::to_string(dim) + ").");
    m_axis = static_cast<std::size_t>(a);
    const AffineParams<T>& p = m_options.affine;
    const shape_t shape{ static_cast<std::size_t>(dim) };
    if (p.scale)
        m_gamma = this->add_weight("gamma", shape, p.gamma_initializer, p.gamma_regularizer, p.gamma_constraint, true);
    if (p.center)
        m_beta = this->add_weight("beta", shape, p.beta_initializer, p.beta_regularizer, p.beta_constraint, true);
}

template <class T>
void GroupNormalization<T>::check_input(const shape_t& x) const
{
    const dims_t& b = this->build_input_shape();
    if (x.size() != b.size() || static_cast<long>(x[m_axis]) != b[m_axis])
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(b.size()) + " and axis " + std::to_string(m_axis) + " of size " +
                         std::to_string(b[m_axis]) + ", found shape=" + shape_str(x));
}

template <class T>
Tensor<T> GroupNormalization<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    const shape_t s = x.shape();
    const std::size_t rank = s.size(), G = static_cast<std::size_t>(m_options.groups), C = s[m_axis];
    // (N, ..., C, ...) -> (N, ..., G, C/G, ...) -> (N, G, the rest): each (sample, group) a row.
    std::vector<long> grouped;
    for (std::size_t i = 0; i < rank; ++i) {
        if (i == m_axis) {
            grouped.push_back(static_cast<long>(G));
            grouped.push_back(static_cast<long>(C / G));
        } else {
            grouped.push_back(static_cast<long>(s[i]));
        }
    }
    std::vector<std::size_t> perm{ 0, m_axis };
    for (std::size_t i = 1; i <= rank; ++i)
        if (i != m_axis)
            perm.push_back(i);
    const bool moves = m_axis != 1;
    Tensor<T> g = reshape(x, grouped);
    if (moves)
        g = transpose(g, perm);
    std::vector<int> rest;
    for (std::size_t i = 2; i <= rank; ++i)
        rest.push_back(static_cast<int>(i));
    g = layer_norm(g, Tensor<T>(), Tensor<T>(), LayerNormSpec{ rest, m_options.epsilon, false }, m_workspace);
    if (moves) {
        std::vector<std::size_t> back(perm.size());
        for (std::size_t i = 0; i < perm.size(); ++i)
            back[perm[i]] = i;
        g = transpose(g, back);
    }
    Tensor<T> y = reshape(g, std::vector<long>(s.begin(), s.end()));
    if (!m_gamma.defined() && !m_beta.defined())
        return y;
    // gamma and beta per channel, broadcast over the other axes: shape (C, 1, ..., 1) after the batch.
    std::vector<long> bshape(rank - 1, 1);
    bshape[m_axis - 1] = static_cast<long>(C);
    if (m_gamma.defined())
        y = mul(y, reshape(m_gamma.tensor(), bshape));
    if (m_beta.defined())
        y = add(y, reshape(m_beta.tensor(), bshape));
    return y;
}

template <class T>
const Variable<T>& GroupNormalization<T>::gamma() const
{
    return require_weight(m_gamma, this->name(), "gamma", "not built, or scale=False");
}

template <class T>
const Variable<T>& GroupNormalization<T>::beta() const
{
    return require_weight(m_beta, this->name(), "beta", "not built, or center=False");
}

// ---- UnitNormalization ---------------------------------------------------------------------------

template <class T>
UnitNormalization<T>::UnitNormalization(std::vector<int> axis, bool axis_is_list, const std::string& name)
    : Layer<T>("UnitNormalization", name)
    , m_axis(std::move(axis))
    , m_axis_is_list(axis_is_list)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (m_axis.empty())
        throw ValueError("UnitNormalization: `axis` must name at least one axis. Received: axis=[]");
}

template <class T>
std::shared_ptr<UnitNormalization<T>> UnitNormalization<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    std::vector<int> axis{ -1 };
    bool is_list = false;
    if (config.contains("axis") && !config["axis"].is_null()) {
        const json& ax = config["axis"];
        if (!ax.is_number_integer() && !ax.is_array())
            throw ValueError("UnitNormalization '" + a.name +
                             "': Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
                             "Received: axis=" +
                             ax.dump());
        axis = axis_from_config(ax, "UnitNormalization '" + a.name + "'");
        is_list = ax.is_array();
    }
    auto l = std::make_shared<UnitNormalization<T>>(axis, is_list, a.name);
    l->set_trainable(a.trainable);
    return l;
}

template <class T>
json UnitNormalization<T>::get_config() const
{
    json c = Layer<T>::get_config();
    if (m_axis.size() == 1 && !m_axis_is_list)
        c["axis"] = m_axis[0];
    else
        c["axis"] = m_axis;
    return c;
}

template <class T>
void UnitNormalization<T>::build(const dims_t& input_shape)
{
    const long rank = static_cast<long>(input_shape.size());
    for (int a : m_axis)
        if (a >= rank || a < -rank)
            throw ValueError("Axis " + (m_axis.size() == 1 ? std::to_string(m_axis[0]) : axis_list_str(m_axis)) +
                             " is out of bounds for input shape " + dims_str(input_shape) + ". (layer \"" +
                             this->name() + "\")");
}

template <class T>
void UnitNormalization<T>::check_input(const shape_t& x) const
{
    if (x.size() != this->build_input_shape().size())
        throw ShapeError("Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: expected ndim=" +
                         std::to_string(this->build_input_shape().size()) + ", found shape=" + shape_str(x));
}

template <class T>
Tensor<T> UnitNormalization<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    // x * rsqrt(max(sum(x^2), eps^2)), eps = 1e-12 (Keras's ops.normalize, order 2).
    const Tensor<T> sq = sum(square(x), m_axis, /*keepdims=*/true);
    const Tensor<T> clamped = maximum(sq, Tensor<T>::scalar(static_cast<T>(1e-24)));
    return mul(x, pow_scalar(clamped, static_cast<T>(-0.5)));
}

template class GroupNormalization<float>;
template class GroupNormalization<double>;
template class UnitNormalization<float>;
template class UnitNormalization<double>;

} // namespace xtape
