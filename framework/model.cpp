#include "framework/model.hpp"

#include "framework/allocator.hpp"
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

/// Rows `idx[0..count)` of a (or rows begin..begin+count when idx is null), as a new array.
template <class T>
array_t<T> gather_rows(const array_t<T>& a, const std::size_t* idx, std::size_t begin, std::size_t count)
{
    shape_t s = shape_of(a);
    const std::size_t row = s[0] ? a.size() / s[0] : 0;
    s[0] = count;
    array_t<T> out = array_t<T>::from_shape(s);
    const T* src = a.data();
    T* dst = out.data();
    if (!idx) {
        std::copy(src + begin * row, src + (begin + count) * row, dst);
        return out;
    }
    for (std::size_t i = 0; i < count; ++i)
        std::copy(src + idx[i] * row, src + (idx[i] + 1) * row, dst + i * row);
    return out;
}

/// Keras's check_data_cardinality message.
void check_cardinality(std::size_t nx, std::size_t ny, const std::size_t* nsw)
{
    if (nx == ny && (!nsw || *nsw == nx))
        return;
    std::string msg = "Data cardinality is ambiguous. Make sure all arrays contain the same number of samples.'x' "
                      "sizes: " +
                      std::to_string(nx) + "\n'y' sizes: " + std::to_string(ny) + "\n";
    if (nsw)
        msg += "'sample_weight' sizes: " + std::to_string(*nsw) + "\n";
    throw ValueError(msg);
}

template <class T>
void check_data(const char* what, const array_t<T>& x, const array_t<T>& y, const array_t<T>* sw)
{
    if (x.dimension() == 0 || y.dimension() == 0)
        throw ValueError(std::string(what) + ": x and y need a sample axis, got x of shape " +
                         shape_str(shape_of(x)) + " and y of shape " + shape_str(shape_of(y)));
    std::size_t nsw = 0;
    if (sw) {
        if (sw->dimension() == 0)
            throw ValueError(std::string(what) + ": sample_weight needs a sample axis, got shape " +
                             shape_str(shape_of(*sw)));
        nsw = sw->shape()[0];
    }
    check_cardinality(x.shape()[0], y.shape()[0], sw ? &nsw : nullptr);
}

/// A permutation of [0, n) drawn serially from the global generator (Fisher-Yates; the modulo
/// bias of a 64-bit draw is below 2^-40 for any realistic n).
std::vector<std::size_t> permutation(std::size_t n)
{
    std::vector<std::size_t> p(n);
    std::iota(p.begin(), p.end(), std::size_t(0));
    rng_t& rng = global_rng();
    for (std::size_t i = n; i > 1; --i) {
        const std::size_t j = static_cast<std::size_t>(rng() % i);
        std::swap(p[i - 1], p[j]);
    }
    return p;
}

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
}

template <class T>
Model<T>::Model(std::vector<KerasTensor<T>> inputs, std::vector<KerasTensor<T>> outputs, std::string name,
                bool trainable)
    : Layer<T>("Functional", name.empty() ? unique_layer_name("functional") : std::move(name), trainable)
    , m_graph(std::make_shared<const Graph<T>>(std::move(inputs), std::move(outputs)))
{
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
    m_last_inputs = inputs;
    m_last_output_masks = std::move(out_masks);
    return ys;
}

template <class T>
std::vector<Tensor<T>> Model<T>::compute_mask_list(const std::vector<Tensor<T>>& inputs,
                                                   const std::vector<Tensor<T>>& masks) const
{
    if (!m_graph)
        return Layer<T>::compute_mask_list(inputs, masks);
    bool same = inputs.size() == m_last_inputs.size();
    for (std::size_t i = 0; same && i < inputs.size(); ++i)
        same = inputs[i].node() == m_last_inputs[i].node();
    if (same)
        return m_last_output_masks;
    return std::vector<Tensor<T>>(m_graph->outputs().size());
}

// ---- compile -------------------------------------------------------------------------------------------

