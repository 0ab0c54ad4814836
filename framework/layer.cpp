#include "framework/layer.hpp"

#include "framework/limits.hpp"

#include "framework/graph/node.hpp"
#include "framework/ops.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

namespace xtape {

std::string dims_str(const dims_t& d)
{
    std::string s = "(";
    for (std::size_t i = 0; i < d.size(); ++i) {
        if (i)
            s += ", ";
        s += d[i] < 0 ? "None" : std::to_string(d[i]);
    }
    if (d.size() == 1)
        s += ",";
    return s + ")";
}

dims_t dims_of(const shape_t& s) { return dims_t(s.begin(), s.end()); }

namespace {
std::mutex g_names_mutex;
std::map<std::string, int>& name_counters()
{
    static std::map<std::string, int> counters;
    return counters;
}
} // namespace

std::string unique_layer_name(const std::string& base)
{
    std::lock_guard<std::mutex> lock(g_names_mutex);
    int& n = name_counters()[base];
    const std::string name = n == 0 ? base : base + "_" + std::to_string(n);
    ++n;
    return name;
}

void reset_layer_names()
{
    std::lock_guard<std::mutex> lock(g_names_mutex);
    name_counters().clear();
}

std::string to_snake_case(const std::string& s)
{
    // Keras: insert "_" before an upper-case letter that follows a lower-case letter or digit,
    // or that starts a new word after an acronym ("ReLU" -> "re_lu", "Conv2D" -> "conv2d").
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (std::isupper(static_cast<unsigned char>(c)) && i > 0) {
            const char p = s[i - 1];
            const bool after_lower = std::islower(static_cast<unsigned char>(p));
            const bool acronym_end = std::isupper(static_cast<unsigned char>(p)) && i + 1 < s.size() &&
                                     std::islower(static_cast<unsigned char>(s[i + 1]));
            if (after_lower || acronym_end)
                out += '_';
        }
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

template <class T>
Layer<T>::Layer(std::string class_name, std::string name, bool trainable)
    : m_class_name(std::move(class_name))
    , m_name(name.empty() ? unique_layer_name(to_snake_case(m_class_name)) : std::move(name))
    , m_trainable(trainable)
{
}

template <class T>
void Layer<T>::build_once_list(const std::vector<dims_t>& input_shapes)
{
    if (m_built)
        return;
    build_list(input_shapes);
    m_build_shapes = input_shapes;
    m_built = true;
}

template <class T>
const dims_t& Layer<T>::build_input_shape() const
{
    static const dims_t none;
    return m_build_shapes.empty() ? none : m_build_shapes[0];
}

template <class T>
void Layer<T>::require_one_input(std::size_t n) const
{
    if (n != 1)
        throw ValueError("Layer \"" + m_name + "\" expects 1 input(s), but it received " + std::to_string(n) +
                         " input tensors.");
}

template <class T>
void Layer<T>::build_list(const std::vector<dims_t>& input_shapes)
{
    require_one_input(input_shapes.size());
    build(input_shapes[0]);
}

template <class T>
Tensor<T> Layer<T>::call(const Tensor<T>&, bool, const Tensor<T>&)
{
    throw NotImplementedError("layer \"" + m_name + "\" (" + m_class_name +
                              ") implements neither call(x, training, mask) nor call_list(inputs, masks, args)");
}

template <class T>
std::vector<Tensor<T>> Layer<T>::call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                           const CallArgs& args)
{
    require_one_input(inputs.size());
    return { call(inputs[0], args.training.value_or(false), masks.empty() ? Tensor<T>() : masks[0]) };
}

template <class T>
void Layer<T>::check_input_list(const std::vector<shape_t>& shapes) const
{
    require_one_input(shapes.size());
    check_input(shapes[0]);
}

template <class T>
std::vector<dims_t> Layer<T>::compute_output_shape_list(const std::vector<dims_t>& input_shapes) const
{
    require_one_input(input_shapes.size());
    return { compute_output_shape(input_shapes[0]) };
}

template <class T>
std::vector<Tensor<T>> Layer<T>::compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                                   const std::vector<Tensor<T>>& masks) const
{
    require_one_input(inputs.size());
    return { compute_mask(inputs[0], masks.empty() ? Tensor<T>() : masks[0]) };
}

