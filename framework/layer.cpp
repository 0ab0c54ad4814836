#include "framework/layer.hpp"

#include "framework/ops.hpp"

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
void Layer<T>::build_once(const dims_t& input_shape)
{
    if (m_built)
        return;
    build(input_shape);
    m_build_shape = input_shape;
    m_built = true;
}

template <class T>
void Layer<T>::check_input(const shape_t& x) const
{
    const dims_t& b = m_build_shape;
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
struct CallDepth {
    CallDepth() { ++t_call_depth; }
    ~CallDepth() { --t_call_depth; }
    CallDepth(const CallDepth&) = delete;
    CallDepth& operator=(const CallDepth&) = delete;
};
} // namespace

template <class T>
Tensor<T> Layer<T>::operator()(const Tensor<T>& x, bool training, const Tensor<T>& mask)
{
    if (!x.defined())
        throw ValueError("layer \"" + m_name + "\": called on an empty tensor");
    if (!m_built) {
        dims_t d = dims_of(x.shape());
        if (!d.empty())
            d[0] = none_dim;
        build_once(d);
    }
    check_input(x.shape());
    if (t_call_depth == 0)
        clear_losses();
    CallDepth depth;
    Tensor<T> y = call(x, training, mask);
    if (m_activity_regularizer) {
        // Keras divides the activity penalty by the batch size.
        const T batch = x.dim() ? static_cast<T>(x.shape()[0]) : T(1);
        add_loss(mul_scalar((*m_activity_regularizer)(y), T(1) / batch));
    }
    return y;
}

template <class T>
void Layer<T>::add_loss(const Tensor<T>& loss)
{
    if (!loss.defined())
        throw ValueError("layer \"" + m_name + "\": add_loss received an empty tensor");
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

template class Layer<float>;
template class Layer<double>;

} // namespace xtape
