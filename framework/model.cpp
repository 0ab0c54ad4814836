#include "framework/model.hpp"

#include "framework/data_parallel.hpp"
#include "framework/graph/functional.hpp"
#include "framework/ops.hpp"
#include "framework/random.hpp"
#include "framework/tape.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <sys/ioctl.h>
#include <unistd.h>

namespace xtape {
namespace {

int resolve_verbose(int v) { return v < 0 ? 1 : v; }

std::string with_commas(std::size_t n)
{
    std::string s = std::to_string(n), out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i && (s.size() - i) % 3 == 0)
            out += ',';
        out += s[i];
    }
    return out;
}

/// Keras's readable_memory_size: "1.55 MB".
std::string readable_memory(double bytes)
{
    const char* units[] = { "B", "KB", "MB", "GB", "TB", "PB" };
    for (const char* u : units) {
        if (bytes / 1024 < 1) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.2f %s", bytes, u);
            return buf;
        }
        bytes /= 1024;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f PB", bytes);
    return buf;
}

/// Python's round(): half to even.
long py_round(double v) { return static_cast<long>(std::nearbyint(v)); }

/// rich's ratio_reduce: takes `total` away from `values` in proportion to `ratios`.
std::vector<long> ratio_reduce(long total, const std::vector<long>& ratios, const std::vector<long>& maximums,
                               const std::vector<long>& values)
{
    std::vector<long> r(ratios.size());
    for (std::size_t i = 0; i < ratios.size(); ++i)
        r[i] = maximums[i] ? ratios[i] : 0;
    long total_ratio = std::accumulate(r.begin(), r.end(), 0L);
    if (!total_ratio)
        return values;
    long remaining = total;
    std::vector<long> out;
    for (std::size_t i = 0; i < r.size(); ++i) {
        if (r[i] && total_ratio > 0) {
            const long d =
                std::min(maximums[i], py_round(static_cast<double>(r[i]) * static_cast<double>(remaining) /
                                                   static_cast<double>(total_ratio)));
            out.push_back(values[i] - d);
            remaining -= d;
            total_ratio -= r[i];
        } else {
            out.push_back(values[i]);
        }
    }
    return out;
}

std::size_t utf8_len(const std::string& s)
{
    std::size_t n = 0;
    for (unsigned char c : s)
        n += (c & 0xC0) != 0x80;
    return n;
}

/// Word-wraps `text` to `width` columns as rich does for a cell; words longer than a line are
/// cut with an ellipsis.
std::vector<std::string> wrap_cell(const std::string& text, std::size_t width)
{
    std::vector<std::string> lines;
    std::istringstream words(text);
    std::string w, line;
    while (words >> w) {
        if (utf8_len(w) > width) {
            std::string cut;
            for (std::size_t i = 0, n = 0; i < w.size() && n + 1 < width; ++i) {
                cut += w[i];
                n += (static_cast<unsigned char>(w[i]) & 0xC0) != 0x80;
            }
            w = cut + "…";
        }
        if (line.empty())
            line = w;
        else if (utf8_len(line) + 1 + utf8_len(w) <= width)
            line += " " + w;
        else {
            lines.push_back(line);
            line = w;
        }
    }
    lines.push_back(line);
    return lines;
}

std::string pad_cell(const std::string& s, std::size_t width, bool right)
{
    const std::size_t n = utf8_len(s);
    const std::string pad(n < width ? width - n : 0, ' ');
    return right ? pad + s : s + pad;
}

std::string repeat_str(const std::string& s, std::size_t n)
{
    std::string out;
    for (std::size_t i = 0; i < n; ++i)
        out += s;
    return out;
}

int terminal_columns()
{
    // As Python's shutil.get_terminal_size: $COLUMNS, then the terminal, then 80.
    if (const char* c = std::getenv("COLUMNS")) {
        const int v = std::atoi(c);
        if (v > 0)
            return v;
    }
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

} // namespace

template <class T>
array_t<T> class_weight_to_sample_weights(const array_t<T>& y, const std::map<int, double>& class_weight)
{
    if (y.dimension() == 0)
        throw ValueError("class_weight: y needs a sample axis, got shape " + shape_str(shape_of(y)));
    const std::size_t n = y.shape()[0];
    const std::size_t row = n ? y.size() / n : 0;
    const bool one_hot = y.dimension() > 1 && y.shape().back() != 1;
    if (y.dimension() > 2 || (y.dimension() == 2 && !one_hot && row != 1))
        throw ValueError("class_weight: expected class indices of shape (n,) or (n, 1), or one-hot rows (n, classes); "
                         "got y of shape " +
                         shape_str(shape_of(y)));
    array_t<T> w = array_t<T>::from_shape({ n });
    for (std::size_t i = 0; i < n; ++i) {
        const T* r = y.data() + i * row;
        long cls;
        if (one_hot)
            cls = static_cast<long>(std::max_element(r, r + row) - r);
        else
            cls = py_round(static_cast<double>(r[0]));
        auto it = class_weight.find(static_cast<int>(cls));
        w(i) = static_cast<T>(it == class_weight.end() ? 1.0 : it->second);
    }
    return w;
}

template <class T>
Model<T>::Model(std::string class_name, std::string name, bool trainable)
    : Layer<T>(std::move(class_name), std::move(name), trainable)
{
    this->set_supports_masking(true); // a model's masks are its layers' (Note [Masks across layers])
}

template <class T>
Model<T>::Model(std::vector<KerasTensor<T>> inputs, std::vector<KerasTensor<T>> outputs, std::string name,
                bool trainable)
    : Layer<T>("Functional", name.empty() ? unique_layer_name("functional") : std::move(name), trainable)
    , m_graph(std::make_shared<const Graph<T>>(std::move(inputs), std::move(outputs)))
{
    this->set_supports_masking(true);
    std::vector<dims_t> shapes;
    for (const auto& x : m_graph->inputs())
        shapes.push_back(x.shape());
    this->build_once_list(shapes);
    if (!trainable)
        set_trainable(false);
}

template <class T>
Model<T>::Model(const KerasTensor<T>& input, const KerasTensor<T>& output, std::string name, bool trainable)
    : Model(std::vector<KerasTensor<T>>{ input }, std::vector<KerasTensor<T>>{ output }, std::move(name), trainable)
{
}

template <class T>
std::vector<LayerPtr<T>> Model<T>::layers() const
{
    std::vector<LayerPtr<T>> out;
    if (m_graph)
        for (const auto& l : m_graph->all_layers())
            if (!(l->inbound_nodes().size() == 1 && l->inbound_nodes()[0]->is_input()))
                out.push_back(l);
    return out;
}

template <class T>
std::vector<KerasTensor<T>> Model<T>::inputs() const
{
    return m_graph ? m_graph->inputs() : std::vector<KerasTensor<T>>{};
}

template <class T>
std::vector<KerasTensor<T>> Model<T>::outputs() const
{
    return m_graph ? m_graph->outputs() : std::vector<KerasTensor<T>>{};
}

template <class T>
std::vector<std::string> Model<T>::input_names() const
{
    std::vector<std::string> n;
    for (const auto& x : inputs())
        n.push_back(x.layer()->name());
    return n;
}

template <class T>
std::vector<std::string> Model<T>::output_names() const
{
    std::vector<std::string> n;
    for (const auto& x : outputs())
        n.push_back(x.layer()->name());
    return n;
}

namespace {
template <class T>
const KerasTensor<T>& only(const std::vector<KerasTensor<T>>& v, const std::string& model, const char* what)
{
    if (v.size() != 1)
        throw ValueError("model \"" + model + "\" has " + std::to_string(v.size()) + " " + what + "s; use " + what +
                         "s()");
    return v[0];
}
} // namespace

template <class T>
KerasTensor<T> Model<T>::input() const
{
    return m_graph ? only(m_graph->inputs(), this->name(), "input") : Layer<T>::input();
}

template <class T>
KerasTensor<T> Model<T>::output() const
{
    return m_graph ? only(m_graph->outputs(), this->name(), "output") : Layer<T>::output();
}

template <class T>
dims_t Model<T>::input_shape() const
{
    return m_graph ? input().shape() : Layer<T>::input_shape();
}

template <class T>
dims_t Model<T>::output_shape() const
{
    return m_graph ? output().shape() : Layer<T>::output_shape();
}

template <class T>
LayerPtr<T> Model<T>::get_layer(const std::string& name) const
{
    std::string names;
    for (const auto& l : layers()) {
        if (l->name() == name)
            return l;
        names += (names.empty() ? "" : ", ") + l->name();
    }
    throw ValueError("No such layer: " + name + ". Existing layers are: [" + names + "].");
}

namespace {
/// Keeps the first occurrence of each variable: a layer shared by two branches, or by two
/// nested models, owns its weights once (Keras deduplicates by identity).
template <class T>
void append_unique(std::vector<Variable<T>>& out, const std::vector<Variable<T>>& vs)
{
    for (const auto& v : vs)
        if (std::none_of(out.begin(), out.end(), [&](const Variable<T>& w) { return w.same_as(v); }))
            out.push_back(v);
}
} // namespace

template <class T>
std::vector<Variable<T>> Model<T>::weights() const
{
    std::vector<Variable<T>> w;
    for (const auto& l : layers())
        append_unique(w, l->weights());
    return w;
}

template <class T>
std::vector<Variable<T>> Model<T>::trainable_weights() const
{
    std::vector<Variable<T>> w;
    if (!this->trainable())
        return w;
    for (const auto& l : layers())
        append_unique(w, l->trainable_weights());
    return w;
}