// Note [Masks across layers]
// Keras 3's Layer.__call__ gives a layer the mask of its first input when its call takes one,
// and afterwards sets compute_mask's result on the outputs only if the layer supports masking;
// otherwise "this layer does not support masking and will therefore destroy the mask
// information" (a warning there; here the mask simply stops). The layers that support masking
// say so in their constructors, as Keras's do (Dense, activations, Dropout, the normalizations,
// Embedding, Masking, merges, GlobalAveragePooling1D, TimeDistributed, models); Flatten, Reshape,
// convolutions, pooling and the reshaping layers do not. Sequential and the functional graph
// both move masks with output_masks(), so the rule lives here once.
template <class T>
std::vector<Tensor<T>> Layer<T>::output_masks(const std::vector<Tensor<T>>& inputs,
                                              const std::vector<Tensor<T>>& masks) const
{
    if (!supports_masking())
        return {};
    return compute_mask_list(inputs, masks);
}

// Note [Symbolic masks]
// A symbolic tensor carries the mask Keras would attach to it (_keras_mask), so that the
// layer-node API (output_mask, get_input_mask_at, ...) answers without data. Rather than a second,
// shape-only version of every compute_mask, the layer's own compute_mask_list runs on
// placeholders - zeros of the input shapes and all-true masks of the input masks' shapes, None
// taken as 1 - as Keras 3 runs compute_output_spec on symbolic values. The mask's shape is read
// from the result; where it lines up with the output shape, the output's dimension is taken, so
// the batch axis and unknown lengths stay None. Placeholders have batch 1: a few values per call.
template <class T>
std::vector<std::optional<dims_t>> Layer<T>::compute_mask_shapes(const std::vector<dims_t>& input_shapes,
                                                                 const std::vector<std::optional<dims_t>>& input_masks,
                                                                 const std::vector<dims_t>& output_shapes) const
{
    std::vector<std::optional<dims_t>> out(output_shapes.size());
    if (!supports_masking())
        return out;
    auto concrete = [](const dims_t& d) {
        shape_t s;
        for (long v : d)
            s.push_back(v < 0 ? 1 : static_cast<std::size_t>(v));
        return s;
    };
    std::vector<Tensor<T>> xs, ms;
    bool any_mask = false;
    for (std::size_t i = 0; i < input_shapes.size(); ++i) {
        xs.push_back(Tensor<T>::zeros(concrete(input_shapes[i])));
        const bool has = i < input_masks.size() && input_masks[i].has_value();
        any_mask = any_mask || has;
        ms.push_back(has ? Tensor<T>::full(concrete(*input_masks[i]), T(1)) : Tensor<T>());
    }
    const std::vector<Tensor<T>> got = compute_mask_list(xs, any_mask ? ms : std::vector<Tensor<T>>());
    for (std::size_t k = 0; k < got.size() && k < out.size(); ++k) {
        if (!got[k].defined())
            continue;
        const shape_t ps = got[k].shape();
        const dims_t& os = output_shapes[k];
        const shape_t po = concrete(os);
        dims_t m;
        for (std::size_t a = 0; a < ps.size(); ++a) {
            if (a < os.size() && po[a] == ps[a])
                m.push_back(os[a]);
            else
                m.push_back(a == 0 ? none_dim : static_cast<long>(ps[a]));
        }
        out[k] = std::move(m);
    }
    return out;
}

template <class T>
void Layer<T>::check_input(const shape_t& x) const
{
    const dims_t& b = build_input_shape();
    bool ok = b.size() == x.size();
    for (std::size_t i = 1; ok && i < b.size(); ++i)
        ok = b[i] < 0 || static_cast<std::size_t>(b[i]) == x[i];
    if (!ok)
        throw ShapeError("Input 0 of layer \"" + m_name + "\" is incompatible with the layer: expected shape=" +
                         dims_str(b) + ", found shape=" + shape_str(x));
}

// Note [Losses added during a call]
// Keras 3 (Layer._get_call_context) clears losses when a call enters a new call context, i.e. at
// the outermost layer call only, and then clears the entry layer's losses and, recursively, its
// sublayers'. Inner calls clear nothing, so a layer used twice in one forward pass reports both
// calls' losses, and a loss added outside any call survives until such an outermost call. The
// depth of nested layer calls is per thread: layers are called from the thread that runs the
// model (OpenMP workers only run kernels).
namespace {
thread_local int t_call_depth = 0;
thread_local bool t_discard_losses = false;
struct CallDepth {
    CallDepth() { ++t_call_depth; }
    ~CallDepth() { --t_call_depth; }
    CallDepth(const CallDepth&) = delete;
    CallDepth& operator=(const CallDepth&) = delete;
};
} // namespace

