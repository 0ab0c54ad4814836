#include "layers/merging/merge.hpp"

#include "framework/ops.hpp"
#include "layers/layer_config.hpp"
#include "layers/registry.hpp"

namespace xtape {
namespace {

std::string shapes_str(const std::vector<dims_t>& shapes)
{
    std::string s = "[";
    for (std::size_t i = 0; i < shapes.size(); ++i)
        s += (i ? ", " : "") + dims_str(shapes[i]);
    return s + "]";
}

std::vector<dims_t> dims_list(const std::vector<shape_t>& shapes)
{
    std::vector<dims_t> d;
    for (const auto& s : shapes)
        d.push_back(dims_of(s));
    return d;
}

/// Keras's Merge._compute_elemwise_op_output_shape on shapes without the batch axis: aligned
/// on the right, a 1 or None stretches, other dimensions must be equal.
dims_t elementwise_shape(const dims_t& a, const dims_t& b)
{
    if (a.size() < b.size())
        return elementwise_shape(b, a);
    dims_t out(a.begin(), a.end() - static_cast<long>(b.size()));
    for (std::size_t k = 0; k < b.size(); ++k) {
        const long i = a[a.size() - b.size() + k], j = b[k];
        if (i < 0 || j < 0)
            out.push_back(none_dim);
        else if (i == 1)
            out.push_back(j);
        else if (j == 1 || i == j)
            out.push_back(i);
        else
            throw ValueError("Inputs have incompatible shapes. Received shapes " + dims_str(a) + " and " +
                             dims_str(b));
    }
    return out;
}

dims_t merged_shape(const std::vector<dims_t>& shapes)
{
    long batch = none_dim;
    for (const auto& s : shapes) {
        if (s.empty())
            throw ValueError("A merge layer needs inputs with a batch axis. Received: input_shape=" +
                             shapes_str(shapes));
        if (s[0] >= 0) {
            if (batch >= 0 && batch != s[0])
                throw ValueError("Cannot merge tensors with different batch sizes. Received tensors with shapes " +
                                 shapes_str(shapes));
            batch = s[0];
        }
    }
    dims_t out(shapes[0].begin() + 1, shapes[0].end());
    for (std::size_t i = 1; i < shapes.size(); ++i)
        out = elementwise_shape(out, dims_t(shapes[i].begin() + 1, shapes[i].end()));
    out.insert(out.begin(), batch);
    return out;
}

/// Logical or of 0/1 masks (elementwise maximum); no gradient flows through masks.
template <class T>
Tensor<T> mask_or(const Tensor<T>& a, const Tensor<T>& b)
{
    NoGradGuard no_grad;
    return maximum(a, b);
}

/// Keras's ops.where(m, a, b) for a 0/1 mask m (no gradient) that broadcasts against a and b:
/// m*a + (1-m)*b, exact for finite values and differentiable in a and b.
template <class T>
Tensor<T> where_mask(const Tensor<T>& m, const Tensor<T>& a, const Tensor<T>& b)
{
    const Tensor<T> not_m(array_t<T>(T(1) - m.value()));
    return add(mul(m, a), mul(not_m, b));
}

/// A step mask (batch, steps) with trailing axes of 1 up to `rank`, so that it broadcasts over
/// the features as Keras's expand_dims(mask, -1) + broadcast_to does.
template <class T>
Tensor<T> mask_to_rank(Tensor<T> m, std::size_t rank)
{
    while (m.dim() < rank)
        m = expand_dims(m, static_cast<int>(m.dim()));
    return m;
}
} // namespace

// ---- Merge ------------------------------------------------------------------------------------------------

template <class T>
Merge<T>::Merge(std::string class_name, std::string name, bool trainable)
    : Layer<T>(std::move(class_name), std::move(name), trainable)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
}

template <class T>
void Merge<T>::check_count(std::size_t n) const
{
    if (n < 1)
        throw ValueError("A merge layer should be called on a list of at least 1 input. Received 0 inputs.");
}

template <class T>
void Merge<T>::build_list(const std::vector<dims_t>& input_shapes)
{
    check_count(input_shapes.size());
    merged_shape(input_shapes);
}