template <class T>
std::vector<Variable<T>> Model<T>::non_trainable_weights() const
{
    if (!this->trainable())
        return weights();
    std::vector<Variable<T>> w;
    for (const auto& l : layers())
        append_unique(w, l->non_trainable_weights());
    return w;
}

template <class T>
void Model<T>::clear_losses()
{
    Layer<T>::clear_losses();
    for (const auto& l : layers())
        l->clear_losses();
}

template <class T>
void Model<T>::collect_added_losses(std::vector<Tensor<T>>& out) const
{
    Layer<T>::collect_added_losses(out);
    for (const auto& l : layers())
        l->collect_added_losses(out);
}

template <class T>
std::size_t Model<T>::count_params() const
{
    std::size_t n = 0;
    for (const auto& v : weights())
        n += v.size();
    return n;
}

template <class T>
void Model<T>::set_trainable(bool t)
{
    Layer<T>::set_trainable(t);
    for (const auto& l : layers())
        l->set_trainable(t);
}

template <class T>
std::string Model<T>::weight_path(const Variable<T>& v) const
{
    for (const auto& l : layers())
        for (const auto& w : l->weights())
            if (w.same_as(v))
                return l->weight_path(v);
    return Layer<T>::weight_path(v);
}

template <class T>
json Model<T>::get_config() const
{
    return m_graph ? functional_config(*this) : Layer<T>::get_config();
}

template <class T>
dims_t Model<T>::compute_output_shape(const dims_t& input_shape) const
{
    if (m_graph) {
        const auto out = compute_output_shape_list({ input_shape });
        if (out.size() != 1)
            throw ValueError("model \"" + this->name() + "\" has " + std::to_string(out.size()) +
                             " outputs; use compute_output_shape_list");
        return out[0];
    }
    dims_t s = input_shape;
    for (const auto& l : layers())
        s = l->compute_output_shape(s);
    return s;
}

template <class T>
std::vector<dims_t> Model<T>::compute_output_shape_list(const std::vector<dims_t>& input_shapes) const
{
    if (!m_graph)
        return Layer<T>::compute_output_shape_list(input_shapes);
    bool same = input_shapes.size() == m_graph->inputs().size();
    for (std::size_t i = 0; same && i < input_shapes.size(); ++i)
        same = input_shapes[i] == m_graph->inputs()[i].shape();
    if (same) {
        std::vector<dims_t> out;
        for (const auto& y : m_graph->outputs())
            out.push_back(y.shape());
        return out;
    }
    return m_graph->output_shapes(input_shapes);
}

template <class T>
void Model<T>::build(const dims_t& input_shape)
{
    dims_t s = input_shape;
    for (const auto& l : layers()) {
        l->build_once(s);
        s = l->compute_output_shape(s);
    }
}

template <class T>
void Model<T>::build_list(const std::vector<dims_t>& input_shapes)
{
    if (!m_graph)
        Layer<T>::build_list(input_shapes);
}

template <class T>
void Model<T>::check_input_list(const std::vector<shape_t>& shapes) const
{
    if (!m_graph) {
        Layer<T>::check_input_list(shapes);
        return;
    }
    const auto& ins = m_graph->inputs();
    if (shapes.size() != ins.size())
        throw ValueError("Layer \"" + this->name() + "\" expects " + std::to_string(ins.size()) +
                         " input(s), but it received " + std::to_string(shapes.size()) + " input tensors.");
    for (std::size_t i = 0; i < shapes.size(); ++i) {
        const dims_t& e = ins[i].shape();
        bool ok = e.size() == shapes[i].size();
        for (std::size_t k = 1; ok && k < e.size(); ++k)
            ok = e[k] < 0 || static_cast<std::size_t>(e[k]) == shapes[i][k];
        if (!ok)
            throw ShapeError("Input " + std::to_string(i) + " of layer \"" + this->name() +
                             "\" is incompatible with the layer: expected shape=" + dims_str(e) +
                             ", found shape=" + shape_str(shapes[i]));
    }
}

template <class T>
std::vector<Tensor<T>> Model<T>::call_list(const std::vector<Tensor<T>>& inputs, const std::vector<Tensor<T>>& masks,
                                           const CallArgs& args)
{
    if (!m_graph)
        throw NotImplementedError("model \"" + this->name() + "\" (" + this->class_name() +
                                  ") has no graph; a subclassed model overrides call or call_list");
    std::vector<Tensor<T>> out_masks;
    std::vector<Tensor<T>> ys = m_graph->run(inputs, masks, args.training.value_or(false), &out_masks);
    remember_output_masks(inputs, std::move(out_masks));
    return ys;
}

// Note [Concurrent inference]
// predict (and any call with training=false outside a tape) may run on one model from several
// threads at once, so the inference path changes nothing the threads share:
//   - the record of the last call that compute_mask_list reads is kept per thread;
//   - predict's calls neither clear nor add losses (LossesDiscarded; nothing reads them), and a
//     layer with no losses is never written by clearing them (predict_on_batch and direct calls
//     keep the losses their callers read: concurrent ones are safe when no layer adds losses);
//   - normalization kernels take their scratch from a per-thread workspace when they record no
//     backward (Note [Inference workspaces] in framework/batch_norm.cpp);
//   - dropout and other noise draw nothing with training=false.
// The model must be built before the threads start (building is not concurrent), and fit,
// compile or set_weights must not run meanwhile. Tested by tests/test_thread_safety.cpp.
template <class T>
void Model<T>::remember_output_masks(const std::vector<Tensor<T>>& inputs, std::vector<Tensor<T>> masks)
{
    std::lock_guard<std::mutex> lock(m_last_calls->mutex);
    LastCall& last = m_last_calls->by_thread[std::this_thread::get_id()];
    last.inputs = inputs;
    last.output_masks = std::move(masks);
}

template <class T>
std::vector<Tensor<T>> Model<T>::compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                                   const std::vector<Tensor<T>>& masks) const
{
    {
        std::lock_guard<std::mutex> lock(m_last_calls->mutex);
        auto it = m_last_calls->by_thread.find(std::this_thread::get_id());
        if (it != m_last_calls->by_thread.end()) {
            const LastCall& last = it->second;
            bool same = !last.inputs.empty() && inputs.size() == last.inputs.size();
            for (std::size_t i = 0; same && i < inputs.size(); ++i)
                same = inputs[i].node() == last.inputs[i].node();
            if (same)
                return last.output_masks;
        }
    }
    if (!m_graph)
        return Layer<T>::compute_mask_list(inputs, masks);
    return std::vector<Tensor<T>>(m_graph->outputs().size());
}

template <class T>
std::string Model<T>::random_state() const
{
    json states = json::array();
    for (const auto& l : layers())
        states.push_back(l->random_state());
    return states.dump();
}

template <class T>
void Model<T>::set_random_state(const std::string& state)
{
    const std::vector<LayerPtr<T>> ls = layers();
    json states;
    try {
        states = json::parse(state);
    } catch (const json::exception&) {
    }
    if (!states.is_array() || states.size() != ls.size())
        throw ValueError("model \"" + this->name() + "\": the random state does not hold one entry for each of its " +
                         std::to_string(ls.size()) + " layers");
    for (std::size_t i = 0; i < ls.size(); ++i) {
        if (!states[i].is_string())
            throw ValueError("model \"" + this->name() + "\": the random state of layer \"" + ls[i]->name() +
                             "\" is not a string");
        const std::string s = states[i].get<std::string>();
        if (!s.empty())
            ls[i]->set_random_state(s);
    }
}

template <class T>
void Model<T>::reseed(std::uint64_t seed)
{
    const std::vector<LayerPtr<T>> ls = layers();
    for (std::size_t i = 0; i < ls.size(); ++i) {
        // splitmix64's step: distinct, well-mixed seeds for neighbouring layers.
        std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        ls[i]->reseed(z ^ (z >> 31));
    }
}

template <class T>
std::vector<std::optional<dims_t>> Model<T>::compute_mask_shapes(const std::vector<dims_t>& input_shapes,
                                                                 const std::vector<std::optional<dims_t>>& input_masks,
                                                                 const std::vector<dims_t>& output_shapes) const
{
    std::vector<std::optional<dims_t>> out;
    if (m_graph) {
        m_graph->output_shapes(input_shapes, &input_masks, &out);
    } else {
        // Sequential and subclassed models list their layers in call order.
        this->require_one_input(input_shapes.size());
        dims_t s = input_shapes[0];
        std::optional<dims_t> m = input_masks.empty() ? std::nullopt : input_masks[0];
        for (const auto& l : layers()) {
            if (l->class_name() == "InputLayer")
                continue;
            const dims_t next = l->compute_output_shape(s);
            const auto ms = l->compute_mask_shapes({ s }, { m }, { next });
            m = ms.empty() ? std::nullopt : ms[0];
            s = next;
        }
        out = { m };
    }
    out.resize(output_shapes.size());
    return out;
}

// ---- data ----------------------------------------------------------------------------------------------

template <class T>
ArrayList<T>::ArrayList(std::vector<array_t<T>>&& v)
{
    auto owned = std::make_shared<std::vector<array_t<T>>>(std::move(v));
    for (const auto& a : *owned)
        m_list.push_back(&a);
    m_owned = owned;
}