LossesDiscarded::LossesDiscarded()
    : m_previous(t_discard_losses)
{
    t_discard_losses = true;
}

LossesDiscarded::~LossesDiscarded() { t_discard_losses = m_previous; }

bool LossesDiscarded::active() { return t_discard_losses; }

// Note [One tensor or a list]
// Keras layers take a structure of tensors; xtape's general form is a flat list, one entry per
// input, and every call - real, symbolic, from a graph - goes through call_tensors or
// call_symbolic, which reach the layer's list methods. The single-tensor methods are what the
// list methods' defaults call, so a single-input layer is written as before and a merge
// overrides the list forms. A Tensor is a shared handle: passing lists copies no values.

template <class T>
std::vector<Tensor<T>> Layer<T>::call_tensors(const std::vector<Tensor<T>>& inputs,
                                              const std::vector<Tensor<T>>& masks, const CallArgs& args)
{
    if (inputs.empty())
        throw ValueError("layer \"" + m_name + "\": called on an empty list of tensors");
    for (const auto& x : inputs)
        if (!x.defined())
            throw ValueError("layer \"" + m_name + "\": called on an empty tensor");
    if (!masks.empty() && masks.size() != inputs.size())
        throw ValueError("layer \"" + m_name + "\": got " + std::to_string(masks.size()) + " masks for " +
                         std::to_string(inputs.size()) + " inputs");
    if (!m_built) {
        std::vector<dims_t> shapes;
        for (const auto& x : inputs) {
            dims_t d = dims_of(x.shape());
            if (!d.empty())
                d[0] = none_dim;
            shapes.push_back(std::move(d));
        }
        build_once_list(shapes);
    }
    std::vector<shape_t> shapes;
    shapes.reserve(inputs.size());
    for (const auto& x : inputs)
        shapes.push_back(x.shape());
    check_input_list(shapes);
    if (t_call_depth == 0 && !t_discard_losses)
        clear_losses();
    CallDepth depth;
    std::vector<Tensor<T>> ys = call_list(inputs, masks, args);
    if (m_activity_regularizer) {
        // Keras divides the activity penalty by the batch size.
        const Tensor<T>& x = inputs[0];
        const T batch = x.dim() ? static_cast<T>(x.shape()[0]) : T(1);
        for (const auto& y : ys)
            add_loss(mul_scalar((*m_activity_regularizer)(y), T(1) / batch));
    }
    return ys;
}

template <class T>
Tensor<T> Layer<T>::operator()(const Tensor<T>& x, bool training, const Tensor<T>& mask)
{
    std::vector<Tensor<T>> masks;
    if (mask.defined())
        masks.push_back(mask);
    std::vector<Tensor<T>> ys = call_tensors({ x }, masks, CallArgs{ training });
    if (ys.size() != 1)
        throw ValueError("layer \"" + m_name + "\" returned " + std::to_string(ys.size()) +
                         " outputs; call it with a list of tensors to get them all");
    return ys[0];
}

template <class T>
std::vector<Tensor<T>> Layer<T>::operator()(const std::vector<Tensor<T>>& xs, bool training,
                                            const std::vector<Tensor<T>>& masks)
{
    return call_tensors(xs, masks, CallArgs{ training });
}