template <class T>
void Merge<T>::check_input_list(const std::vector<shape_t>& shapes) const
{
    check_count(shapes.size());
    merged_shape(dims_list(shapes));
}

template <class T>
std::vector<dims_t> Merge<T>::compute_output_shape_list(const std::vector<dims_t>& input_shapes) const
{
    check_count(input_shapes.size());
    return { merged_shape(input_shapes) };
}

template <class T>
std::vector<Tensor<T>> Merge<T>::call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                           const CallArgs&)
{
    check_count(inputs.size());
    std::size_t rank = 0;
    for (const auto& x : inputs)
        rank = std::max(rank, x.dim());
    // Keras: an input of lower rank gets axes of size 1 after the batch axis.
    std::vector<Tensor<T>> same_rank;
    for (Tensor<T> x : inputs) {
        while (x.dim() < rank)
            x = expand_dims(x, 1);
        same_rank.push_back(x);
    }
    bool any_mask = false;
    for (const auto& m : masks)
        any_mask = any_mask || m.defined();
    if (!any_mask)
        return { merge(same_rank) };
    std::vector<Tensor<T>> step_masks;
    for (const auto& m : masks)
        step_masks.push_back(m.defined() ? mask_to_rank(m, rank) : Tensor<T>());
    return { merge_masked(same_rank, step_masks) };
}

template <class T>
Tensor<T> Merge<T>::merge_masked(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>&) const
{
    return merge(inputs);
}

// Note [Masked merges]
// Keras 3's Maximum and Minimum (Merge._apply_merge_op_and_or_mask) and Multiply look at their
// inputs' masks: a masked-out position of one input does not take part (Maximum/Minimum take the
// other inputs' value there, Multiply a factor of 1), and when every input has a mask the
// positions masked in all of them come out as Keras leaves them (the first input's value for
// Maximum/Minimum, 0 for Multiply). Add, Subtract and Average ignore masks in their values.
// The loops follow Keras's order of operations, so ties and partial masks give Keras's numbers.
template <class T>
Tensor<T> Merge<T>::merge_extremum_masked(const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& masks,
                                          Tensor<T> (*op)(const Tensor<T>&, const Tensor<T>&)) const
{
    Tensor<T> out = xs[0], out_mask = masks[0];
    for (std::size_t i = 1; i < xs.size(); ++i) {
        Tensor<T> x = xs[i];
        const Tensor<T>& m = masks[i];
        if (m.defined())
            x = where_mask(m, x, out);
        if (out_mask.defined())
            out = where_mask(out_mask, out, x);
        out_mask = m.defined() && out_mask.defined() ? mask_or(out_mask, m) : Tensor<T>();
        out = op(out, x);
    }
    return out;
}

template <class T>
std::vector<Tensor<T>> Merge<T>::compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                                   const std::vector<Tensor<T>>& masks) const
{
    if (masks.empty())
        return { Tensor<T>() };
    if (masks.size() != inputs.size())
        throw ValueError("The lists `inputs` and `mask` should have the same length. Received: inputs of length " +
                         std::to_string(inputs.size()) + ", and mask of length " + std::to_string(masks.size()));
    for (const auto& m : masks)
        if (!m.defined())
            return { Tensor<T>() };
    Tensor<T> out = masks[0];
    for (std::size_t i = 1; i < masks.size(); ++i)
        out = mask_or(out, masks[i]);
    return { out };
}