template <class T>
ArrayList<T>::ArrayList(std::map<std::string, array_t<T>>&& m)
{
    auto owned = std::make_shared<std::map<std::string, array_t<T>>>(std::move(m));
    for (const auto& kv : *owned)
        m_named.emplace(kv.first, &kv.second);
    m_owned = owned;
}

namespace {
std::string list_str(const std::vector<std::string>& v)
{
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i)
        s += (i ? ", '" : "'") + v[i] + "'";
    return s + "]";
}
} // namespace

template <class T>
std::vector<const array_t<T>*> ArrayList<T>::resolve(const std::vector<std::string>& names, const std::string& what,
                                                      bool one_for_all, bool allow_missing) const
{
    if (!m_named.empty()) {
        std::vector<std::string> keys;
        for (const auto& kv : m_named)
            keys.push_back(kv.first);
        std::vector<const array_t<T>*> out;
        for (const auto& n : names) {
            auto it = m_named.find(n);
            if (it == m_named.end() && !allow_missing)
                throw ValueError(what + ": expected keys " + list_str(names) + ", but found " + list_str(keys));
            out.push_back(it == m_named.end() ? nullptr : it->second);
        }
        for (const auto& k : keys)
            if (std::find(names.begin(), names.end(), k) == names.end())
                throw ValueError(what + ": '" + k + "' is not one of the expected keys " + list_str(names));
        return out;
    }
    if (one_for_all && m_list.size() == 1)
        return std::vector<const array_t<T>*>(names.size(), m_list[0]);
    if (m_list.size() != names.size())
        throw ValueError(what + ": expected " + std::to_string(names.size()) + " array(s) (" + list_str(names) +
                         (one_for_all && names.size() != 1 ? ", or one for all" : "") + "), but received " +
                         std::to_string(m_list.size()));
    return m_list;
}

namespace {
/// Keras's check_data_cardinality message, over every array of x, y and the sample weights.
template <class T>
void check_cardinality(const char* what, const std::vector<const array_t<T>*>& x,
                       const std::vector<const array_t<T>*>& y, const std::vector<const array_t<T>*>& sw)
{
    std::size_t n = 0;
    bool first = true, same = true;
    auto sizes = [&](const std::vector<const array_t<T>*>& v, const char* name) {
        std::string s;
        for (const array_t<T>* a : v) {
            if (!a)
                continue;
            if (a->dimension() == 0)
                throw ValueError(std::string(what) + ": " + name + " needs a sample axis, got shape " +
                                 shape_str(shape_of(*a)));
            same = same && (first || a->shape()[0] == n);
            n = a->shape()[0];
            first = false;
            s += (s.empty() ? "" : ", ") + std::to_string(a->shape()[0]);
        }
        return s;
    };
    const std::string xs = sizes(x, "x"), ys = sizes(y, "y"), ss = sizes(sw, "sample_weight");
    if (same)
        return;
    std::string msg = "Data cardinality is ambiguous. Make sure all arrays contain the same number of samples.'x' "
                      "sizes: " +
                      xs + "\n'y' sizes: " + ys + "\n";
    if (!ss.empty())
        msg += "'sample_weight' sizes: " + ss + "\n";
    throw ValueError(msg);
}

template <class T>
std::vector<Tensor<T>> tensors_of(const std::vector<const array_t<T>*>& arrays)
{
    std::vector<Tensor<T>> out;
    for (const array_t<T>* a : arrays)
        out.push_back(a ? Tensor<T>(*a) : Tensor<T>());
    return out;
}

/// Rows [begin, begin + count) of each array (null stays an undefined tensor).
template <class T>
std::vector<Tensor<T>> rows_of(const std::vector<const array_t<T>*>& arrays, std::size_t begin, std::size_t count)
{
    std::vector<Tensor<T>> out;
    for (const array_t<T>* a : arrays)
        out.push_back(a ? Tensor<T>(take_rows(*a, begin, count)) : Tensor<T>());
    return out;
}
} // namespace

template <class T>
std::vector<std::string> Model<T>::data_input_names() const
{
    // A model without a graph (Sequential, subclassed) has one input.
    return m_graph ? input_names() : std::vector<std::string>{ "input" };
}

template <class T>
std::vector<std::string> Model<T>::data_output_names() const
{
    if (m_graph)
        return output_names();
    const auto ls = layers();
    return { ls.empty() ? std::string("output") : ls.back()->name() };
}

template <class T>
typename Model<T>::Data Model<T>::resolve_data(const char* what, const ArrayList<T>& x, const ArrayList<T>* y,
                                               const ArrayList<T>* sample_weight) const
{
    const std::string w(what);
    Data d;
    d.x = x.resolve(data_input_names(), w + ": x");
    const auto outs = data_output_names();
    if (y)
        d.y = y->resolve(outs, w + ": y");
    if (sample_weight && !sample_weight->empty())
        d.sample_weight = sample_weight->resolve(outs, w + ": sample_weight", /*one_for_all=*/true, /*allow_missing=*/true);
    else
        d.sample_weight.assign(outs.size(), nullptr);
    check_cardinality(what, d.x, d.y, d.sample_weight);
    return d;
}

template <class T>
typename Model<T>::Data Model<T>::resolve_data(const char* what, const ArrayList<T>& x, const ArrayList<T>& y,
                                               const std::optional<ArrayList<T>>& one,
                                               const ArrayList<T>& per_output) const
{
    if (one && !per_output.empty())
        throw ValueError(std::string(what) + ": sample_weight and output_sample_weights given together; give one");
    return resolve_data(what, x, &y, one ? &*one : &per_output);
}

// ---- compile -------------------------------------------------------------------------------------------

namespace {
/// One entry per output from a CompileOptions field: a list of one (every output) or of one per
/// output, or a map by output name (an output it does not name gets `none`).
template <class V>
std::vector<V> per_output(const std::vector<V>& list, const std::map<std::string, V>& by_name,
                          const std::vector<std::string>& outputs, const char* what, const V& none)
{
    if (!list.empty() && !by_name.empty())
        throw ValueError(std::string("compile: `") + what + "` given both as a list and by output name");
    std::vector<V> out(outputs.size(), none);
    if (!by_name.empty()) {
        for (const auto& kv : by_name) {
            auto it = std::find(outputs.begin(), outputs.end(), kv.first);
            if (it == outputs.end())
                throw ValueError(std::string("compile: `") + what + "` names the output '" + kv.first +
                                 "', but the model's outputs are " + list_str(outputs));
            out[static_cast<std::size_t>(it - outputs.begin())] = kv.second;
        }
        return out;
    }
    if (list.empty())
        return out;
    if (list.size() == 1)
        return std::vector<V>(outputs.size(), list[0]);
    if (list.size() != outputs.size())
        throw ValueError(std::string("compile: `") + what + "` must have one entry or one per output: the model has " +
                         std::to_string(outputs.size()) + " outputs " + list_str(outputs) + ", " + what + " has " +
                         std::to_string(list.size()) + " entries");
    return list;
}
} // namespace

template <class T>
void Model<T>::compile(OptimizerSpec<T> optimizer, LossSpec<T> loss, std::vector<MetricSpec<T>> metrics)
{
    CompileOptions<T> o;
    o.loss.push_back(std::move(loss));
    if (!metrics.empty())
        o.metrics.push_back(std::move(metrics));
    compile(std::move(optimizer), std::move(o));
}

template <class T>
void Model<T>::compile(OptimizerSpec<T> optimizer, CompileOptions<T> o)
{
    if (!optimizer.ptr)
        throw ValueError("compile: the optimizer is null");
    if (o.loss.size() == 1 && !o.loss[0].ptr)
        throw ValueError("compile: the loss is null");
    const std::vector<std::string> outs = data_output_names();
    const auto losses = per_output(o.loss, o.loss_by_name, outs, "loss", LossSpec<T>(LossPtr<T>()));
    const auto weights = per_output(o.loss_weights, o.loss_weights_by_name, outs, "loss_weights", -1.0);
    const auto metrics = per_output(o.metrics, o.metrics_by_name, outs, "metrics", std::vector<MetricSpec<T>>{});
    const auto weighted =
        per_output(o.weighted_metrics, o.weighted_metrics_by_name, outs, "weighted_metrics", std::vector<MetricSpec<T>>{});
    std::vector<Head> heads(outs.size());
    bool any_loss = false;
    for (std::size_t i = 0; i < outs.size(); ++i) {
        Head& h = heads[i];
        h.output_name = outs[i];
        h.loss = losses[i].ptr;
        any_loss = any_loss || h.loss;
        if (!o.loss_weights.empty() || o.loss_weights_by_name.count(outs[i]))
            h.loss_weight = weights[i];
        h.metric_specs = metrics[i];
        h.weighted_metric_specs = weighted[i];
        for (const auto* specs : { &h.metric_specs, &h.weighted_metric_specs })
            // Unknown names fail here, not at the first batch, and before anything is assigned
            // below: a failed compile leaves the model as it was.
            for (const auto& spec : *specs)
                if (!spec.ptr && !(spec.id.is_string() && (spec.id == "accuracy" || spec.id == "acc")))
                    get_metric<T>(spec.id);
        h.loss_tracker.set_name(outs[i] + "_loss");
    }
    if (!any_loss)
        throw ValueError("compile: no output of model \"" + this->name() + "\" has a loss (outputs " + list_str(outs) +
                         ")");
    m_optimizer = std::move(optimizer.ptr);
    m_compile_options = std::move(o);
    m_heads = std::move(heads);
    m_train_vars.clear(); // Note [Trainable after compile]
    m_train_vars_taken = false;
    m_loss_tracker.reset_state();
    m_stop_training = false;
}