template <class T>
void Model<T>::compile(OptimizerSpec<T> optimizer, LossSpec<T> loss, std::vector<MetricSpec<T>> metrics)
{
    if (!optimizer.ptr)
        throw ValueError("compile: the optimizer is null");
    if (!loss.ptr)
        throw ValueError("compile: the loss is null");
    // Unknown metric names fail here, not at the first batch, and before anything is assigned:
    // a failed compile leaves the model as it was.
    for (const auto& spec : metrics)
        if (!spec.ptr && !(spec.id.is_string() && (spec.id == "accuracy" || spec.id == "acc")))
            get_metric<T>(spec.id);
    m_optimizer = std::move(optimizer.ptr);
    m_loss = std::move(loss.ptr);
    m_metric_specs = std::move(metrics);
    m_metrics.clear();
    m_loss_tracker.reset_state();
    m_stop_training = false;
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
    assert_compiled("compute_loss");
    Tensor<T> total = (*m_loss)(y, y_pred, sample_weight);
    if (total.size() != 1)
        throw ValueError("compute_loss: the compiled loss '" + m_loss->name() + "' (reduction '" +
                         m_loss->reduction() + "') gave shape " + shape_str(total.shape()) +
                         "; training needs a scalar loss");
    for (const auto& extra : this->losses())
        total = add(total, extra.dim() == 0 ? extra : sum(extra));
    return total;
}

template <class T>
void Model<T>::update_metrics(const Tensor<T>& y, const Tensor<T>& y_pred)
{
    if (m_metrics.size() != m_metric_specs.size()) {
        m_metrics.clear();
        for (const auto& spec : m_metric_specs)
            m_metrics.push_back(spec.ptr ? spec.ptr : resolve_compile_metric<T>(spec.id, y.shape(), y_pred.shape()));
    }
    for (auto& m : m_metrics)
        m->update_state(y.value(), y_pred.value(), nullptr);
}

template <class T>
std::vector<std::string> Model<T>::metrics_names() const
{
    std::vector<std::string> n{ "loss" };
    for (const auto& m : m_metrics)
        n.push_back(m->name());
    return n;
}

template <class T>
void Model<T>::reset_metrics()
{
    m_loss_tracker.reset_state();
    for (auto& m : m_metrics)
        m->reset_state();
}

template <class T>
Logs Model<T>::get_metrics_result() const
{
    Logs logs{ { "loss", m_loss_tracker.result() } };
    for (const auto& m : m_metrics)
        logs[m->name()] = m->result();
    return logs;
}