#define XTAPE_MERGE_COMMON(Name)                                                                               \
    template <class T>                                                                                         \
    Name<T>::Name(const std::string& name, bool trainable)                                                    \
        : Merge<T>(#Name, name, trainable)                                                                     \
    {                                                                                                          \
    }                                                                                                          \
    template <class T>                                                                                         \
    std::shared_ptr<Name<T>> Name<T>::from_config(const json& config)                                         \
    {                                                                                                          \
        const LayerArgs a = layer_args_from_config(config);                                                   \
        return std::make_shared<Name<T>>(a.name, a.trainable);                                                 \
    }

XTAPE_MERGE_COMMON(Add)
XTAPE_MERGE_COMMON(Subtract)
XTAPE_MERGE_COMMON(Multiply)
XTAPE_MERGE_COMMON(Average)
XTAPE_MERGE_COMMON(Maximum)
XTAPE_MERGE_COMMON(Minimum)
#undef XTAPE_MERGE_COMMON

#define XTAPE_MERGE_AT_LEAST_ONE(Name)                                                                         \
    template <class T>                                                                                         \
    void Name<T>::check_count(std::size_t n) const                                                            \
    {                                                                                                          \
        Merge<T>::check_count(n);                                                                              \
    }
XTAPE_MERGE_AT_LEAST_ONE(Add)
XTAPE_MERGE_AT_LEAST_ONE(Multiply)
XTAPE_MERGE_AT_LEAST_ONE(Average)
XTAPE_MERGE_AT_LEAST_ONE(Maximum)
XTAPE_MERGE_AT_LEAST_ONE(Minimum)
#undef XTAPE_MERGE_AT_LEAST_ONE

template <class T>
void Subtract<T>::check_count(std::size_t n) const
{
    if (n != 2)
        throw ValueError("A `Subtract` layer should be called on exactly 2 inputs. Received: " + std::to_string(n) +
                         " inputs");
}

template <class T>
Tensor<T> Add<T>::merge(const std::vector<Tensor<T>>& xs) const
{
    Tensor<T> y = xs[0];
    for (std::size_t i = 1; i < xs.size(); ++i)
        y = add(y, xs[i]);
    return y;
}

template <class T>
Tensor<T> Subtract<T>::merge(const std::vector<Tensor<T>>& xs) const
{
    return sub(xs[0], xs[1]);
}

template <class T>
Tensor<T> Multiply<T>::merge(const std::vector<Tensor<T>>& xs) const
{
    Tensor<T> y = xs[0];
    for (std::size_t i = 1; i < xs.size(); ++i)
        y = mul(y, xs[i]);
    return y;
}

template <class T>
Tensor<T> Multiply<T>::merge_masked(const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& masks) const
{
    bool all_masked = true;
    for (const auto& m : masks)
        all_masked = all_masked && m.defined();
    Tensor<T> y, out_mask;
    for (std::size_t i = 0; i < xs.size(); ++i) {
        Tensor<T> x = xs[i];
        if (masks[i].defined()) {
            x = where_mask(masks[i], x, Tensor<T>::scalar(T(1))); // Note [Masked merges]
            if (all_masked)
                out_mask = out_mask.defined() ? mask_or(out_mask, masks[i]) : masks[i];
        }
        y = y.defined() ? mul(y, x) : x;
    }
    return all_masked ? mul(out_mask, y) : y;
}

template <class T>
Tensor<T> Average<T>::merge(const std::vector<Tensor<T>>& xs) const
{
    Tensor<T> y = xs[0];
    for (std::size_t i = 1; i < xs.size(); ++i)
        y = add(y, xs[i]);
    return mul_scalar(y, T(1) / static_cast<T>(xs.size()));
}

template <class T>
Tensor<T> Maximum<T>::merge(const std::vector<Tensor<T>>& xs) const
{
    Tensor<T> y = xs[0];
    for (std::size_t i = 1; i < xs.size(); ++i)
        y = maximum(y, xs[i]);
    return y;
}

template <class T>
Tensor<T> Maximum<T>::merge_masked(const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& masks) const
{
    return this->merge_extremum_masked(xs, masks, &maximum<T>);
}

template <class T>
Tensor<T> Minimum<T>::merge_masked(const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& masks) const
{
    return this->merge_extremum_masked(xs, masks, &minimum<T>);
}

template <class T>
Tensor<T> Minimum<T>::merge(const std::vector<Tensor<T>>& xs) const
{
    Tensor<T> y = xs[0];
    for (std::size_t i = 1; i < xs.size(); ++i)
        y = minimum(y, xs[i]);
    return y;
}

// ---- Concatenate ----------------------------------------------------------------------------------------

template <class T>
Concatenate<T>::Concatenate(int axis, const std::string& name, bool trainable)
    : Layer<T>("Concatenate", name, trainable)
    , m_axis(axis)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
}