template <class T>
const LossPtr<T>& Model<T>::loss() const
{
    static const LossPtr<T> none;
    for (const auto& h : m_heads)
        if (h.loss)
            return h.loss;
    return none;
}

template <class T>
const std::vector<MetricSpec<T>>& Model<T>::metric_specs() const
{
    static const std::vector<MetricSpec<T>> none;
    return m_heads.empty() ? none : m_heads[0].metric_specs;
}

template <class T>
void Model<T>::assert_compiled(const char*) const
{
    if (!compiled())
        throw RuntimeError("You must call `compile()` before using the model.");
}

template <class T>
Tensor<T> Model<T>::compute_loss(const Tensor<T>& y, const Tensor<T>& y_pred, const Tensor<T>& sample_weight)
{
    return compute_loss_list({ y }, { y_pred }, { sample_weight });
}

template <class T>
Tensor<T> Model<T>::compute_loss_list(const std::vector<Tensor<T>>& y, const std::vector<Tensor<T>>& y_pred,
                                      const std::vector<Tensor<T>>& sample_weight)
{
    return total_loss(y, y_pred, sample_weight, nullptr);
}

template <class T>
Tensor<T> Model<T>::total_loss(const std::vector<Tensor<T>>& y, const std::vector<Tensor<T>>& y_pred,
                               const std::vector<Tensor<T>>& sample_weight, std::vector<double>* per_output)
{
    assert_compiled("compute_loss");
    if (y.size() != m_heads.size() || y_pred.size() != m_heads.size() ||
        !(sample_weight.empty() || sample_weight.size() == m_heads.size()))
        throw ValueError("compute_loss: model \"" + this->name() + "\" has " + std::to_string(m_heads.size()) +
                         " output(s), got " + std::to_string(y.size()) + " y, " + std::to_string(y_pred.size()) +
                         " y_pred and " + std::to_string(sample_weight.size()) + " sample weights");
    Tensor<T> total;
    for (std::size_t i = 0; i < m_heads.size(); ++i) {
        const Head& h = m_heads[i];
        if (!h.loss)
            continue;
        Tensor<T> l = (*h.loss)(y[i], y_pred[i], sample_weight.empty() ? Tensor<T>() : sample_weight[i]);
        if (l.size() != 1)
            throw ValueError("compute_loss: the compiled loss '" + h.loss->name() + "' (reduction '" +
                             h.loss->reduction() + "') of output '" + h.output_name + "' gave shape " +
                             shape_str(l.shape()) + "; training needs a scalar loss");
        if (per_output)
            per_output->push_back(static_cast<double>(l.item()));
        // Keras multiplies only by a weight that was given: without one the loss stays bit for bit.
        if (h.loss_weight)
            l = mul_scalar(l, static_cast<T>(*h.loss_weight));
        total = total.defined() ? add(total, l) : l;
    }
    for (const auto& extra : this->losses())
        total = add(total, extra.dim() == 0 ? extra : sum(extra));
    return total;
}

template <class T>
void Model<T>::update_metrics(const std::vector<Tensor<T>>& y, const std::vector<Tensor<T>>& y_pred,
                              const std::vector<Tensor<T>>& sample_weight)
{
    for (std::size_t i = 0; i < m_heads.size(); ++i) {
        Head& h = m_heads[i];
        const array_t<T>* sw = sample_weight[i].defined() ? &sample_weight[i].value() : nullptr;
        for (auto [specs, resolved] : { std::pair(&h.metric_specs, &h.metrics),
                                        std::pair(&h.weighted_metric_specs, &h.weighted_metrics) })
            if (resolved->size() != specs->size()) {
                resolved->clear();
                for (const auto& spec : *specs)
                    resolved->push_back(spec.ptr ? spec.ptr
                                                 : resolve_compile_metric<T>(spec.id, y[i].shape(), y_pred[i].shape()));
            }
        for (auto& m : h.metrics)
            m->update_state(y[i].value(), y_pred[i].value(), nullptr);
        for (auto& m : h.weighted_metrics)
            m->update_state(y[i].value(), y_pred[i].value(), sw);
    }
}

// Note [Names of the logs]
// xtape names the logs as Keras 3 does (keras/src/trainers/compile_utils.py, CompileMetrics.result
// and CompileLoss.build): "loss" is the total; with one output the metrics keep their own names
// ("accuracy"); with several, each is prefixed by its output's name ("dense_1_accuracy"), and each
// output with a loss logs its unweighted loss as "<output>_loss" (only when several outputs have a
// loss). A name met twice gets "_1", "_2", ...; a weighted metric whose name is taken becomes
// "weighted_<name>" (with the output prefix). Validation logs add "val_". tf.keras 2
// (tf_keras/engine/compile_utils.py) names them the same way; it differs in two corners xtape
// does not follow: a model with several outputs logs "<output>_loss" even when only one output
// has a loss, and two metrics of one name are an error instead of getting "_1".
template <class T>
std::vector<std::pair<std::string, const Metric<T>*>> Model<T>::named_metrics() const
{
    std::vector<std::pair<std::string, const Metric<T>*>> out{ { "loss", &m_loss_tracker } };
    std::map<std::string, int> seen;
    const bool prefix = m_heads.size() > 1;
    auto prefixed = [&](const Head& h, const std::string& n) { return prefix ? h.output_name + "_" + n : n; };
    for (const auto& h : m_heads)
        for (const auto& m : h.metrics) {
            std::string name = prefixed(h, m->name());
            const int k = seen[name]++;
            out.emplace_back(k ? name + "_" + std::to_string(k) : name, m.get());
        }
    for (const auto& h : m_heads)
        for (const auto& m : h.weighted_metrics) {
            std::string name = prefixed(h, m->name());
            if (seen[name]++) {
                name = prefixed(h, "weighted_" + m->name());
                const int k = seen[name]++;
                if (k)
                    name += "_" + std::to_string(k);
            }
            out.emplace_back(name, m.get());
        }
    const auto with_loss = std::count_if(m_heads.begin(), m_heads.end(), [](const Head& h) { return h.loss != nullptr; });
    if (with_loss > 1)
        for (const auto& h : m_heads)
            if (h.loss)
                out.emplace_back(h.loss_tracker.name(), &h.loss_tracker);
    return out;
}

template <class T>
std::vector<std::string> Model<T>::metrics_names() const
{
    std::vector<std::string> n;
    for (const auto& kv : named_metrics())
        n.push_back(kv.first);
    return n;
}

template <class T>
void Model<T>::reset_metrics()
{
    m_loss_tracker.reset_state();
    for (auto& h : m_heads) {
        h.loss_tracker.reset_state();
        for (auto& m : h.metrics)
            m->reset_state();
        for (auto& m : h.weighted_metrics)
            m->reset_state();
    }
}

template <class T>
Logs Model<T>::get_metrics_result() const
{
    Logs logs;
    for (const auto& kv : named_metrics())
        logs[kv.first] = kv.second->result();
    return logs;
}

template <class T>
bool Model<T>::is_loss_tracker(const Metric<T>* m) const
{
    return m == &m_loss_tracker ||
           std::any_of(m_heads.begin(), m_heads.end(), [&](const Head& h) { return m == &h.loss_tracker; });
}

template <class T>
int Model<T>::metric_direction(const std::string& name) const
{
    for (const auto& kv : named_metrics())
        if (kv.first == name)
            return is_loss_tracker(kv.second) ? -1 : kv.second->direction();
    const bool prefix = m_heads.size() > 1;
    for (const auto& h : m_heads)
        for (const auto* specs : { &h.metric_specs, &h.weighted_metric_specs })
            for (const auto& s : *specs) {
                const std::string p = prefix ? h.output_name + "_" : "";
                if (s.ptr && p + s.ptr->name() == name)
                    return s.ptr->direction();
                if (!s.ptr && s.id.is_string() && p + s.id.template get<std::string>() == name) {
                    // Not resolved yet: "accuracy" is maximized whatever it resolves to.
                    try {
                        return get_metric<T>(s.id)->direction();
                    } catch (const Error&) {
                        return 0;
                    }
                }
            }
    return 0;
}

// ---- steps ---------------------------------------------------------------------------------------------

namespace {
template <class T>
void check_outputs(const std::string& model, std::size_t heads, std::size_t outputs)
{
    if (heads != outputs)
        throw ValueError("model \"" + model + "\" returned " + std::to_string(outputs) + " output(s), but it was compiled for " +
                         std::to_string(heads));
}
} // namespace

template <class T>
Logs Model<T>::train_step(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y,
                          const std::vector<Tensor<T>>& sample_weight)
{
    return step_on_share(x, y, sample_weight, true, 0);
}

template <class T>
Logs Model<T>::test_step(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y,
                         const std::vector<Tensor<T>>& sample_weight)
{
    return step_on_share(x, y, sample_weight, false, 0);
}

template <class T>
std::vector<Metric<T>*> Model<T>::all_metrics()
{
    std::vector<Metric<T>*> out;
    for (auto& h : m_heads) {
        for (auto& m : h.metrics)
            out.push_back(m.get());
        for (auto& m : h.weighted_metrics)
            out.push_back(m.get());
    }
    return out;
}