template <class T>
std::vector<KerasTensor<T>> Layer<T>::call_symbolic(const std::vector<KerasTensor<T>>& inputs, const CallArgs& args)
{
    std::shared_ptr<Layer<T>> self = this->weak_from_this().lock();
    if (!self)
        throw ValueError("layer \"" + m_name +
                         "\": a layer called on symbolic tensors must be owned by a std::shared_ptr "
                         "(std::make_shared), so that the graph can keep it alive");
    if (inputs.empty())
        throw ValueError("layer \"" + m_name + "\": called on an empty list of tensors");
    std::vector<dims_t> shapes;
    for (const auto& x : inputs) {
        if (!x.defined())
            throw ValueError("layer \"" + m_name + "\": called on an undefined symbolic tensor");
        shapes.push_back(x.shape());
    }
    if (!m_built)
        build_once_list(shapes);
    else {
        // Check as a real call would, with the unknown dimensions taken from the built shapes.
        std::vector<shape_t> concrete;
        for (std::size_t i = 0; i < shapes.size(); ++i) {
            const dims_t* b = i < m_build_shapes.size() ? &m_build_shapes[i] : nullptr;
            shape_t s;
            for (std::size_t k = 0; k < shapes[i].size(); ++k) {
                long d = shapes[i][k];
                if (d < 0)
                    d = (b && b->size() == shapes[i].size() && (*b)[k] > 0) ? (*b)[k] : 1;
                s.push_back(static_cast<std::size_t>(d));
            }
            concrete.push_back(std::move(s));
        }
        check_input_list(concrete);
    }
    auto node = std::make_shared<Node<T>>();
    node->layer = this;
    node->index = m_inbound_nodes.size();
    node->inputs = inputs;
    node->args = args;
    node->output_shapes = compute_output_shape_list(shapes);
    std::vector<std::optional<dims_t>> in_masks;
    for (const auto& x : inputs)
        in_masks.push_back(x.keras_mask());
    node->output_masks = compute_mask_shapes(shapes, in_masks, node->output_shapes);
    node->output_masks.resize(node->output_shapes.size());
    for (const auto& x : inputs) {
        auto& out = x.layer()->m_outbound_nodes;
        // Forget consumers that no longer exist, so a long-lived layer's list stays short.
        out.erase(std::remove_if(out.begin(), out.end(), [](const auto& w) { return w.expired(); }), out.end());
        out.push_back(node);
    }
    m_inbound_nodes.push_back(node);
    std::vector<KerasTensor<T>> ys;
    for (std::size_t i = 0; i < node->output_shapes.size(); ++i)
        ys.emplace_back(self, node->index, i, node->output_shapes[i]);
    return ys;
}

template <class T>
KerasTensor<T> Layer<T>::operator()(const KerasTensor<T>& x, std::optional<bool> training)
{
    std::vector<KerasTensor<T>> ys = call_symbolic({ x }, CallArgs{ training });
    if (ys.size() != 1)
        throw ValueError("layer \"" + m_name + "\" returns " + std::to_string(ys.size()) +
                         " outputs; call it with a list of tensors to get them all");
    return ys[0];
}

template <class T>
KerasTensors<T> Layer<T>::operator()(const std::vector<KerasTensor<T>>& xs, std::optional<bool> training)
{
    return call_symbolic(xs, CallArgs{ training });
}

template <class T>
void Layer<T>::add_input_node(const dims_t& shape)
{
    auto node = std::make_shared<Node<T>>();
    node->layer = this;
    node->index = m_inbound_nodes.size();
    node->output_shapes = { shape };
    node->output_masks = { std::nullopt };
    m_inbound_nodes.push_back(node);
}

template <class T>
std::vector<std::shared_ptr<Node<T>>> Layer<T>::outbound_nodes() const
{
    std::vector<std::shared_ptr<Node<T>>> out;
    for (const auto& w : m_outbound_nodes)
        if (auto n = w.lock())
            out.push_back(n);
    return out;
}

namespace {
template <class T>
const Node<T>& node_at(const Layer<T>& l, std::size_t i, const char* what)
{
    if (l.inbound_nodes().empty())
        throw AttributeError("The layer " + l.name() + " has never been called and thus has no defined " + what + ".");
    if (i >= l.inbound_nodes().size())
        throw ValueError(std::string("Asked to get ") + what + " at node " + std::to_string(i) +
                         ", but the operation has only " + std::to_string(l.inbound_nodes().size()) +
                         " inbound nodes.");
    return *l.inbound_nodes()[i];
}

template <class T>
std::size_t only_node(const Layer<T>& l, const char* what, const char* getter)
{
    if (l.inbound_nodes().size() > 1)
        throw AttributeError("Layer " + l.name() + " has multiple inbound nodes, hence the notion of \"layer " + what +
                             "\" is ill-defined. Use `" + getter + "(node_index)` instead.");
    node_at(l, 0, what);
    return 0;
}

template <class T, class V>
const typename V::value_type& single(const Layer<T>& l, const V& v, std::size_t node, const char* what,
                                     const char* plural_getter)
{
    if (v.size() != 1)
        throw ValueError("layer \"" + l.name() + "\": node " + std::to_string(node) + " has " +
                         std::to_string(v.size()) + " " + what + "s; use " + plural_getter);
    return v[0];
}
} // namespace

template <class T>
std::vector<KerasTensor<T>> Layer<T>::get_inputs_at(std::size_t i) const
{
    return node_at(*this, i, "input").inputs;
}