template <class T>
std::shared_ptr<Concatenate<T>> Concatenate<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json axis = config_first(config, { "axis" });
    return std::make_shared<Concatenate<T>>(axis.is_null() ? -1 : config_integer_value<int>(axis, "axis"), a.name,
                                            a.trainable);
}

template <class T>
json Concatenate<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["axis"] = m_axis;
    return c;
}

namespace {
/// Keras's Concatenate.build check: equal ranks, equal dimensions (None matches) except on axis.
void check_concat(const std::vector<dims_t>& shapes, int axis)
{
    if (shapes.empty())
        throw ValueError("A `Concatenate` layer should be called on a list of at least 1 input. Received: "
                         "input_shape=[]");
    const std::string err = "A `Concatenate` layer requires inputs with matching shapes except for the "
                            "concatenation axis. Received: input_shape=" +
                            shapes_str(shapes);
    const std::size_t rank = shapes[0].size();
    const long ax = axis < 0 ? axis + static_cast<long>(rank) : axis;
    if (rank == 0 || ax < 0 || ax >= static_cast<long>(rank))
        throw ValueError("Concatenate: axis " + std::to_string(axis) + " is out of range for inputs of shapes " +
                         shapes_str(shapes));
    for (const auto& s : shapes) {
        if (s.size() != rank)
            throw ValueError(err);
        for (std::size_t k = 1; k < rank; ++k)
            if (static_cast<long>(k) != ax && s[k] >= 0 && shapes[0][k] >= 0 && s[k] != shapes[0][k])
                throw ValueError(err);
    }
}
} // namespace

template <class T>
void Concatenate<T>::build_list(const std::vector<dims_t>& input_shapes)
{
    check_concat(input_shapes, m_axis);
}

template <class T>
void Concatenate<T>::check_input_list(const std::vector<shape_t>& shapes) const
{
    check_concat(dims_list(shapes), m_axis);
}

template <class T>
std::vector<dims_t> Concatenate<T>::compute_output_shape_list(const std::vector<dims_t>& input_shapes) const
{
    check_concat(input_shapes, m_axis);
    dims_t out = input_shapes[0];
    const std::size_t ax = static_cast<std::size_t>(m_axis < 0 ? m_axis + static_cast<long>(out.size()) : m_axis);
    for (std::size_t i = 1; i < input_shapes.size(); ++i) {
        if (out[ax] < 0 || input_shapes[i][ax] < 0) {
            out[ax] = none_dim;
            break;
        }
        out[ax] += input_shapes[i][ax];
    }
    return { out };
}

template <class T>
std::vector<Tensor<T>> Concatenate<T>::call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>&,
                                                 const CallArgs&)
{
    return { concatenate(inputs, m_axis) };
}

template <class T>
std::vector<Tensor<T>> Concatenate<T>::compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                                         const std::vector<Tensor<T>>& masks) const
{
    bool any = false;
    for (const auto& m : masks)
        any = any || m.defined();
    if (!any)
        return { Tensor<T>() };
    NoGradGuard no_grad;
    std::vector<Tensor<T>> full;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const Tensor<T> ones = Tensor<T>::full(inputs[i].shape(), T(1));
        const Tensor<T>& m = masks[i];
        if (!m.defined())
            full.push_back(ones);
        else if (m.dim() < inputs[i].dim())
            full.push_back(mul(expand_dims(m, -1), ones));
        else
            full.push_back(m);
    }
    return { max(concatenate(full, m_axis), axes_t{ -1 }) };
}

// ---- Dot ------------------------------------------------------------------------------------------------

template <class T>
Dot<T>::Dot(int axes, bool normalize, const std::string& name, bool trainable)
    : Dot(std::vector<int>{ axes }, normalize, name, trainable)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
}

template <class T>
Dot<T>::Dot(std::vector<int> axes, bool normalize, const std::string& name, bool trainable)
    : Layer<T>("Dot", name, trainable)
    , m_axes(std::move(axes))
    , m_normalize(normalize)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (m_axes.size() != 1 && m_axes.size() != 2)
        throw ValueError("Invalid format for argument `axes`: it should contain two elements. Received: axes of "
                         "length " + std::to_string(m_axes.size()));
}