template <class T>
Logs Model<T>::step_on_share(const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y,
                             const std::vector<Tensor<T>>& sample_weight, bool training, std::size_t global_batch)
{
    const Collective& comm = collective();
    const bool shared = global_batch > 0 && comm.size() > 1;
    const double local = static_cast<double>(x[0].shape()[0]);
    // This rank's part of the global batch loss (Note [Data-parallel training]).
    const double share = shared ? local / static_cast<double>(global_batch) : 1.0;
    std::vector<Tensor<T>> y_pred;
    Tensor<T> loss;
    std::vector<double> per_output;
    if (training) {
        std::vector<Tensor<T>> grads;
        std::vector<Variable<T>> vars;
        {
            GradientTape<T> tape;
            y_pred = (*this)(x, /*training=*/true);
            check_outputs<T>(this->name(), m_heads.size(), y_pred.size());
            loss = total_loss(y, y_pred, sample_weight, &per_output);
            Tensor<T> target = shared ? mul_scalar(loss, static_cast<T>(share)) : loss;
            // With no sample here the loss is a constant 0 (Keras's divide_no_nan), cut from the
            // graph; 0 * sum(outputs) reconnects it, so that the backward runs through the same
            // records as on the other ranks and joins their synchronized batch norm calls.
            if (shared && local == 0)
                for (const auto& yp : y_pred)
                    target = add(target, mul_scalar(sum(yp), T(0)));
            tape.stop_recording();
            // Note [Trainable after compile]: Keras's train function, made at the first fit after
            // compile, keeps the model's trainable variables of that moment (TensorFlow traces the
            // list once, JAX passes it as state), and compile() drops it; a layer frozen or
            // unfrozen in between changes what fit trains only after compile is called again.
            // The list is read after the forward pass: the first call builds the layers (and
            // their weights); the tape watched them anyway, being trainable variables. An
            // optimizer built before (compile again with the same instance) adds slots for the
            // variables it does not have and keeps the others'.
            if (!m_train_vars_taken) {
                m_train_vars = trainable_weights();
                m_train_vars_taken = true;
                m_optimizer->add_variables(m_train_vars);
            }
            vars = m_train_vars;
            GradientBuckets<T> buckets(comm);
            if (shared)
                tape.on_gradient_ready([&](std::size_t i, array_t<T>& g) { buckets.ready(i, g); });
            if (!vars.empty())
                grads = tape.gradient(target, vars);
            if (shared)
                buckets.finish(grads);
        }
        if (!vars.empty()) {
            NoGradGuard no_grad;
            m_optimizer->apply_gradients(grads, vars);
        } else if (!m_warned_no_weights) {
            std::cerr << "Warning: The model does not have any trainable weights.\n";
            m_warned_no_weights = true;
        }
    } else {
        NoGradGuard no_grad;
        y_pred = (*this)(x, /*training=*/false);
        check_outputs<T>(this->name(), m_heads.size(), y_pred.size());
        loss = total_loss(y, y_pred, sample_weight, &per_output);
    }
    if (!shared) {
        m_loss_tracker.update(static_cast<double>(loss.item()), local);
        update_loss_trackers(per_output, local);
        update_metrics(y, y_pred, sample_weight);
        return get_metrics_result();
    }
    // One allreduce: the batch loss, the per-output losses and the metrics' updates.
    MetricReducer<T> reducer;
    reducer.begin(all_metrics());
    update_metrics(y, y_pred, sample_weight);
    std::vector<double> buf{ local > 0 ? static_cast<double>(loss.item()) * share : 0.0 };
    for (double v : per_output)
        buf.push_back(local > 0 ? v * share : 0.0);
    const std::vector<Metric<T>*> metrics = all_metrics();
    reducer.pack(metrics, buf);
    comm.allreduce_sum(buf.data(), buf.size());
    reducer.unpack(metrics, buf, 1 + per_output.size());
    const double batch = static_cast<double>(global_batch);
    m_loss_tracker.update(buf[0], batch);
    update_loss_trackers(std::vector<double>(buf.begin() + 1, buf.begin() + 1 + static_cast<std::ptrdiff_t>(per_output.size())),
                         batch);
    return get_metrics_result();
}

template <class T>
void Model<T>::update_loss_trackers(const std::vector<double>& per_output, double batch)
{
    // Logged only with several losses (Note [Names of the logs]), unweighted, as Keras.
    if (per_output.size() < 2)
        return;
    std::size_t k = 0;
    for (auto& h : m_heads)
        if (h.loss)
            h.loss_tracker.update(per_output[k++], batch);
}

namespace {
/// Several processes: an exception on one rank ends every rank with its message (MPI_Abort), since
/// the others would wait forever in their next collective call.
template <class F>
auto ending_all_ranks_on_error(F&& f)
{
    const Collective& comm = collective();
    if (comm.size() == 1)
        return f();
    try {
        return f();
    } catch (const std::exception& e) {
        comm.abort(e.what(), 1);
        throw; // not reached: abort ends the process
    }
}
} // namespace

template <class T>
Logs Model<T>::train_on_batch(const ArrayList<T>& x, const ArrayList<T>& y, const array_t<T>* sample_weight,
                              const std::map<int, double>* class_weight)
{
    return train_on_batch(x, y, sample_weight ? ArrayList<T>(*sample_weight) : ArrayList<T>(), class_weight);
}

template <class T>
Logs Model<T>::train_on_batch(const ArrayList<T>& x, const ArrayList<T>& y, const ArrayList<T>& sample_weight,
                              const std::map<int, double>* class_weight)
{
    assert_compiled("train_on_batch");
    Data d = resolve_data("train_on_batch", x, &y, &sample_weight);
    if (class_weight && !class_weight->empty() && !sample_weight.empty())
        throw ValueError("You cannot `class_weight` and `sample_weight` at the same time.");
    std::vector<Tensor<T>> sw = tensors_of(d.sample_weight);
    if (class_weight && !class_weight->empty()) {
        if (m_heads.size() != 1)
            throw ValueError("`class_weight` is only supported for Models with a single output.");
        sw[0] = Tensor<T>(class_weight_to_sample_weights(*d.y[0], *class_weight));
    }
    if (collective().size() == 1)
        return train_step(tensors_of(d.x), tensors_of(d.y), sw);
    return ending_all_ranks_on_error([&] { return step_on_batch_share(d, sw, true); });
}

template <class T>
Logs Model<T>::test_on_batch(const ArrayList<T>& x, const ArrayList<T>& y, const array_t<T>* sample_weight)
{
    return test_on_batch(x, y, sample_weight ? ArrayList<T>(*sample_weight) : ArrayList<T>());
}

template <class T>
Logs Model<T>::test_on_batch(const ArrayList<T>& x, const ArrayList<T>& y, const ArrayList<T>& sample_weight)
{
    assert_compiled("test_on_batch");
    Data d = resolve_data("test_on_batch", x, &y, &sample_weight);
    if (collective().size() == 1)
        return test_step(tensors_of(d.x), tensors_of(d.y), tensors_of(d.sample_weight));
    return ending_all_ranks_on_error([&] { return step_on_batch_share(d, tensors_of(d.sample_weight), false); });
}

template <class T>
Logs Model<T>::step_on_batch_share(const Data& d, const std::vector<Tensor<T>>& sample_weight, bool training)
{
    // The global batch split as fit splits it (Note [Data-parallel training]).
    sync_weights_once(d);
    const std::size_t c = d.x[0]->shape()[0];
    const Shard sh = shard_of(c, collective());
    std::vector<Tensor<T>> sw;
    for (const Tensor<T>& w : sample_weight)
        sw.push_back(w.defined() ? Tensor<T>(take_rows(w.value(), sh.begin, sh.size())) : Tensor<T>());
    return step_on_share(rows_of(d.x, sh.begin, sh.size()), rows_of(d.y, sh.begin, sh.size()), sw, training, c);
}

namespace {
template <class T>
array_t<T> only_output(std::vector<array_t<T>>&& ys, const std::string& model, const char* what)
{
    if (ys.size() != 1)
        throw ValueError(std::string(what) + ": model \"" + model + "\" has " + std::to_string(ys.size()) +
                         " outputs; use " + what + "_list");
    return std::move(ys[0]);
}
} // namespace

template <class T>
std::vector<array_t<T>> Model<T>::predict_on_batch_list(const ArrayList<T>& x)
{
    if (collective().size() > 1) { // one batch of predict, split and gathered on every rank
        PredictOptions<T> o;
        o.verbose = 0;
        o.batch_size = std::max<std::size_t>(1, resolve_data("predict_on_batch", x, nullptr, nullptr).x[0]->shape()[0]);
        return predict_list(x, o);
    }
    Data d = resolve_data("predict_on_batch", x, nullptr, nullptr);
    NoGradGuard no_grad; // keeps the call's losses, which callers read (Keras's model.losses)
    std::vector<array_t<T>> out;
    for (const auto& y : (*this)(tensors_of(d.x), false))
        out.push_back(y.value());
    return out;
}

template <class T>
array_t<T> Model<T>::predict_on_batch(const ArrayList<T>& x)
{
    return only_output(predict_on_batch_list(x), this->name(), "predict_on_batch");
}

// ---- fit / evaluate / predict -------------------------------------------------------------------------

namespace {
/// This rank's rows of `a` (all of them in one process, moved, not copied).
template <class T>
Tensor<T> share_tensor(array_t<T>&& a, const Shard& sh, bool whole)
{
    return whole ? Tensor<T>(std::move(a)) : Tensor<T>(take_rows(a, sh.begin, sh.size()));
}
} // namespace