template <class T>
std::vector<KerasTensor<T>> Layer<T>::get_outputs_at(std::size_t i) const
{
    const Node<T>& n = node_at(*this, i, "output");
    auto self = std::const_pointer_cast<Layer<T>>(this->shared_from_this());
    std::vector<KerasTensor<T>> out;
    for (std::size_t k = 0; k < n.output_shapes.size(); ++k)
        out.emplace_back(self, i, k, n.output_shapes[k]);
    return out;
}

template <class T>
KerasTensor<T> Layer<T>::get_input_at(std::size_t i) const
{
    return single(*this, get_inputs_at(i), i, "input", "get_inputs_at");
}

template <class T>
KerasTensor<T> Layer<T>::get_output_at(std::size_t i) const
{
    return single(*this, get_outputs_at(i), i, "output", "get_outputs_at");
}

template <class T>
dims_t Layer<T>::get_input_shape_at(std::size_t i) const
{
    return get_input_at(i).shape();
}

template <class T>
dims_t Layer<T>::get_output_shape_at(std::size_t i) const
{
    return single(*this, node_at(*this, i, "output shape").output_shapes, i, "output shape", "get_outputs_at");
}

template <class T>
KerasTensor<T> Layer<T>::input() const
{
    return get_input_at(only_node(*this, "input", "get_input_at"));
}

template <class T>
KerasTensor<T> Layer<T>::output() const
{
    return get_output_at(only_node(*this, "output", "get_output_at"));
}

template <class T>
dims_t Layer<T>::input_shape() const
{
    return get_input_shape_at(only_node(*this, "input_shape", "get_input_shape_at"));
}

template <class T>
dims_t Layer<T>::output_shape() const
{
    return get_output_shape_at(only_node(*this, "output_shape", "get_output_shape_at"));
}

template <class T>
std::vector<std::optional<dims_t>> Layer<T>::get_input_masks_at(std::size_t i) const
{
    std::vector<std::optional<dims_t>> out;
    for (const auto& x : node_at(*this, i, "input mask").inputs)
        out.push_back(x.keras_mask());
    return out;
}

template <class T>
std::vector<std::optional<dims_t>> Layer<T>::get_output_masks_at(std::size_t i) const
{
    const Node<T>& n = node_at(*this, i, "output mask");
    std::vector<std::optional<dims_t>> out = n.output_masks;
    out.resize(n.output_shapes.size());
    return out;
}

template <class T>
std::optional<dims_t> Layer<T>::get_input_mask_at(std::size_t i) const
{
    return single(*this, get_input_masks_at(i), i, "input mask", "get_input_masks_at");
}

template <class T>
std::optional<dims_t> Layer<T>::get_output_mask_at(std::size_t i) const
{
    return single(*this, get_output_masks_at(i), i, "output mask", "get_output_masks_at");
}

template <class T>
std::optional<dims_t> Layer<T>::input_mask() const
{
    return get_input_mask_at(only_node(*this, "input_mask", "get_input_mask_at"));
}

template <class T>
std::optional<dims_t> Layer<T>::output_mask() const
{
    return get_output_mask_at(only_node(*this, "output_mask", "get_output_mask_at"));
}

template <class T>
void Layer<T>::add_loss(const Tensor<T>& loss)
{
    if (!loss.defined())
        throw ValueError("layer \"" + m_name + "\": add_loss received an empty tensor");
    if (t_discard_losses)
        return;
    m_added_losses.push_back(loss);
}

template <class T>
void Layer<T>::collect_added_losses(std::vector<Tensor<T>>& out) const
{
    out.insert(out.end(), m_added_losses.begin(), m_added_losses.end());
}

template <class T>
Variable<T> Layer<T>::add_weight(const std::string& name, const shape_t& shape, const InitializerPtr<T>& initializer,
                                 const RegularizerPtr<T>& regularizer, const ConstraintPtr<T>& constraint,
                                 bool trainable)
{
    if (!initializer)
        throw ValueError("layer \"" + m_name + "\": add_weight('" + name + "') needs an initializer");
    // Weight shapes come from configs that may be downloaded: Note [Allocation limit].
    checked_size(shape, "layer \"" + m_name + "\": weight '" + name + "'");
    array_t<T> value = (*initializer)(shape);
    if (shape_of(value) != shape)
        throw ShapeError("layer \"" + m_name + "\": initializer " + initializer->class_name() + " returned shape " +
                         shape_str(shape_of(value)) + " for weight '" + name + "' of shape " + shape_str(shape));
    Variable<T> v(name, std::move(value), trainable);
    v.set_regularizer(regularizer);
    v.set_constraint(constraint);
    m_variables.push_back(v);
    return v;
}