template <class T>
std::shared_ptr<Dot<T>> Dot<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    const json axes = config.value("axes", json());
    const bool normalize = config_bool(config, "normalize", false);
    if (axes.is_number_integer())
        return std::make_shared<Dot<T>>(axes.get<int>(), normalize, a.name, a.trainable);
    if (axes.is_array() && axes.size() == 2 && axes[0].is_number_integer() && axes[1].is_number_integer())
        return std::make_shared<Dot<T>>(std::vector<int>{ axes[0].get<int>(), axes[1].get<int>() }, normalize,
                                        a.name, a.trainable);
    throw ValueError("Invalid type for argument `axes`: it should be a list or an int. Received: axes=" + axes.dump());
}

template <class T>
json Dot<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["axes"] = m_axes.size() == 1 ? json(m_axes[0]) : json(m_axes);
    c["normalize"] = m_normalize;
    return c;
}

template <class T>
std::pair<std::size_t, std::size_t> Dot<T>::resolved_axes(std::size_t r1, std::size_t r2) const
{
    auto fix = [](int a, std::size_t r) { return static_cast<long>(a < 0 ? a + static_cast<long>(r) : a); };
    const long a1 = fix(m_axes[0], r1), a2 = fix(m_axes.size() == 2 ? m_axes[1] : m_axes[0], r2);
    if (a1 <= 0 || a2 <= 0 || a1 >= static_cast<long>(r1) || a2 >= static_cast<long>(r2))
        throw ValueError("layer \"" + this->name() + "\": Dot axes resolve to (" + std::to_string(a1) + ", " +
                         std::to_string(a2) + ") for inputs of ranks " + std::to_string(r1) + " and " +
                         std::to_string(r2) + "; the batch axis cannot be a dot axis");
    return { static_cast<std::size_t>(a1), static_cast<std::size_t>(a2) };
}

namespace {
template <class T>
void check_dot(const Dot<T>& layer, const std::vector<dims_t>& shapes,
               const std::function<std::pair<std::size_t, std::size_t>(std::size_t, std::size_t)>& axes)
{
    if (shapes.size() != 2)
        throw ValueError("A `Dot` layer should be called on a list of 2 inputs. Received: input_shape=" +
                         shapes_str(shapes));
    for (const auto& s : shapes) {
        if (s.size() < 2)
            throw ValueError("Cannot do batch_dot on inputs with rank < 2. Received inputs with shapes " +
                             dims_str(shapes[0]) + " and " + dims_str(shapes[1]) + ".");
    }
    const auto [a1, a2] = axes(shapes[0].size(), shapes[1].size());
    const long d1 = shapes[0][a1], d2 = shapes[1][a2];
    if (d1 >= 0 && d2 >= 0 && d1 != d2)
        throw ValueError("Incompatible input shapes: axis values " + std::to_string(d1) + " (at axis " +
                         std::to_string(a1) + ") != " + std::to_string(d2) + " (at axis " + std::to_string(a2) +
                         "). Full input shapes: " + dims_str(shapes[0]) + ", " + dims_str(shapes[1]));
}
} // namespace

template <class T>
void Dot<T>::build_list(const std::vector<dims_t>& input_shapes)
{
    check_dot<T>(*this, input_shapes, [this](std::size_t a, std::size_t b) { return resolved_axes(a, b); });
}

template <class T>
void Dot<T>::check_input_list(const std::vector<shape_t>& shapes) const
{
    check_dot<T>(*this, dims_list(shapes), [this](std::size_t a, std::size_t b) { return resolved_axes(a, b); });
}

template <class T>
std::vector<dims_t> Dot<T>::compute_output_shape_list(const std::vector<dims_t>& s) const
{
    check_dot<T>(*this, s, [this](std::size_t a, std::size_t b) { return resolved_axes(a, b); });
    const auto [a1, a2] = resolved_axes(s[0].size(), s[1].size());
    dims_t out;
    for (std::size_t k = 0; k < s[0].size(); ++k)
        if (k != a1)
            out.push_back(s[0][k]);
    for (std::size_t k = 1; k < s[1].size(); ++k)
        if (k != a2)
            out.push_back(s[1][k]);
    if (out.size() == 1)
        out.push_back(1);
    return { out };
}