template <class T>
typename Model<T>::BatchShare Model<T>::share_of_batch(Batch<T>&& b, const std::string& what, std::size_t index,
                                                       bool targets, const std::map<int, double>& class_weight) const
{
    const std::string where = what + ": batch " + std::to_string(index) + " of the batch source";
    const auto ins = data_input_names(), outs = data_output_names();
    auto expect = [&](std::size_t got, std::size_t want, const char* kind, const std::vector<std::string>& names) {
        if (got != want)
            throw ValueError(where + ": expected " + std::to_string(want) + " " + kind + " array(s) " +
                             list_str(names) + ", but received " + std::to_string(got));
    };
    expect(b.x.size(), ins.size(), "input", ins);
    if (targets) {
        expect(b.y.size(), outs.size(), "target", outs);
        if (b.sample_weight.size() > 1)
            expect(b.sample_weight.size(), outs.size(), "sample weight (one for all outputs, or one per output)", outs);
    } else {
        b.y.clear();
        b.sample_weight.clear();
    }
    std::vector<const array_t<T>*> px, py, psw;
    for (const auto& a : b.x)
        px.push_back(&a);
    for (const auto& a : b.y)
        py.push_back(&a);
    for (const auto& a : b.sample_weight)
        psw.push_back(a ? &*a : nullptr);
    try {
        check_cardinality(where.c_str(), px, py, psw);
    } catch (const ValueError& e) {
        const std::string msg = e.what();
        throw ValueError(msg.rfind(where, 0) == 0 ? msg : where + ": " + msg);
    }
    const std::size_t n = b.x[0].shape()[0];
    if (n == 0)
        throw ValueError(where + " holds no samples (x of shape " + shape_str(shape_of(b.x[0])) +
                         "); every batch needs at least one");
    // One sample-weight array per output (null: unweighted); class weights come from the targets.
    std::vector<std::optional<array_t<T>>> sw(outs.size());
    if (targets) {
        for (std::size_t k = 0; k < outs.size() && !b.sample_weight.empty(); ++k)
            if (b.sample_weight.size() == outs.size() || k == 0)
                sw[k] = std::move(b.sample_weight[k]);
        if (!class_weight.empty()) {
            if (std::any_of(b.sample_weight.begin(), b.sample_weight.end(), [](const auto& a) { return a.has_value(); }))
                throw ValueError("You cannot `class_weight` and `sample_weight` at the same time.");
            if (outs.size() != 1)
                throw ValueError("`class_weight` is only supported for Models with a single output.");
            sw[0] = class_weight_to_sample_weights(b.y[0], class_weight);
        }
    }
    // Several processes: this rank's share of the batch (Note [Data-parallel training]).
    const Collective& comm = collective();
    const Shard sh = shard_of(n, comm);
    const bool whole = comm.size() == 1;
    BatchShare out;
    out.size = n;
    for (auto& a : b.x)
        out.x.push_back(share_tensor(std::move(a), sh, whole));
    for (auto& a : b.y)
        out.y.push_back(share_tensor(std::move(a), sh, whole));
    if (targets) {
        const bool one_for_all = b.sample_weight.size() == 1 && outs.size() > 1 && class_weight.empty();
        for (std::size_t k = 0; k < outs.size(); ++k) {
            if (one_for_all && k > 0)
                out.sample_weight.push_back(out.sample_weight[0]); // the same tensor for every output
            else
                out.sample_weight.push_back(sw[k] ? share_tensor(std::move(*sw[k]), sh, whole) : Tensor<T>());
        }
    }
    return out;
}

template <class T>
void Model<T>::sync_weights_from_rank0(BatchSource<T>& data)
{
    const Collective& comm = collective();
    if (!this->built() && data.num_batches() > 0) {
        Batch<T> b = data.get_batch(0);
        if (!b.x.empty() && b.x[0].dimension() > 0 && b.x[0].shape()[0] > 0) {
            std::vector<Tensor<T>> one;
            for (const auto& a : b.x)
                one.emplace_back(take_rows(a, 0, 1));
            NoGradGuard no_grad;
            (*this)(one, false);
        }
    }
    broadcast_variables(this->weights(), comm);
    m_weights_synced = true;
}

template <class T>
void Model<T>::sync_weights_once(const Data& d)
{
    if (m_weights_synced)
        return;
    if (!this->built() && d.x[0]->shape()[0] > 0) {
        NoGradGuard no_grad;
        (*this)(rows_of(d.x, 0, 1), false);
    }
    broadcast_variables(this->weights(), collective());
    m_weights_synced = true;
}

template <class T>
Logs Model<T>::run_evaluation(BatchSource<T>& data, const std::string& what, CallbackList<T>& callbacks)
{
    reset_metrics();
    Logs logs;
    callbacks.on_test_begin(logs);
    data.on_epoch_begin();
    const std::size_t steps = data.num_batches();
    for (std::size_t step = 0; step < steps; ++step) {
        Logs begin;
        callbacks.on_test_batch_begin(static_cast<int>(step), begin);
        BatchShare s = share_of_batch(data.get_batch(step), what, step, true, {});
        logs = step_on_share(s.x, s.y, s.sample_weight, false, s.size);
        callbacks.on_test_batch_end(static_cast<int>(step), logs);
    }
    data.on_epoch_end();
    logs = get_metrics_result();
    callbacks.on_test_end(logs);
    return logs;
}

template <class T>
std::shared_ptr<History<T>> Model<T>::fit(const ArrayList<T>& x, const ArrayList<T>& y, const FitOptions<T>& o)
{
    return ending_all_ranks_on_error([&] { return fit_impl(x, y, o); });
}

template <class T>
std::shared_ptr<History<T>> Model<T>::fit(BatchSource<T>& data, const FitOptions<T>& o)
{
    return ending_all_ranks_on_error([&] {
        assert_compiled("fit");
        if (o.validation_split > 0)
            throw ValueError("fit: `validation_split` is only supported for arrays, not for a batch source; give "
                             "validation_data");
        if (o.sample_weight || !o.output_sample_weights.empty())
            throw ValueError("fit: `sample_weight` is not supported with a batch source: its batches give them");
        std::optional<ArrayBatches<T>> val_arrays;
        std::optional<Data> val;
        BatchSource<T>* validation = nullptr;
        if (o.validation_data && o.validation_data->source) {
            validation = o.validation_data->source;
        } else if (o.validation_data) {
            const ValidationData<T>& v = *o.validation_data;
            val = resolve_data("fit (validation data)", v.x, &v.y, v.sample_weight ? &*v.sample_weight : nullptr);
            val_arrays.emplace(val->x, val->y, val->sample_weight, std::max<std::size_t>(o.batch_size, 1));
            validation = &*val_arrays;
        }
        if (data.num_batches() == 0 && o.initial_epoch < o.epochs)
            throw ValueError("Unexpected result of `train_function` (Empty logs). This could be due to issues in input "
                             "pipeline that resulted in an empty dataset: fit got a batch source with no batches.");
        return run_fit(data, validation, o);
    });
}

std::size_t training_samples(std::size_t samples, double validation_split)
{
    const auto n = static_cast<std::size_t>(std::floor(static_cast<double>(samples) * (1.0 - validation_split)));
    if (n == 0 || n >= samples)
        throw ValueError("Training data contains " + std::to_string(samples) +
                         " samples, which is not sufficient to split it into a validation and training set as "
                         "specified by `validation_split=" +
                         python_float_repr(validation_split) +
                         "`. Either provide more data, or a different value for the `validation_split` argument.");
    return n;
}

template <class T>
std::shared_ptr<History<T>> Model<T>::fit_impl(const ArrayList<T>& x, const ArrayList<T>& y, const FitOptions<T>& o)
{
    assert_compiled("fit");
    const Data all = resolve_data("fit", x, y, o.sample_weight, o.output_sample_weights);
    if (o.batch_size == 0)
        throw ValueError("fit: batch_size must be >= 1");
    if (!o.class_weight.empty() && (o.sample_weight || !o.output_sample_weights.empty()))
        throw ValueError("You cannot `class_weight` and `sample_weight` at the same time.");
    if (!o.class_weight.empty() && m_heads.size() != 1)
        throw ValueError("`class_weight` is only supported for Models with a single output.");
    if (!(o.validation_split >= 0 && o.validation_split < 1))
        throw ValueError("fit: validation_split must be in [0, 1), got " + std::to_string(o.validation_split));

    // Validation data: given, or the last samples before any shuffling (Keras's train_validation_split).
    const std::size_t n_all = all.x[0]->shape()[0];
    std::size_t n_train = n_all;
    std::optional<ArrayBatches<T>> val_arrays;
    if (o.validation_split > 0 && !o.validation_data) {
        n_train = training_samples(n_all, o.validation_split);
        val_arrays.emplace(all.x, all.y, all.sample_weight, o.batch_size, false, n_train, n_all);
    }
    // tf.keras raises once an epoch ran no step (its test_fit_on_empty); here before the first
    // epoch, so callbacks never see an epoch without logs. No epoch to run: History, as Keras.
    if (n_train == 0 && o.initial_epoch < o.epochs)
        throw ValueError("Unexpected result of `train_function` (Empty logs). This could be due to issues in input "
                         "pipeline that resulted in an empty dataset: fit got x of shape " +
                         shape_str(shape_of(*all.x[0])) + ".");
    std::optional<Data> val;
    BatchSource<T>* validation = val_arrays ? &*val_arrays : nullptr;
    if (o.validation_data && o.validation_data->source) {
        validation = o.validation_data->source;
    } else if (o.validation_data) {
        const ValidationData<T>& v = *o.validation_data;
        val = resolve_data("fit (validation data)", v.x, &v.y, v.sample_weight ? &*v.sample_weight : nullptr);
        val_arrays.emplace(val->x, val->y, val->sample_weight, o.batch_size);
        validation = &*val_arrays;
    }
    // The training rows, viewed; class weights become sample weights batch by batch (run_fit).
    ArrayBatches<T> train(all.x, all.y, all.sample_weight, o.batch_size, o.shuffle, 0, n_train);
    return run_fit(train, validation, o);
}

