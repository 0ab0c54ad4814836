#include "layers/convolutional/base_conv.hpp"

#include "framework/ops.hpp"
#include "layers/activation.hpp"
#include "layers/layer_config.hpp"
#include "layers/convolutional/register_convolutional.hpp"

namespace xtape {

namespace {

std::string tuple_str(const std::vector<std::size_t>& v)
{
    std::string s = "(";
    for (std::size_t i = 0; i < v.size(); ++i)
        s += (i ? ", " : "") + std::to_string(v[i]);
    return s + (v.size() == 1 ? ",)" : ")");
}

/// Keras's standardize_tuple: one int for every dimension or exactly `rank` of them.
std::vector<std::size_t> standardize_tuple(const std::vector<std::size_t>& v, std::size_t rank, const char* name)
{
    if (v.size() == 1)
        return std::vector<std::size_t>(rank, v[0]);
    if (v.size() != rank)
        throw ValueError(std::string("The `") + name + "` argument must be a tuple of " + std::to_string(rank) +
                         " integers. Received " + name + "=" + tuple_str(v));
    return v;
}

json tuple_json(const std::vector<std::size_t>& v)
{
    json j = json::array();
    for (auto x : v)
        j.push_back(x);
    return j;
}

/// An int or a list of ints from a config value.
std::vector<std::size_t> size_list(const json& j, const char* key)
{
    std::vector<std::size_t> out;
    auto one = [&](const json& e) {
        if (!e.is_number_integer() || e.get<long>() < 0)
            throw ValueError(std::string("config key '") + key + "': expected non-negative integers, got " + j.dump());
        out.push_back(config_integer_value<std::size_t>(e, key));
    };
    if (j.is_array())
        for (const auto& e : j)
            one(e);
    else
        one(j);
    return out;
}

std::string lower(std::string s)
{
    for (auto& c : s)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

} // namespace

template <class T>
BaseConv<T>::BaseConv(std::string class_name, std::size_t rank, ConvKind kind, const ConvLayerOptions<T>& o)
    : Layer<T>(std::move(class_name), o.name, o.trainable)
    , m_rank(rank)
    , m_kind(kind)
    , m_options(o)
{
    ConvLayerOptions<T>& m = m_options;
    m.activation = o.activation.empty() ? "linear" : activation_from_config(json(o.activation));
    if (kind != ConvKind::depthwise && m.filters <= 0)
        throw ValueError("Invalid value for argument `filters`. Expected a strictly positive value. Received filters=" +
                         std::to_string(m.filters) + ".");
    if ((kind == ConvKind::depthwise || kind == ConvKind::separable) && m.depth_multiplier <= 0)
        throw ValueError("Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
                         "Received depth_multiplier=" +
                         std::to_string(m.depth_multiplier) + ".");
    if (m.groups == 0)
        throw ValueError("The number of groups must be a positive integer. Received: groups=0.");
    if (kind != ConvKind::conv && m.groups != 1)
        throw ValueError(this->class_name() + " takes no `groups` argument. Received: groups=" +
                         std::to_string(m.groups) + ".");
    if (kind != ConvKind::depthwise && m.filters % long(m.groups) != 0)
        throw ValueError("The number of filters must be evenly divisible by the number of groups. Received: groups=" +
                         std::to_string(m.groups) + ", filters=" + std::to_string(m.filters) + ".");
    if (m.kernel_size.empty())
        throw ValueError(this->class_name() + ": the `kernel_size` argument is required");
    m.kernel_size = standardize_tuple(m.kernel_size, rank, "kernel_size");
    m.strides = standardize_tuple(m.strides.empty() ? std::vector<std::size_t>{ 1 } : m.strides, rank, "strides");
    m.dilation_rate = standardize_tuple(m.dilation_rate.empty() ? std::vector<std::size_t>{ 1 } : m.dilation_rate,
                                        rank, "dilation_rate");
    for (auto k : m.kernel_size)
        if (k == 0)
            throw ValueError("The argument `kernel_size` cannot contain 0. Received kernel_size=" +
                             tuple_str(m.kernel_size) + ".");
    for (auto s : m.strides)
        if (s == 0)
            throw ValueError("The argument `strides` cannot contains 0. Received strides=" + tuple_str(m.strides) + ".");
    bool stride_gt1 = false, dil_gt1 = false;
    for (std::size_t d = 0; d < rank; ++d) {
        stride_gt1 = stride_gt1 || m.strides[d] > 1;
        dil_gt1 = dil_gt1 || m.dilation_rate[d] > 1;
    }
    if (stride_gt1 && dil_gt1)
        throw ValueError("`strides > 1` not supported in conjunction with `dilation_rate > 1`. Received: strides=" +
                         tuple_str(m.strides) + " and dilation_rate=" + tuple_str(m.dilation_rate));
    m.padding = lower(m.padding);
    const bool causal_ok = rank == 1 && kind == ConvKind::conv;
    if (m.padding != "valid" && m.padding != "same" && !(causal_ok && m.padding == "causal"))
        throw ValueError("The `padding` argument must be one of 'valid', 'same'" +
                         std::string(causal_ok ? " (or 'causal')" : " ('causal' only for `Conv1D`)") +
                         ". Received: padding=" + m.padding);
    m.data_format = lower(m.data_format.empty() ? "channels_last" : m.data_format);
    if (m.data_format != "channels_last" && m.data_format != "channels_first")
        throw ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. Received: "
                         "data_format=" +
                         m.data_format);
    if (kind == ConvKind::transpose && !m.output_padding.empty()) {
        std::vector<std::size_t> op;
        for (long v : m.output_padding)
            op.push_back(std::size_t(std::max(0L, v)));
        op = standardize_tuple(op, rank, "output_padding");
        m.output_padding.assign(op.begin(), op.end());
        for (std::size_t d = 0; d < rank; ++d)
            if (op[d] >= m.strides[d])
                throw ValueError("Strides must be greater than output padding. Received strides=" +
                                 tuple_str(m.strides) + ", output_padding=" + tuple_str(op) + ".");
    }
    if (!m.kernel_initializer)
        m.kernel_initializer = get_initializer<T>("glorot_uniform");
    if (!m.pointwise_initializer)
        m.pointwise_initializer = get_initializer<T>("glorot_uniform");
    if (!m.bias_initializer)
        m.bias_initializer = get_initializer<T>("zeros");
    this->set_activity_regularizer(o.activity_regularizer);
}

template <class T>
std::shared_ptr<BaseConv<T>> BaseConv<T>::from_config(const std::string& class_name, std::size_t rank,
                                                      ConvKind kind, const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    ConvLayerOptions<T> o;
    o.name = a.name;
    o.trainable = a.trainable;
    const bool depthwise_kernel = kind == ConvKind::depthwise || kind == ConvKind::separable;
    if (kind != ConvKind::depthwise) {
        const json f = config_first(config, { "filters", "nb_filter" });
        if (!f.is_number_integer())
            throw ValueError("Invalid value for argument `filters`. Expected a strictly positive value. Received filters=" +
                             f.dump() + " (" + class_name + " config " + config.dump() + ")");
        o.filters = f.get<long>();
    }
    // kernel_size: Keras 2/3, or Keras 1's filter_length (1-D) / nb_row, nb_col (2-D) / kernel_dim1..3 (3-D)
    for (const char* k : { "nb_row", "nb_col", "kernel_dim1", "kernel_dim2", "kernel_dim3" })
        note_config_key(k); // Note [Config keys read]
    if (json k = config_first(config, { "kernel_size", "filter_length" }); !k.is_null()) {
        o.kernel_size = size_list(k, "kernel_size");
    } else if (config.contains("nb_row")) {
        o.kernel_size = { config_integer_value<std::size_t>(config.at("nb_row"), "nb_row"),
                          config_integer_value<std::size_t>(config.at("nb_col"), "nb_col") };
    } else if (config.contains("kernel_dim1")) {
        o.kernel_size = { config_integer_value<std::size_t>(config.at("kernel_dim1"), "kernel_dim1"),
                          config_integer_value<std::size_t>(config.at("kernel_dim2"), "kernel_dim2"),
                          config_integer_value<std::size_t>(config.at("kernel_dim3"), "kernel_dim3") };
    } else {
        throw ValueError(class_name + " config has no kernel_size: " + config.dump());
    }
    if (json s = config_first(config, { "strides", "subsample", "subsample_length" }); !s.is_null())
        o.strides = size_list(s, "strides");
    if (json d = config_first(config, { "dilation_rate", "atrous_rate" }); !d.is_null())
        o.dilation_rate = size_list(d, "dilation_rate");
    if (json p = config_first(config, { "padding", "border_mode" }); !p.is_null()) {
        if (!p.is_string())
            throw NotImplementedError(class_name + ": explicit padding lists are not supported, received padding=" +
                                      p.dump());
        o.padding = p.get<std::string>();
        if (o.padding == "full")
            throw NotImplementedError(class_name + ": Keras 1's border_mode='full' is not supported");
    }
    if (json f = config_first(config, { "data_format" }); !f.is_null()) {
        o.data_format = f.get<std::string>();
    } else if (json d = config_first(config, { "dim_ordering" }); !d.is_null()) {
        const std::string s = d.get<std::string>();
        if (s == "th")
            o.data_format = "channels_first";
        else if (s == "tf" || s == "default")
            o.data_format = "channels_last";
        else
            throw ValueError(class_name + ": unknown dim_ordering '" + s + "' (expected 'tf' or 'th')");
    }
    if (json g = config_first(config, { "groups" }); !g.is_null())
        o.groups = config_integer_value<std::size_t>(g, "groups");
    if (json m = config_first(config, { "depth_multiplier" }); !m.is_null())
        o.depth_multiplier = config_integer_value<long>(m, "depth_multiplier");
    if (json op = config_first(config, { "output_padding" }); !op.is_null())
        for (auto v : size_list(op, "output_padding"))
            o.output_padding.push_back(long(v));
    if (json os = config_first(config, { "output_shape" }); kind == ConvKind::transpose && !os.is_null()) {
        // Keras 1 Deconvolution2D: (batch, rows, cols, filters) for "tf", (batch, filters, rows, cols) for "th".
        if (!os.is_array() || os.size() != rank + 2)
            throw ValueError(class_name + ": `output_shape` must list " + std::to_string(rank + 2) +
                             " dimensions (batch, spatial..., channels), received output_shape=" + os.dump());
        const std::size_t first = o.data_format == "channels_first" ? 2 : 1;
        for (std::size_t d = 0; d < rank; ++d) {
            const json& v = os[first + d];
            if (!v.is_number_integer() || v.get<long>() <= 0)
                throw ValueError(class_name + ": `output_shape` must give every spatial size as a positive integer, "
                                              "received output_shape=" +
                                 os.dump());
            o.keras1_output_shape.push_back(v.get<long>());
        }
    }
    o.activation = activation_from_config(config.contains("activation") ? config["activation"] : json());
    o.use_bias = config.contains("use_bias") ? config_bool(config, "use_bias", true) : config_bool(config, "bias", true);
    const char* k_init = depthwise_kernel ? "depthwise_initializer" : "kernel_initializer";
    const char* k_reg = depthwise_kernel ? "depthwise_regularizer" : "kernel_regularizer";
    const char* k_con = depthwise_kernel ? "depthwise_constraint" : "kernel_constraint";
    if (json j = config_first(config, { k_init, "init" }); !j.is_null())
        o.kernel_initializer = get_initializer<T>(j);
    if (json j = config_first(config, { "pointwise_initializer" }); !j.is_null())
        o.pointwise_initializer = get_initializer<T>(j);
    if (json j = config_first(config, { "bias_initializer" }); !j.is_null())
        o.bias_initializer = get_initializer<T>(j);
    o.kernel_regularizer = get_regularizer<T>(config_first(config, { k_reg, "W_regularizer" }));
    o.pointwise_regularizer = get_regularizer<T>(config_first(config, { "pointwise_regularizer" }));
    o.bias_regularizer = get_regularizer<T>(config_first(config, { "bias_regularizer", "b_regularizer" }));
    o.activity_regularizer = get_regularizer<T>(config_first(config, { "activity_regularizer" }));
    o.kernel_constraint = get_constraint<T>(config_first(config, { k_con, "W_constraint" }));
    o.pointwise_constraint = get_constraint<T>(config_first(config, { "pointwise_constraint" }));
    o.bias_constraint = get_constraint<T>(config_first(config, { "bias_constraint", "b_constraint" }));
    return std::make_shared<BaseConv<T>>(class_name, rank, kind, o);
}

template <class T>
json BaseConv<T>::get_config() const
{
    const ConvLayerOptions<T>& m = m_options;
    json c = Layer<T>::get_config();
    const bool dw = m_kind == ConvKind::depthwise || m_kind == ConvKind::separable;
    if (m_kind != ConvKind::depthwise)
        c["filters"] = m.filters;
    c["kernel_size"] = tuple_json(m.kernel_size);
    c["strides"] = tuple_json(m.strides);
    c["padding"] = m.padding;
    if (m_kind == ConvKind::transpose) {
        if (m.output_padding.empty())
            c["output_padding"] = nullptr;
        else
            c["output_padding"] = m.output_padding;
    }
    c["data_format"] = m.data_format;
    c["dilation_rate"] = tuple_json(m.dilation_rate);
    if (m_kind == ConvKind::conv)
        c["groups"] = m.groups;
    if (dw)
        c["depth_multiplier"] = m.depth_multiplier;
    c["activation"] = m.activation;
    c["use_bias"] = m.use_bias;
    c[dw ? "depthwise_initializer" : "kernel_initializer"] = serialize<T>(m.kernel_initializer);
    if (m_kind == ConvKind::separable)
        c["pointwise_initializer"] = serialize<T>(m.pointwise_initializer);
    c["bias_initializer"] = serialize<T>(m.bias_initializer);
    c[dw ? "depthwise_regularizer" : "kernel_regularizer"] = serialize<T>(m.kernel_regularizer);
    if (m_kind == ConvKind::separable)
        c["pointwise_regularizer"] = serialize<T>(m.pointwise_regularizer);
    c["bias_regularizer"] = serialize<T>(m.bias_regularizer);
    c["activity_regularizer"] = serialize<T>(this->activity_regularizer());
    c[dw ? "depthwise_constraint" : "kernel_constraint"] = serialize<T>(m.kernel_constraint);
    if (m_kind == ConvKind::separable)
        c["pointwise_constraint"] = serialize<T>(m.pointwise_constraint);
    c["bias_constraint"] = serialize<T>(m.bias_constraint);
    return c;
}

template <class T>
ConvOptions BaseConv<T>::op_options() const
{
    ConvOptions o;
    o.strides = m_options.strides;
    o.dilation_rate = m_options.dilation_rate;
    o.padding = m_options.padding;
    o.channels_first = channels_first();
    o.groups = m_kind == ConvKind::conv ? m_options.groups : 1;
    o.output_padding = m_options.output_padding;
    return o;
}

// Note [Deconvolution2D's output_shape]: Keras 1's Deconvolution2D names its output size
// (output_shape) and runs TensorFlow's conv2d_transpose to that size, which accepts every size whose
// forward convolution gives back the input: (n - 1) * s + span + p with p in [0, s) for "valid",
// (n - 1) * s + 1 + p for "same" (span = the kernel's extent). Keras 2 loads the class as
// Conv2DTranspose and drops output_shape (its default size is one of those), Keras 3 names the extra
// p output_padding. xtape keeps Keras 1's numbers: the size becomes output_padding once the input
// size is known (at build), and the layer saves as Conv2DTranspose with that output_padding.
template <class T>
std::vector<long> BaseConv<T>::keras1_output_padding(const dims_t& s) const
{
    const ConvLayerOptions<T>& m = m_options;
    const std::size_t first = channels_first() ? 2 : 1;
    std::vector<long> pad(m_rank, 0);
    bool is_default = true;
    for (std::size_t d = 0; d < m_rank; ++d) {
        const long n = s[first + d], stride = long(m.strides.size() == 1 ? m.strides[0] : m.strides[d]);
        const long k = long(m.kernel_size.size() == 1 ? m.kernel_size[0] : m.kernel_size[d]);
        const long dil = long(m.dilation_rate.size() == 1 ? m.dilation_rate[0] : m.dilation_rate[d]);
        const long span = (k - 1) * dil + 1, want = m.keras1_output_shape[d];
        if (n <= 0)
            throw ValueError("layer \"" + this->name() + "\": Keras 1's output_shape needs the input's spatial sizes, "
                                                          "received input shape " +
                             dims_str(s));
        const bool same = m.padding == "same";
        const long fallback = same ? n * stride : n * stride + std::max(span - stride, 0L);
        const long base = (n - 1) * stride + (same ? span - 2 * (span / 2) : span);
        is_default = is_default && want == fallback;
        pad[d] = want - base;
        const long lo = same ? (n - 1) * stride + 1 : (n - 1) * stride + span;
        if (want < lo || want >= lo + stride)
            throw ValueError("layer \"" + this->name() + "\" (Deconvolution2D): output_shape size " +
                             std::to_string(want) + " in spatial dimension " + std::to_string(d) +
                             " cannot come from input size " + std::to_string(n) + " with kernel " + std::to_string(k) +
                             ", strides " + std::to_string(stride) + " and padding '" + m.padding +
                             "': expected a size in [" + std::to_string(lo) + ", " + std::to_string(lo + stride - 1) +
                             "]");
    }
    if (is_default)
        return {};
    for (std::size_t d = 0; d < m_rank; ++d) {
        const long stride = long(m.strides.size() == 1 ? m.strides[0] : m.strides[d]);
        if (pad[d] < 0 || pad[d] >= stride)
            throw NotImplementedError("layer \"" + this->name() +
                                      "\" (Deconvolution2D): output_shape " + std::to_string(m.keras1_output_shape[d]) +
                                      " needs output_padding " + std::to_string(pad[d]) + " with strides " +
                                      std::to_string(stride) +
                                      ", which Conv2DTranspose cannot express (an even kernel with padding 'same')");
    }
    return pad;
}

template <class T>
std::string BaseConv<T>::input_error(const std::string& what) const
{
    return "Input 0 of layer \"" + this->name() + "\" is incompatible with the layer: " + what;
}

template <class T>
dims_t BaseConv<T>::compute_output_shape(const dims_t& s) const
{
    if (s.size() != m_rank + 2)
        throw ShapeError(input_error("expected ndim=" + std::to_string(m_rank + 2) + ", found ndim=" +
                                     std::to_string(s.size()) + ". Full shape received: " + dims_str(s)));
    const std::size_t ca = channel_axis(s.size());
    // Spatial extents through the op's own geometry (unknown extents stay None).
    shape_t probe(s.size(), 1);
    probe[ca] = s[ca] > 0 ? std::size_t(s[ca]) : 1;
    const std::size_t first = channels_first() ? 2 : 1;
    for (std::size_t d = 0; d < m_rank; ++d)
        probe[first + d] = s[first + d] > 0 ? std::size_t(s[first + d]) : 0;
    dims_t out = s;
    if (!m_options.keras1_output_shape.empty()) { // Keras 1's get_output_shape_for: output_shape as given
        out[ca] = m_options.filters;
        for (std::size_t d = 0; d < m_rank; ++d)
            out[first + d] = m_options.keras1_output_shape[d];
        return out;
    }
    const long channels = m_kind == ConvKind::depthwise ? long(probe[ca]) * m_options.depth_multiplier
                                                        : m_options.filters;
    out[ca] = (m_kind == ConvKind::depthwise && s[ca] < 0) ? none_dim : channels;
    for (std::size_t d = 0; d < m_rank; ++d) {
        if (s[first + d] < 0) {
            out[first + d] = none_dim;
            continue;
        }
        convolution::Geometry g;
        shape_t x1 = probe, k;
        for (std::size_t e = 0; e < m_rank; ++e) {
            x1[first + e] = e == d ? std::size_t(s[first + d]) : m_options.kernel_size[e] * 4 + 64;
            k.push_back(m_options.kernel_size[e]);
        }
        x1[ca] = 1;
        const std::size_t kin = 1, kout = 1;
        k.push_back(kin);
        k.push_back(kout);
        ConvOptions o = op_options();
        o.groups = 1;
        g = m_kind == ConvKind::transpose ? convolution::conv_transpose_geometry(x1, k, o, this->name())
                                          : convolution::conv_geometry(x1, k, o, this->name());
        out[first + d] = long(m_kind == ConvKind::transpose ? g.in[3 - m_rank + d] : g.out[3 - m_rank + d]);
    }
    return out;
}

template <class T>
void BaseConv<T>::build(const dims_t& s)
{
    if (s.size() != m_rank + 2)
        throw ShapeError(input_error("expected ndim=" + std::to_string(m_rank + 2) + ", found ndim=" +
                                     std::to_string(s.size()) + ". Full shape received: " + dims_str(s)));
    const long ch = s[channel_axis(s.size())];
    if (ch <= 0)
        throw ValueError("layer \"" + this->name() +
                         "\": The channel dimension of the inputs should be defined. Found None. Full input shape "
                         "received: " +
                         dims_str(s));
    m_in_channels = std::size_t(ch);
    if (!m_options.keras1_output_shape.empty()) { // Note [Deconvolution2D's output_shape]
        m_options.output_padding = keras1_output_padding(s);
        m_options.keras1_output_shape.clear();
    }
    const ConvLayerOptions<T>& m = m_options;
    if (m_kind == ConvKind::conv && m_in_channels % m.groups != 0)
        throw ValueError("The number of input channels must be evenly divisible by the number of groups. Received "
                         "groups=" +
                         std::to_string(m.groups) + ", but the input has " + std::to_string(m_in_channels) +
                         " channels (full input shape is " + dims_str(s) + ").");
    shape_t k(m.kernel_size.begin(), m.kernel_size.end());
    const std::size_t filters = std::size_t(m.filters), dm = std::size_t(m.depth_multiplier);
    std::size_t bias_size = filters;
    switch (m_kind) {
    case ConvKind::conv:
        k.push_back(m_in_channels / m.groups);
        k.push_back(filters);
        m_kernel = this->add_weight("kernel", k, m.kernel_initializer, m.kernel_regularizer, m.kernel_constraint);
        break;
    case ConvKind::transpose:
        k.push_back(filters);
        k.push_back(m_in_channels);
        m_kernel = this->add_weight("kernel", k, m.kernel_initializer, m.kernel_regularizer, m.kernel_constraint);
        break;
    case ConvKind::depthwise:
    case ConvKind::separable: {
        k.push_back(m_in_channels);
        k.push_back(dm);
        m_kernel = this->add_weight("depthwise_kernel", k, m.kernel_initializer, m.kernel_regularizer,
                                    m.kernel_constraint);
        if (m_kind == ConvKind::separable) {
            shape_t pk(m_rank, 1);
            pk.push_back(m_in_channels * dm);
            pk.push_back(filters);
            m_pointwise = this->add_weight("pointwise_kernel", pk, m.pointwise_initializer, m.pointwise_regularizer,
                                           m.pointwise_constraint);
        } else {
            bias_size = m_in_channels * dm;
        }
        break;
    }
    }
    if (m.use_bias)
        m_bias = this->add_weight("bias", { bias_size }, m.bias_initializer, m.bias_regularizer, m.bias_constraint);
}

template <class T>
void BaseConv<T>::check_input(const shape_t& x) const
{
    if (x.size() != m_rank + 2)
        throw ShapeError(input_error("expected ndim=" + std::to_string(m_rank + 2) + ", found ndim=" +
                                     std::to_string(x.size()) + ". Full shape received: " + shape_str(x)));
    const std::size_t ca = channel_axis(x.size());
    if (x[ca] != m_in_channels)
        throw ShapeError(input_error("expected axis " + std::to_string(channels_first() ? 1 : -1) +
                                     " of input shape to have value " + std::to_string(m_in_channels) +
                                     ", but received input with shape " + shape_str(x)));
}

template <class T>
Tensor<T> BaseConv<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    const ConvOptions o = op_options();
    const Tensor<T> b = m_options.use_bias ? m_bias.tensor() : Tensor<T>();
    Tensor<T> y;
    switch (m_kind) {
    case ConvKind::conv:
        y = conv<T>(x, m_kernel, b, o);
        break;
    case ConvKind::transpose:
        y = conv_transpose<T>(x, m_kernel, b, o);
        break;
    case ConvKind::depthwise:
        y = depthwise_conv<T>(x, m_kernel, b, o);
        break;
    case ConvKind::separable: {
        // Keras: the depthwise step with the strides, padding and dilation, then a 1x1 convolution.
        Tensor<T> d = depthwise_conv<T>(x, m_kernel, Tensor<T>(), o);
        ConvOptions pw;
        pw.channels_first = o.channels_first;
        y = conv<T>(d, m_pointwise, b, pw);
        break;
    }
    }
    return m_options.activation == "linear" ? y : xtape::activation<T>(m_options.activation, y);
}