template <class T>
std::vector<Tensor<T>> Dot<T>::call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>&,
                                         const CallArgs&)
{
    Tensor<T> x1 = inputs[0], x2 = inputs[1];
    const std::size_t r1 = x1.dim(), r2 = x2.dim();
    const auto [a1, a2] = resolved_axes(r1, r2);
    if (m_normalize) {
        // Keras 3's ops.normalize: x / max(||x||, epsilon) along the axis.
        auto l2n = [](const Tensor<T>& x, int axis) {
            const Tensor<T> norm = sqrt(sum(square(x), axes_t{ axis }, true));
            return div(x, maximum(norm, Tensor<T>::scalar(static_cast<T>(1e-7))));
        };
        x1 = l2n(x1, static_cast<int>(a1));
        x2 = l2n(x2, static_cast<int>(a2));
    }
    // Keras's batch_dot for any ranks: x1 with its dot axis moved last as (B, M, K), x2 with its
    // dot axis moved first after the batch as (B, K, N), one batched product, then the remaining
    // axes of x1 followed by those of x2 (a single (B,) result becomes (B, 1), as in Keras).
    const shape_t s1 = x1.shape(), s2 = x2.shape();
    std::vector<std::size_t> p1{ 0 }, p2{ 0, a2 };
    std::vector<long> out{ static_cast<long>(s1[0]) };
    long m = 1, n = 1;
    for (std::size_t k = 1; k < r1; ++k)
        if (k != a1) {
            p1.push_back(k);
            out.push_back(static_cast<long>(s1[k]));
            m *= static_cast<long>(s1[k]);
        }
    p1.push_back(a1);
    for (std::size_t k = 1; k < r2; ++k)
        if (k != a2) {
            p2.push_back(k);
            out.push_back(static_cast<long>(s2[k]));
            n *= static_cast<long>(s2[k]);
        }
    const long b = static_cast<long>(s1[0]), kd = static_cast<long>(s1[a1]);
    const Tensor<T> left = reshape(transpose(x1, p1), { b, m, kd });
    const Tensor<T> right = reshape(transpose(x2, p2), { b, kd, n });
    if (out.size() == 1)
        out.push_back(1);
    const Tensor<T> y = reshape(matmul(left, right), out);
    return { y };
}

template <class T>
std::vector<Tensor<T>> Dot<T>::compute_mask_list(const std::vector<Tensor<T>>&, const std::vector<Tensor<T>>&) const
{
    return { Tensor<T>() };
}

// ---- registration -----------------------------------------------------------------------------------------

template <class T>
void register_merging_layers()
{
    register_layer<T>("Add", [](const json& c) { return Add<T>::from_config(c); });
    register_layer<T>("Subtract", [](const json& c) { return Subtract<T>::from_config(c); });
    register_layer<T>("Multiply", [](const json& c) { return Multiply<T>::from_config(c); });
    register_layer<T>("Average", [](const json& c) { return Average<T>::from_config(c); });
    register_layer<T>("Maximum", [](const json& c) { return Maximum<T>::from_config(c); });
    register_layer<T>("Minimum", [](const json& c) { return Minimum<T>::from_config(c); });
    register_layer<T>("Concatenate", [](const json& c) { return Concatenate<T>::from_config(c); });
    register_layer<T>("Dot", [](const json& c) { return Dot<T>::from_config(c); });
}

#define XTAPE_INSTANTIATE(T)                                                                                   \
    template class Merge<T>;                                                                                   \
    template class Add<T>;                                                                                     \
    template class Subtract<T>;                                                                                \
    template class Multiply<T>;                                                                                \
    template class Average<T>;                                                                                 \
    template class Maximum<T>;                                                                                 \
    template class Minimum<T>;                                                                                 \
    template class Concatenate<T>;                                                                             \
    template class Dot<T>;                                                                                     \
    template void register_merging_layers<T>();
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