template <class T>
std::shared_ptr<History<T>> Model<T>::run_fit(BatchSource<T>& train, BatchSource<T>* validation, const FitOptions<T>& o)
{
    const Collective& comm = collective();
    if (comm.size() > 1)
        sync_weights_from_rank0(train);
    const int verbose = resolve_verbose(o.verbose);
    const std::size_t steps = train.num_batches();
    CallbackParams params{ verbose, o.epochs, static_cast<std::int64_t>(steps) };
    CallbackList<T> callbacks(o.callbacks, true, verbose != 0, this, params);
    m_history = callbacks.history();

    m_stop_training = false;
    m_resume.reset();
    Logs train_logs;
    callbacks.on_train_begin(train_logs);
    // A callback may have asked to resume an interrupted run (BackupAndRestore).
    std::optional<TrainingPosition> resume = std::move(m_resume);
    m_resume.reset();
    int first_epoch = o.initial_epoch;
    if (resume) {
        if (resume->step < 0 || static_cast<std::size_t>(resume->step) > steps)
            throw ValueError("fit: cannot resume at epoch " + std::to_string(resume->epoch) + ", batch " +
                             std::to_string(resume->step) + ": this run has " + std::to_string(steps) + " batches");
        first_epoch = resume->epoch;
    }
    for (int epoch = first_epoch; epoch < o.epochs; ++epoch) {
        reset_metrics();
        const bool resuming = resume && epoch == resume->epoch;
        m_position.epoch = epoch;
        m_position.step = resuming ? resume->step : 0;
        Logs epoch_begin;
        callbacks.on_epoch_begin(epoch, epoch_begin);
        if (resuming && !resume->order.empty())
            train.set_epoch_order(resume->order); // the generator is already past this epoch's draw
        else
            train.on_epoch_begin();
        m_position.order = train.epoch_order();
        Logs logs;
        for (std::size_t step = resuming ? static_cast<std::size_t>(resume->step) : 0; step < steps; ++step) {
            Logs begin;
            callbacks.on_train_batch_begin(static_cast<int>(step), begin);
            BatchShare s = share_of_batch(train.get_batch(step), "fit", step, true, o.class_weight);
            logs = step_on_share(s.x, s.y, s.sample_weight, true, s.size);
            m_position.step = static_cast<std::int64_t>(step) + 1;
            callbacks.on_train_batch_end(static_cast<int>(step), logs);
            if (m_stop_training)
                break;
        }
        train.on_epoch_end();
        Logs epoch_logs = get_metrics_result();
        if (validation) {
            Logs v = run_evaluation(*validation, "fit (validation data)", callbacks);
            for (const auto& kv : v)
                epoch_logs["val_" + kv.first] = kv.second;
        }
        callbacks.on_epoch_end(epoch, epoch_logs);
        train_logs = epoch_logs;
        if (m_stop_training)
            break;
    }
    callbacks.on_train_end(train_logs);
    return m_history;
}

template <class T>
Logs Model<T>::evaluate(const ArrayList<T>& x, const ArrayList<T>& y, const EvaluateOptions<T>& o)
{
    return ending_all_ranks_on_error([&] { return evaluate_impl(x, y, o); });
}

template <class T>
Logs Model<T>::evaluate(BatchSource<T>& data, const EvaluateOptions<T>& o)
{
    return ending_all_ranks_on_error([&] {
        assert_compiled("evaluate");
        if (o.sample_weight || !o.output_sample_weights.empty())
            throw ValueError("evaluate: `sample_weight` is not supported with a batch source: its batches give them");
        return run_evaluate(data, o);
    });
}

template <class T>
Logs Model<T>::evaluate_impl(const ArrayList<T>& x, const ArrayList<T>& y, const EvaluateOptions<T>& o)
{
    assert_compiled("evaluate");
    const Data d = resolve_data("evaluate", x, y, o.sample_weight, o.output_sample_weights);
    if (o.batch_size == 0)
        throw ValueError("evaluate: batch_size must be >= 1");
    ArrayBatches<T> data(d.x, d.y, d.sample_weight, o.batch_size);
    return run_evaluate(data, o);
}

template <class T>
Logs Model<T>::run_evaluate(BatchSource<T>& data, const EvaluateOptions<T>& o)
{
    if (collective().size() > 1)
        sync_weights_from_rank0(data);
    const int verbose = resolve_verbose(o.verbose);
    CallbackList<T> callbacks(o.callbacks, false, verbose != 0, this,
                              CallbackParams{ verbose, 1, static_cast<std::int64_t>(data.num_batches()) });
    return run_evaluation(data, "evaluate", callbacks);
}

template <class T>
array_t<T> Model<T>::predict(const ArrayList<T>& x, const PredictOptions<T>& o)
{
    if (m_graph && m_graph->outputs().size() != 1) // before predicting anything
        only_output(std::vector<array_t<T>>(m_graph->outputs().size()), this->name(), "predict");
    return only_output(predict_list(x, o), this->name(), "predict");
}

template <class T>
array_t<T> Model<T>::predict(BatchSource<T>& data, const PredictOptions<T>& o)
{
    if (m_graph && m_graph->outputs().size() != 1)
        only_output(std::vector<array_t<T>>(m_graph->outputs().size()), this->name(), "predict");
    return only_output(predict_list(data, o), this->name(), "predict");
}

template <class T>
std::vector<array_t<T>> Model<T>::predict_list(const ArrayList<T>& x, const PredictOptions<T>& o)
{
    return ending_all_ranks_on_error([&] { return predict_impl(x, o); });
}

template <class T>
std::vector<array_t<T>> Model<T>::predict_list(BatchSource<T>& data, const PredictOptions<T>& o)
{
    return ending_all_ranks_on_error([&] {
        if (data.num_batches() == 0)
            throw ValueError("predict: the batch source has no batches; at least one sample is needed");
        return run_predict(data, o);
    });
}

template <class T>
std::vector<array_t<T>> Model<T>::predict_impl(const ArrayList<T>& x, const PredictOptions<T>& o)
{
    const Data d = resolve_data("predict", x, nullptr, nullptr);
    const array_t<T>& x0 = *d.x[0];
    // Keras refuses empty input too; without samples there is no output shape to return.
    if (x0.shape()[0] == 0)
        throw ValueError("predict: x of shape " + shape_str(shape_of(x0)) + " holds no samples; at least one is needed");
    if (o.batch_size == 0)
        throw ValueError("predict: batch_size must be >= 1");
    ArrayBatches<T> data(d.x, {}, {}, o.batch_size);
    return run_predict(data, o);
}

template <class T>
std::vector<array_t<T>> Model<T>::run_predict(BatchSource<T>& data, const PredictOptions<T>& o)
{
    const Collective& comm = collective();
    if (comm.size() > 1)
        sync_weights_from_rank0(data);
    const std::size_t steps = data.num_batches();
    const int verbose = resolve_verbose(o.verbose);
    CallbackList<T> callbacks(o.callbacks, false, verbose != 0, this,
                              CallbackParams{ verbose, 1, static_cast<std::int64_t>(steps) });
    NoGradGuard no_grad;
    const LossesDiscarded no_losses; // Note [Concurrent inference]
    Logs logs;
    callbacks.on_predict_begin(logs);
    data.on_epoch_begin();
    // Each output's rows, batch after batch (the number of samples is known at the end).
    std::vector<std::vector<T>> rows_of;
    std::vector<shape_t> shapes; // each output's shape with the sample axis
    std::vector<std::size_t> row;
    std::size_t n = 0;
    for (std::size_t step = 0; step < steps; ++step) {
        Logs begin;
        callbacks.on_predict_batch_begin(static_cast<int>(step), begin);
        Batch<T> batch = data.get_batch(step);
        const std::size_t c = !batch.x.empty() && batch.x[0].dimension() > 0 ? batch.x[0].shape()[0] : 0;
        // Several processes: each predicts its share of the batch; a rank without one runs the
        // batch's first sample to learn the output shapes (Note [Data-parallel training]).
        const Shard sh = shard_of(c, comm);
        const bool probe = sh.size() == 0 && step == 0;
        std::vector<Tensor<T>> xs;
        if (probe) {
            share_of_batch(Batch<T>{ batch.x, {}, {} }, "predict", step, false, {}); // checks the batch
            for (const auto& a : batch.x)
                xs.emplace_back(take_rows(a, 0, 1));
        } else {
            xs = share_of_batch(std::move(batch), "predict", step, false, {}).x;
        }
        const std::size_t lc = probe ? 1 : sh.size();
        const std::vector<Tensor<T>> ys = (*this)(xs, false);
        for (std::size_t k = 0; k < ys.size(); ++k) {
            const Tensor<T>& yb = ys[k];
            if (step == 0) {
                shape_t s = yb.shape();
                if (s.empty() || s[0] != lc)
                    throw ShapeError("predict: the model's output " + std::to_string(k) + " of shape " + shape_str(s) +
                                     " has no batch axis of size " + std::to_string(lc));
                row.push_back(yb.size() / lc);
                shapes.push_back(s);
                rows_of.emplace_back();
            }
            if (yb.size() != row[k] * sh.size() && !probe)
                throw ShapeError("predict: batch " + std::to_string(step) + " gave output " + std::to_string(k) +
                                 " of shape " + shape_str(yb.shape()) + ", unlike the first batch");
            // Other ranks' rows stay zeros: the sum over ranks gathers them.
            rows_of[k].resize((n + c) * row[k], T(0));
            if (sh.size() > 0)
                std::copy(yb.data(), yb.data() + row[k] * sh.size(), rows_of[k].data() + (n + sh.begin) * row[k]);
        }
        n += c;
        Logs end;
        callbacks.on_predict_batch_end(static_cast<int>(step), end);
    }
    data.on_epoch_end();
    std::vector<array_t<T>> out;
    for (std::size_t k = 0; k < rows_of.size(); ++k) {
        shapes[k][0] = n;
        out.push_back(array_t<T>::from_shape(shapes[k]));
        std::copy(rows_of[k].begin(), rows_of[k].end(), out[k].data());
        std::vector<T>().swap(rows_of[k]);
        if (comm.size() > 1) // the shares are disjoint, the rest zeros: the sum gathers them
            comm.allreduce_sum(out[k].data(), out[k].size());
    }
    callbacks.on_predict_end(logs);
    return out;
}