template <class T>
std::vector<Variable<T>> Layer<T>::weights() const
{
    std::vector<Variable<T>> w;
    for (const auto& v : m_variables)
        if (v.trainable())
            w.push_back(v);
    for (const auto& v : m_variables)
        if (!v.trainable())
            w.push_back(v);
    return w;
}

template <class T>
std::vector<Variable<T>> Layer<T>::trainable_weights() const
{
    std::vector<Variable<T>> w;
    if (!m_trainable)
        return w;
    for (const auto& v : m_variables)
        if (v.trainable())
            w.push_back(v);
    return w;
}

template <class T>
std::vector<Variable<T>> Layer<T>::non_trainable_weights() const
{
    std::vector<Variable<T>> w;
    for (const auto& v : m_variables)
        if (!v.trainable() || !m_trainable)
            w.push_back(v);
    // A frozen layer lists every weight here, trainable ones first (Keras's order).
    if (!m_trainable) {
        std::vector<Variable<T>> ordered;
        for (const auto& v : w)
            if (v.trainable())
                ordered.push_back(v);
        for (const auto& v : w)
            if (!v.trainable())
                ordered.push_back(v);
        return ordered;
    }
    return w;
}

template <class T>
std::vector<array_t<T>> Layer<T>::get_weights() const
{
    std::vector<array_t<T>> out;
    for (const auto& v : weights())
        out.push_back(v.value());
    return out;
}

template <class T>
void Layer<T>::set_weights(const std::vector<array_t<T>>& values)
{
    auto w = weights();
    if (values.size() != w.size())
        throw ValueError("Layer " + m_name + " weight shape mismatch: you called `set_weights(weights)` on layer \"" +
                         m_name + "\" with a weight list of length " + std::to_string(values.size()) +
                         ", but the layer was expecting " + std::to_string(w.size()) + " weights.");
    for (std::size_t i = 0; i < w.size(); ++i)
        if (shape_of(values[i]) != w[i].shape())
            throw ShapeError("Layer " + m_name + " weight shape mismatch: weight '" + w[i].name() + "' has shape " +
                             shape_str(w[i].shape()) + ", received shape " + shape_str(shape_of(values[i])));
    for (std::size_t i = 0; i < w.size(); ++i)
        w[i].assign(values[i]);
}

template <class T>
std::size_t Layer<T>::count_params() const
{
    std::size_t n = 0;
    for (const auto& v : m_variables)
        n += v.size();
    return n;
}

template <class T>
std::vector<Tensor<T>> Layer<T>::losses() const
{
    std::vector<Tensor<T>> out;
    collect_added_losses(out);
    for (const auto& v : trainable_weights())
        if (v.regularizer())
            out.push_back((*v.regularizer())(v.tensor()));
    return out;
}

template <class T>
json Layer<T>::get_config() const
{
    return json{ { "name", m_name }, { "trainable", m_trainable }, { "dtype", dtype_name<T>() } };
}

template <class T>
std::string KerasTensor<T>::name() const
{
    if (!m_layer)
        return "<undefined>";
    return m_layer->name() + ":" + std::to_string(m_node_index) + ":" + std::to_string(m_tensor_index);
}

template <class T>
std::optional<dims_t> KerasTensor<T>::keras_mask() const
{
    if (!m_layer || m_node_index >= m_layer->inbound_nodes().size())
        return std::nullopt;
    const auto& masks = m_layer->inbound_nodes()[m_node_index]->output_masks;
    return m_tensor_index < masks.size() ? masks[m_tensor_index] : std::nullopt;
}

template <class T>
KerasTensor<T>::operator std::shared_ptr<Layer<T>>() const
{
    if (!m_layer || m_layer->class_name() != "InputLayer")
        throw ValueError("Only the output of keras.Input (an InputLayer) stands for a layer in a layer list; got "
                         "tensor " + name() + (m_layer ? " of a " + m_layer->class_name() : std::string()));
    return m_layer;
}

template class Layer<float>;
template class Layer<double>;
template class KerasTensor<float>;
template class KerasTensor<double>;

} // namespace xtape