template <class T>
int Model<T>::metric_direction(const std::string& name) const
{
    if (name == "loss")
        return -1;
    for (const auto& m : m_metrics)
        if (m->name() == name)
            return m->direction();
    for (const auto& s : m_metric_specs) {
        if (s.ptr && s.ptr->name() == name)
            return s.ptr->direction();
        if (!s.ptr && s.id.is_string() && s.id.template get<std::string>() == name) {
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

template <class T>
Logs Model<T>::train_step(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& sample_weight)
{
    tune_allocator_once();
    Tensor<T> y_pred, loss;
    std::vector<Tensor<T>> grads;
    std::vector<Variable<T>> vars;
    {
        GradientTape<T> tape;
        y_pred = (*this)(x, /*training=*/true);
        loss = compute_loss(y, y_pred, sample_weight);
        tape.stop_recording();
        // Read after the forward pass: the first call builds the layers (and their weights);
        // the tape watched them anyway, being trainable variables.
        vars = trainable_weights();
        if (!vars.empty())
            grads = tape.gradient(loss, vars);
    }
    if (!vars.empty()) {
        NoGradGuard no_grad;
        m_optimizer->apply_gradients(grads, vars);
    } else if (!m_warned_no_weights) {
        std::cerr << "Warning: The model does not have any trainable weights.\n";
        m_warned_no_weights = true;
    }
    m_loss_tracker.update(static_cast<double>(loss.item()), static_cast<double>(x.shape()[0]));
    update_metrics(y, y_pred);
    return get_metrics_result();
}

template <class T>
Logs Model<T>::test_step(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& sample_weight)
{
    tune_allocator_once();
    NoGradGuard no_grad;
    Tensor<T> y_pred = (*this)(x, /*training=*/false);
    Tensor<T> loss = compute_loss(y, y_pred, sample_weight);
    m_loss_tracker.update(static_cast<double>(loss.item()), static_cast<double>(x.shape()[0]));
    update_metrics(y, y_pred);
    return get_metrics_result();
}

template <class T>
Logs Model<T>::train_on_batch(const array_t<T>& x, const array_t<T>& y, const array_t<T>* sample_weight,
                              const std::map<int, double>* class_weight)
{
    assert_compiled("train_on_batch");
    check_data("train_on_batch", x, y, sample_weight);
    if (class_weight && !class_weight->empty() && sample_weight)
        throw ValueError("You cannot `class_weight` and `sample_weight` at the same time.");
    Tensor<T> sw;
    if (sample_weight)
        sw = Tensor<T>(*sample_weight);
    else if (class_weight && !class_weight->empty())
        sw = Tensor<T>(class_weight_to_sample_weights(y, *class_weight));
    return train_step(Tensor<T>(x), Tensor<T>(y), sw);
}

template <class T>
Logs Model<T>::test_on_batch(const array_t<T>& x, const array_t<T>& y, const array_t<T>* sample_weight)
{
    assert_compiled("test_on_batch");
    check_data("test_on_batch", x, y, sample_weight);
    return test_step(Tensor<T>(x), Tensor<T>(y), sample_weight ? Tensor<T>(*sample_weight) : Tensor<T>());
}

template <class T>
array_t<T> Model<T>::predict_on_batch(const array_t<T>& x)
{
    NoGradGuard no_grad;
    return (*this)(Tensor<T>(x), false).value();
}

// ---- fit / evaluate / predict -------------------------------------------------------------------------

template <class T>
Logs Model<T>::run_evaluation(const array_t<T>& x, const array_t<T>& y, const array_t<T>* sw,
                              std::size_t batch_size, CallbackList<T>& callbacks)
{
    // x, y, sw hold exactly the samples to evaluate.
    const std::size_t n = x.shape()[0];
    reset_metrics();
    Logs logs;
    callbacks.on_test_begin(logs);
    const std::size_t steps = (n + batch_size - 1) / batch_size;
    for (std::size_t step = 0; step < steps; ++step) {
        const std::size_t b = step * batch_size, c = std::min(batch_size, n - b);
        Logs begin;
        callbacks.on_test_batch_begin(static_cast<int>(step), begin);
        Tensor<T> xb(gather_rows(x, nullptr, b, c)), yb(gather_rows(y, nullptr, b, c));
        Tensor<T> swb = sw ? Tensor<T>(gather_rows(*sw, nullptr, b, c)) : Tensor<T>();
        logs = test_step(xb, yb, swb);
        callbacks.on_test_batch_end(static_cast<int>(step), logs);
    }
    logs = get_metrics_result();
    callbacks.on_test_end(logs);
    return logs;
}

template <class T>
std::shared_ptr<History<T>> Model<T>::fit(const array_t<T>& x_all, const array_t<T>& y_all, const FitOptions<T>& o)
{
    assert_compiled("fit");
    const array_t<T>* sw_all = o.sample_weight ? &*o.sample_weight : nullptr;
    check_data("fit", x_all, y_all, sw_all);
    if (o.batch_size == 0)
        throw ValueError("fit: batch_size must be >= 1");
    if (!o.class_weight.empty() && sw_all)
        throw ValueError("You cannot `class_weight` and `sample_weight` at the same time.");
    if (!(o.validation_split >= 0 && o.validation_split < 1))
        throw ValueError("fit: validation_split must be in [0, 1), got " + std::to_string(o.validation_split));

    // Validation data: given, or the last samples before any shuffling (Keras's train_validation_split).
    const std::size_t n_all = x_all.shape()[0];
    std::size_t n_train = n_all;
    std::optional<ValidationData<T>> split;
    if (o.validation_split > 0 && !o.validation_data) {
        n_train = static_cast<std::size_t>(std::floor(static_cast<double>(n_all) * (1.0 - o.validation_split)));
        if (n_train == 0 || n_train == n_all)
            throw ValueError("Training data contains " + std::to_string(n_all) +
                             " samples, which is not sufficient to split it into a validation and training set as "
                             "specified by `validation_split=" +
                             python_float_repr(o.validation_split) +
                             "`. Either provide more data, or a different value for the `validation_split` argument.");
        ValidationData<T> v;
        v.x = gather_rows(x_all, nullptr, n_train, n_all - n_train);
        v.y = gather_rows(y_all, nullptr, n_train, n_all - n_train);
        if (sw_all)
            v.sample_weight = gather_rows(*sw_all, nullptr, n_train, n_all - n_train);
        split = std::move(v);
    }
    // tf.keras raises once an epoch ran no step (its test_fit_on_empty); here before the first
    // epoch, so callbacks never see an epoch without logs. No epoch to run: History, as Keras.
    if (n_train == 0 && o.initial_epoch < o.epochs)
        throw ValueError("Unexpected result of `train_function` (Empty logs). This could be due to issues in input "
                         "pipeline that resulted in an empty dataset: fit got x of shape " +
                         shape_str(shape_of(x_all)) + ".");
    const ValidationData<T>* val = o.validation_data ? &*o.validation_data : (split ? &*split : nullptr);
    if (val)
        check_data("fit (validation data)", val->x, val->y, val->sample_weight ? &*val->sample_weight : nullptr);

    // class_weight becomes per-sample weights of the training samples (training only).
    std::optional<array_t<T>> cw;
    if (!o.class_weight.empty())
        cw = class_weight_to_sample_weights(y_all, o.class_weight);
    const array_t<T>* sw_train = cw ? &*cw : sw_all;

    const int verbose = resolve_verbose(o.verbose);
    const std::size_t steps = (n_train + o.batch_size - 1) / o.batch_size;
    CallbackParams params{ verbose, o.epochs, static_cast<std::int64_t>(steps) };
    CallbackList<T> callbacks(o.callbacks, true, verbose != 0, this, params);
    m_history = callbacks.history();

    m_stop_training = false;
    Logs train_logs;
    callbacks.on_train_begin(train_logs);
    std::vector<std::size_t> order(n_train);
    std::iota(order.begin(), order.end(), std::size_t(0));
    for (int epoch = o.initial_epoch; epoch < o.epochs; ++epoch) {
        reset_metrics();
        Logs epoch_begin;
        callbacks.on_epoch_begin(epoch, epoch_begin);
        if (o.shuffle)
            order = permutation(n_train);
        Logs logs;
        for (std::size_t step = 0; step < steps; ++step) {
            const std::size_t b = step * o.batch_size, c = std::min(o.batch_size, n_train - b);
            Logs begin;
            callbacks.on_train_batch_begin(static_cast<int>(step), begin);
            Tensor<T> xb(gather_rows(x_all, order.data() + b, 0, c));
            Tensor<T> yb(gather_rows(y_all, order.data() + b, 0, c));
            Tensor<T> swb = sw_train ? Tensor<T>(gather_rows(*sw_train, order.data() + b, 0, c)) : Tensor<T>();
            logs = train_step(xb, yb, swb);
            callbacks.on_train_batch_end(static_cast<int>(step), logs);
            if (m_stop_training)
                break;
        }
        Logs epoch_logs = get_metrics_result();
        if (val) {
            Logs v = run_evaluation(val->x, val->y, val->sample_weight ? &*val->sample_weight : nullptr, o.batch_size,
                                    callbacks);
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
Logs Model<T>::evaluate(const array_t<T>& x, const array_t<T>& y, const EvaluateOptions<T>& o)
{
    assert_compiled("evaluate");
    const array_t<T>* sw = o.sample_weight ? &*o.sample_weight : nullptr;
    check_data("evaluate", x, y, sw);
    if (o.batch_size == 0)
        throw ValueError("evaluate: batch_size must be >= 1");
    const int verbose = resolve_verbose(o.verbose);
    const std::size_t steps = (x.shape()[0] + o.batch_size - 1) / o.batch_size;
    CallbackList<T> callbacks(o.callbacks, false, verbose != 0, this,
                              CallbackParams{ verbose, 1, static_cast<std::int64_t>(steps) });
    return run_evaluation(x, y, sw, o.batch_size, callbacks);
}

template <class T>
array_t<T> Model<T>::predict(const array_t<T>& x, const PredictOptions<T>& o)
{
    if (x.dimension() == 0)
        throw ValueError("predict: x needs a sample axis, got shape " + shape_str(shape_of(x)));
    // Keras refuses empty input too; without samples there is no output shape to return.
    if (x.shape()[0] == 0)
        throw ValueError("predict: x of shape " + shape_str(shape_of(x)) + " holds no samples; at least one is needed");
    if (o.batch_size == 0)
        throw ValueError("predict: batch_size must be >= 1");
    tune_allocator_once();
    const std::size_t n = x.shape()[0];
    const std::size_t steps = (n + o.batch_size - 1) / o.batch_size;
    const int verbose = resolve_verbose(o.verbose);
    CallbackList<T> callbacks(o.callbacks, false, verbose != 0, this,
                              CallbackParams{ verbose, 1, static_cast<std::int64_t>(steps) });
    NoGradGuard no_grad;
    Logs logs;
    callbacks.on_predict_begin(logs);
    array_t<T> out;
    std::size_t row = 0;
    for (std::size_t step = 0; step < steps; ++step) {
        const std::size_t b = step * o.batch_size, c = std::min(o.batch_size, n - b);
        Logs begin;
        callbacks.on_predict_batch_begin(static_cast<int>(step), begin);
        Tensor<T> yb = (*this)(Tensor<T>(gather_rows(x, nullptr, b, c)), false);
        if (step == 0) {
            shape_t s = yb.shape();
            if (s.empty() || s[0] != c)
                throw ShapeError("predict: the model's output of shape " + shape_str(s) +
                                 " has no batch axis of size " + std::to_string(c));
            row = yb.size() / c;
            s[0] = n;
            out = array_t<T>::from_shape(s);
        }
        if (yb.size() != row * c)
            throw ShapeError("predict: batch " + std::to_string(step) + " gave output shape " +
                             shape_str(yb.shape()) + ", unlike the first batch");
        std::copy(yb.data(), yb.data() + row * c, out.data() + b * row);
        Logs end;
        callbacks.on_predict_batch_end(static_cast<int>(step), end);
    }
    callbacks.on_predict_end(logs);
    return out;
}

// ---- summary -------------------------------------------------------------------------------------------

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
    if (g) {
        for (const auto& l : g->all_layers()) {
            // Keras shows the outputs of the layer's last call, and every call's inputs.
            const Node<T>* last = nullptr;
            std::string connected;
            for (const auto& n : l->inbound_nodes()) {
                if (!g->contains(n.get()))
                    continue;
                last = n.get();
                for (const auto& x : n->inputs)
                    connected += (connected.empty() ? "" : ", ") + x.layer()->name() + "[" +
                                 std::to_string(x.node_index()) + "][" + std::to_string(x.tensor_index()) + "]";
            }
            std::string out = "?";
            if (last) {
                out.clear();
                for (const auto& d : last->output_shapes)
                    out += (out.empty() ? "" : ", ") + dims_str(d);
                if (last->output_shapes.size() != 1)
                    out = "[" + out + "]";
            }
            const std::string params = l->built() ? with_commas(l->count_params()) : "0 (unbuilt)";
            std::vector<std::string> r{ l->name() + " (" + l->class_name() + ")", out, params };
            if (!sequential_like)
                r.push_back(connected.empty() ? "-" : connected);
            rows.push_back(r);
        }
    } else {
        dims_t shape = this->built() ? this->build_input_shape() : dims_t{};
        bool known = this->built();
        for (const auto& l : layers()) {
            std::string out = "?";
            if (known) {
                try {
                    shape = l->compute_output_shape(shape);
                    out = dims_str(shape);
                } catch (const Error&) {
                    known = false;
                }
            }
            const std::string params = l->built() ? with_commas(l->count_params()) : "0 (unbuilt)";
            rows.push_back({ l->name() + " (" + l->class_name() + ")", out, params });
        }
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

    auto count = [](const std::vector<Variable<T>>& vs) {
        std::size_t n = 0;
        for (const auto& v : vs)
            n += v.size();
        return n;
    };
    const std::size_t trainable = count(trainable_weights()), non_trainable = count(non_trainable_weights());
    std::size_t opt_count = 0;
    const bool opt_built = m_optimizer && !m_optimizer->variables().empty();
    if (opt_built)
        opt_count = count(m_optimizer->variables());
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
template array_t<float> class_weight_to_sample_weights(const array_t<float>&, const std::map<int, double>&);
template array_t<double> class_weight_to_sample_weights(const array_t<double>&, const std::map<int, double>&);

} // namespace xtape