// ---- summary -------------------------------------------------------------------------------------------

template <class T>
std::vector<typename Model<T>::SummaryRow> Model<T>::summary_rows() const
{
    std::vector<SummaryRow> rows;
    if (const Graph<T>* g = m_graph.get()) {
        for (const auto& l : g->all_layers()) {
            // Keras shows the outputs of the layer's last call, and every call's inputs.
            SummaryRow r{ l->name(), l->class_name(), {}, l->built() ? l->count_params() : 0, l->built(), {} };
            const Node<T>* last = nullptr;
            for (const auto& n : l->inbound_nodes()) {
                if (!g->contains(n.get()))
                    continue;
                last = n.get();
                for (const auto& x : n->inputs)
                    r.connected_to.push_back(x.layer()->name() + "[" + std::to_string(x.node_index()) + "][" +
                                             std::to_string(x.tensor_index()) + "]");
            }
            if (last)
                r.output_shapes = last->output_shapes;
            rows.push_back(std::move(r));
        }
        return rows;
    }
    dims_t shape = this->built() ? this->build_input_shape() : dims_t{};
    bool known = this->built();
    for (const auto& l : layers()) {
        SummaryRow r{ l->name(), l->class_name(), {}, l->built() ? l->count_params() : 0, l->built(), {} };
        if (known) {
            try {
                shape = l->compute_output_shape(shape);
                r.output_shapes = { shape };
            } catch (const Error&) {
                known = false;
            }
        }
        rows.push_back(std::move(r));
    }
    return rows;
}

template <class T>
typename Model<T>::ParamCounts Model<T>::param_counts() const
{
    auto count = [](const std::vector<Variable<T>>& vs) {
        std::size_t n = 0;
        for (const auto& v : vs)
            n += v.size();
        return n;
    };
    ParamCounts c;
    c.trainable = count(trainable_weights());
    c.non_trainable = count(non_trainable_weights());
    if (m_optimizer)
        c.optimizer = count(m_optimizer->variables());
    return c;
}

template <class T>
std::string Model<T>::summary_string(int line_length) const
{
    // Keras: a functional model whose graph is not a chain (a depth with several nodes, a node
    // with several inputs, a layer called twice) gets a fourth column "Connected to".
    const Graph<T>* g = m_graph.get();
    bool sequential_like = true;
    if (g) {
        std::map<const Layer<T>*, int> calls;
        for (const Node<T>* n : g->nodes())
            if (n->inputs.size() > 1 || ++calls[n->layer] > 1)
                sequential_like = false;
        if (g->inputs().size() > 1 || g->outputs().size() > 1)
            sequential_like = false;
        // Two nodes at one depth: some node's input is not the previous node's output.
        const Node<T>* prev = nullptr;
        for (const Node<T>* n : g->nodes()) {
            if (prev && !(n->inputs.size() == 1 && n->inputs[0].layer().get() == prev->layer))
                sequential_like = false;
            prev = n;
        }
    }
    const int L = line_length > 0 ? line_length : std::min(sequential_like ? 88 : 108, terminal_columns() - 4);
    const std::vector<double> positions =
        sequential_like ? std::vector<double>{ 0.45, 0.80, 1.0 } : std::vector<double>{ 0.3, 0.56, 0.74, 1.0 };
    std::vector<long> widths;
    long current = 0;
    for (double p : positions) {
        const long w = static_cast<long>(p * L) - current;
        if (w < 4)
            throw ValueError("Insufficient console width to print summary.");
        widths.push_back(w + 2); // cell padding
        current += w;
    }
    const long max_width = L - static_cast<long>(positions.size()) - 1;
    const long total = std::accumulate(widths.begin(), widths.end(), 0L);
    if (total > max_width)
        widths = ratio_reduce(total - max_width, std::vector<long>(widths.size(), 1), widths, widths);
    std::vector<std::size_t> content;
    for (long w : widths)
        content.push_back(static_cast<std::size_t>(std::max(1L, w - 2)));

    auto rule = [&](const char* left, const char* fill, const char* mid, const char* right) {
        std::string s = left;
        for (std::size_t i = 0; i < content.size(); ++i) {
            s += repeat_str(fill, content[i] + 2);
            s += i + 1 < content.size() ? mid : right;
        }
        return s + "\n";
    };
    auto row = [&](const std::vector<std::string>& cells, const char* bar) {
        std::vector<std::vector<std::string>> wrapped;
        std::size_t height = 1;
        for (std::size_t i = 0; i < cells.size(); ++i) {
            wrapped.push_back(wrap_cell(cells[i], content[i]));
            height = std::max(height, wrapped.back().size());
        }
        std::string s;
        for (std::size_t h = 0; h < height; ++h) {
            s += bar;
            for (std::size_t i = 0; i < cells.size(); ++i) {
                const std::string text = h < wrapped[i].size() ? wrapped[i][h] : "";
                s += " " + pad_cell(text, content[i], i == 2) + " " + bar;
            }
            s += "\n";
        }
        return s;
    };

    std::vector<std::vector<std::string>> rows;
    for (const SummaryRow& sr : summary_rows()) {
        std::string out = "?";
        if (!sr.output_shapes.empty()) {
            out.clear();
            for (const auto& d : sr.output_shapes)
                out += (out.empty() ? "" : ", ") + dims_str(d);
            if (sr.output_shapes.size() != 1)
                out = "[" + out + "]";
        }
        std::vector<std::string> r{ sr.name + " (" + sr.class_name + ")", out,
                                    sr.built ? with_commas(sr.params) : "0 (unbuilt)" };
        if (!sequential_like) {
            std::string connected;
            for (const auto& c : sr.connected_to)
                connected += (connected.empty() ? "" : ", ") + c;
            r.push_back(connected.empty() ? "-" : connected);
        }
        rows.push_back(r);
    }

    std::string s = "Model: \"" + this->name() + "\"\n";
    s += rule("┏", "━", "┳", "┓");
    std::vector<std::string> header{ "Layer (type)", "Output Shape", "Param #" };
    if (!sequential_like)
        header.push_back("Connected to");
    s += row(header, "┃");
    s += rule("┡", "━", "╇", "┩");
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i)
            s += rule("├", "─", "┼", "┤");
        s += row(rows[i], "│");
    }
    s += rule("└", "─", "┴", "┘");

    const ParamCounts counts = param_counts();
    const std::size_t trainable = counts.trainable, non_trainable = counts.non_trainable, opt_count = counts.optimizer;
    const bool opt_built = m_optimizer && !m_optimizer->variables().empty();
    const double bytes = static_cast<double>(sizeof(T));
    const std::size_t total_count = trainable + non_trainable + opt_count;
    s += " Total params: " + with_commas(total_count) + " (" + readable_memory(static_cast<double>(total_count) * bytes) +
         ")\n";
    s += " Trainable params: " + with_commas(trainable) + " (" + readable_memory(static_cast<double>(trainable) * bytes) +
         ")\n";
    s += " Non-trainable params: " + with_commas(non_trainable) + " (" +
         readable_memory(static_cast<double>(non_trainable) * bytes) + ")\n";
    if (opt_built)
        s += " Optimizer params: " + with_commas(opt_count) + " (" +
             readable_memory(static_cast<double>(opt_count) * bytes) + ")\n";
    return s;
}

template <class T>
void Model<T>::summary(std::ostream* os, int line_length) const
{
    (os ? *os : std::cout) << summary_string(line_length) << std::flush;
}

template class Model<float>;
template class Model<double>;
template class ArrayList<float>;
template class ArrayList<double>;
template array_t<float> class_weight_to_sample_weights(const array_t<float>&, const std::map<int, double>&);
template array_t<double> class_weight_to_sample_weights(const array_t<double>&, const std::map<int, double>&);

} // namespace xtape