template <class T>
const Variable<T>& BaseConv<T>::kernel() const
{
    if (!this->built())
        throw RuntimeError("layer \"" + this->name() + "\": You must build the layer before accessing `kernel`.");
    return m_kernel;
}

template <class T>
const Variable<T>& BaseConv<T>::pointwise_kernel() const
{
    if (!this->built() || m_kind != ConvKind::separable)
        throw RuntimeError("layer \"" + this->name() + "\": " +
                           (m_kind == ConvKind::separable ? "You must build the layer before accessing `pointwise_kernel`."
                                                          : "only separable convolutions have a pointwise kernel."));
    return m_pointwise;
}

template <class T>
const Variable<T>& BaseConv<T>::bias() const
{
    if (!this->built() || !m_options.use_bias)
        throw RuntimeError("layer \"" + this->name() + "\": " +
                           (m_options.use_bias ? "You must build the layer before accessing `bias`."
                                               : "the layer has no bias (use_bias=False)."));
    return m_bias;
}

template <class T>
void register_convolutional_layers(std::map<std::string, LayerFactory<T>>& factories)
{
    struct Entry {
        const char* name;
        std::size_t rank;
        ConvKind kind;
    };
    // Keras 1 names load as the Keras 2/3 class (the config is read in either form).
    static const Entry entries[] = {
        { "Conv1D", 1, ConvKind::conv },
        { "Conv2D", 2, ConvKind::conv },
        { "Conv3D", 3, ConvKind::conv },
        { "Convolution1D", 1, ConvKind::conv },
        { "Convolution2D", 2, ConvKind::conv },
        { "Convolution3D", 3, ConvKind::conv },
        { "AtrousConvolution1D", 1, ConvKind::conv },
        { "AtrousConvolution2D", 2, ConvKind::conv },
        { "Conv1DTranspose", 1, ConvKind::transpose },
        { "Conv2DTranspose", 2, ConvKind::transpose },
        { "Conv3DTranspose", 3, ConvKind::transpose },
        { "Convolution1DTranspose", 1, ConvKind::transpose },
        { "Convolution2DTranspose", 2, ConvKind::transpose },
        { "Convolution3DTranspose", 3, ConvKind::transpose },
        { "Deconvolution2D", 2, ConvKind::transpose }, // Keras 1
        { "DepthwiseConv1D", 1, ConvKind::depthwise },
        { "DepthwiseConv2D", 2, ConvKind::depthwise },
        { "SeparableConv1D", 1, ConvKind::separable },
        { "SeparableConv2D", 2, ConvKind::separable },
        { "SeparableConvolution1D", 1, ConvKind::separable },
        { "SeparableConvolution2D", 2, ConvKind::separable },
    };
    static const char* const canonical[] = { "Conv1D", "Conv2D", "Conv3D" };
    for (const Entry& e : entries) {
        std::string cls = e.name;
        // Keras 1/2 aliases become the class Keras 2/3 would save them as.
        if (cls.rfind("Convolution", 0) == 0 && e.kind == ConvKind::conv)
            cls = canonical[e.rank - 1];
        else if (cls.rfind("AtrousConvolution", 0) == 0)
            cls = canonical[e.rank - 1];
        else if (cls.rfind("Convolution", 0) == 0 || cls == "Deconvolution2D")
            cls = "Conv" + std::to_string(e.rank) + "DTranspose";
        else if (cls.rfind("SeparableConvolution", 0) == 0)
            cls = "SeparableConv" + std::to_string(e.rank) + "D";
        const std::size_t rank = e.rank;
        const ConvKind kind = e.kind;
        factories[e.name] = [cls, rank, kind](const json& config) -> LayerPtr<T> {
            return BaseConv<T>::from_config(cls, rank, kind, config);
        };
    }
}

template class BaseConv<float>;
template class BaseConv<double>;
template void register_convolutional_layers<float>(std::map<std::string, LayerFactory<float>>&);
template void register_convolutional_layers<double>(std::map<std::string, LayerFactory<double>>&);

} // namespace xtape
