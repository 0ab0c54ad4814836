// GradientTape: while a tape is alive on a thread, differentiable ops append a record
// (inputs, output, backward function) to it; gradient() walks the records in reverse.
//
// Contract of a backward function (Note [Backward contract]):
//   requires: dy has the output's shape; dx[i] is either nullptr (input i needs no gradient,
//             so skip the work) or an array of input i's shape that already holds the gradient
//             accumulated so far.
//   ensures:  it ADDS its contribution to every non-null dx[i] (gradients accumulate, so a
//             value used twice gets both contributions) and touches nothing else.
//
// Note [First gradient contributions]: the first contribution to an input's gradient is most
// often the only one, and adding it to a zero-filled array costs a write pass (the fill) and a
// read of dx it does not need; for a memory-bound op such as batch normalization that is half as
// much traffic again as the op itself. So an op may record a FirstAwareBackwardFn instead: it also
// gets `first`, and first[i] true means dx[i] is UNINITIALIZED memory that no other contribution
// has reached yet, which it must overwrite completely (every element assigned, none read).
// first[i] is false, and dx[i] holds the sum so far, whenever input i already has an accumulator
// or appears more than once among the record's inputs (mul(x, x): both slots share one array, so
// both add into a zero-filled one). Later contributions from other records always add, so
// "gradients accumulate" holds whatever order the records come in. Ops that do not care keep the
// two-argument BackwardFn and get zero-filled arrays as before.
#pragma once

#include "framework/errors.hpp"
#include "framework/parallel.hpp"
#include "framework/tensor.hpp"

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace xtape {

template <class T>
using BackwardFn = std::function<void(const array_t<T>& dy, const std::vector<array_t<T>*>& dx)>;

/// A backward that may overwrite a first contribution (Note [First gradient contributions]).
template <class T>
using FirstAwareBackwardFn =
    std::function<void(const array_t<T>& dy, const std::vector<array_t<T>*>& dx, const std::vector<bool>& first)>;

/// What gradient() returns for a source the target does not depend on.
enum class Unconnected { zero, error };

template <class T>
class GradientTape;

namespace detail {
template <class T>
std::vector<GradientTape<T>*>& active_tapes()
{
    thread_local std::vector<GradientTape<T>*> tapes;
    return tapes;
}
inline int& no_grad_depth()
{
    thread_local int depth = 0;
    return depth;
}
} // namespace detail

/// While alive, nothing is recorded on this thread (inference, optimizer updates).
class NoGradGuard {
public:
    NoGradGuard() { ++detail::no_grad_depth(); }
    ~NoGradGuard() { --detail::no_grad_depth(); }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;
};

/// Records differentiable ops while alive on this thread; gradient() differentiates them (Keras's tf.GradientTape).
template <class T>
class GradientTape {
public:
    /// One recorded op: its inputs, its output and the function that pushes the output's gradient back.
    struct Record {
        const char* op;
        std::vector<std::shared_ptr<TensorNode<T>>> inputs;
        std::shared_ptr<TensorNode<T>> output;
        BackwardFn<T> backward;                    ///< exactly one of the two is set
        FirstAwareBackwardFn<T> backward_first;
    };

    /// A persistent tape allows several gradient() calls; otherwise the first one frees it.
    explicit GradientTape(bool persistent = false)
        : m_persistent(persistent)
    {
        detail::active_tapes<T>().push_back(this);
    }
    ~GradientTape() { stop_recording(); }
    GradientTape(const GradientTape&) = delete;
    GradientTape& operator=(const GradientTape&) = delete;

    /// Ends recording early (the tape can still compute gradients).
    void stop_recording()
    {
        auto& v = detail::active_tapes<T>();
        for (auto it = v.begin(); it != v.end(); ++it)
            if (*it == this) {
                v.erase(it);
                break;
            }
    }

    /// Makes ops on `t` record, as for a trainable variable.
    void watch(const Tensor<T>& t)
    {
        m_watched.insert(t.node());
        m_keep.push_back(t.node_ptr());
    }

    /// Whether ops on `n` must record: a trainable variable, a watched tensor or an output of a recorded op.
    bool tracks(const TensorNode<T>* n) const
    {
        return n->trainable_variable || m_watched.count(n) || m_produced.count(n);
    }

    /// Appends an op (called by the ops themselves).
    void record(const char* op, std::vector<std::shared_ptr<TensorNode<T>>> inputs,
                std::shared_ptr<TensorNode<T>> output, BackwardFn<T> backward)
    {
        m_produced.insert(output.get());
        m_records.push_back(Record{ op, std::move(inputs), std::move(output), std::move(backward), nullptr });
    }
    /// Appends an op whose backward may overwrite a first contribution (Note [First gradient contributions]).
    void record(const char* op, std::vector<std::shared_ptr<TensorNode<T>>> inputs,
                std::shared_ptr<TensorNode<T>> output, FirstAwareBackwardFn<T> backward)
    {
        m_produced.insert(output.get());
        m_records.push_back(Record{ op, std::move(inputs), std::move(output), nullptr, std::move(backward) });
    }

    /// The number of recorded ops.
    std::size_t size() const { return m_records.size(); }

    /// f(i, g) is called during gradient() as soon as source i's gradient g is final (every record
    /// that uses the source has run), in the order the backward pass completes them; f may change
    /// g in place. Data-parallel training sums gradients bucket by bucket while the rest of the
    /// backward runs (framework/data_parallel.hpp). Sources without a gradient are not reported.
    void on_gradient_ready(std::function<void(std::size_t, array_t<T>&)> f) { m_on_ready = std::move(f); }

    /// Gradient of `target` with respect to each source. A non-scalar target is treated as
    /// the sum of its elements unless `output_gradient` (same shape as target) is given.
    std::vector<Tensor<T>> gradient(const Tensor<T>& target, const std::vector<Tensor<T>>& sources,
                                    const Tensor<T>& output_gradient = Tensor<T>(),
                                    Unconnected unconnected = Unconnected::zero);

    /// Convenience for variables (trainable weights of a model).
    std::vector<Tensor<T>> gradient(const Tensor<T>& target, const std::vector<Variable<T>>& sources)
    {
        std::vector<Tensor<T>> s;
        s.reserve(sources.size());
        for (const auto& v : sources)
            s.push_back(v.tensor());
        return gradient(target, s);
    }

private:
    bool m_persistent;
    bool m_used = false;
    std::vector<Record> m_records;
    std::unordered_set<const TensorNode<T>*> m_watched;
    std::unordered_set<const TensorNode<T>*> m_produced;
    std::vector<std::shared_ptr<TensorNode<T>>> m_keep;
    std::function<void(std::size_t, array_t<T>&)> m_on_ready;
};

/// True when some active tape tracks one of the inputs, i.e. the op must record.
template <class T>
bool should_record(std::initializer_list<const Tensor<T>*> inputs)
{
    if (detail::no_grad_depth() > 0)
        return false;
    for (auto* tape : detail::active_tapes<T>())
        for (auto* in : inputs)
            if (in->defined() && tape->tracks(in->node()))
                return true;
    return false;
}

template <class T>
bool should_record(const std::vector<Tensor<T>>& inputs)
{
    if (detail::no_grad_depth() > 0)
        return false;
    for (auto* tape : detail::active_tapes<T>())
        for (auto& in : inputs)
            if (in.defined() && tape->tracks(in.node()))
                return true;
    return false;
}

namespace detail {
/// Records on every active tape that tracks one of the inputs; the last one gets the function
/// itself, the others copies (a closure may own large saved state).
template <class T, class Fn>
void record_on_tapes(const char* op, const std::vector<Tensor<T>>& inputs, const Tensor<T>& output, Fn backward)
{
    if (detail::no_grad_depth() > 0)
        return;
    auto tracked = [&](GradientTape<T>* tape) {
        for (auto& in : inputs)
            if (in.defined() && tape->tracks(in.node()))
                return true;
        return false;
    };
    auto& tapes = detail::active_tapes<T>();
    std::size_t last = tapes.size();
    for (std::size_t k = 0; k < tapes.size(); ++k)
        if (tracked(tapes[k]))
            last = k;
    for (std::size_t k = 0; k < tapes.size() && k <= last; ++k) {
        if (k < last && !tracked(tapes[k]))
            continue;
        std::vector<std::shared_ptr<TensorNode<T>>> nodes;
        nodes.reserve(inputs.size());
        for (auto& in : inputs)
            nodes.push_back(in.node_ptr());
        if (k == last)
            tapes[k]->record(op, std::move(nodes), output.node_ptr(), std::move(backward));
        else
            tapes[k]->record(op, std::move(nodes), output.node_ptr(), Fn(backward));
    }
}
} // namespace detail

/// Records `output = op(inputs)` on every active tape that tracks one of the inputs.
template <class T>
void record_op(const char* op, const std::vector<Tensor<T>>& inputs, const Tensor<T>& output,
               BackwardFn<T> backward)
{
    detail::record_on_tapes<T>(op, inputs, output, std::move(backward));
}

/// The same for a backward that overwrites first contributions (Note [First gradient contributions]).
template <class T>
void record_op(const char* op, const std::vector<Tensor<T>>& inputs, const Tensor<T>& output,
               FirstAwareBackwardFn<T> backward)
{
    detail::record_on_tapes<T>(op, inputs, output, std::move(backward));
}

template <class T>
std::vector<Tensor<T>> GradientTape<T>::gradient(const Tensor<T>& target, const std::vector<Tensor<T>>& sources,
                                                 const Tensor<T>& output_gradient, Unconnected unconnected)
{
    if (!target.defined())
        throw ValueError("GradientTape.gradient: the target is an empty tensor");
    if (m_used && !m_persistent)
        throw RuntimeError("GradientTape.gradient can only be called once on a non-persistent tape; "
                           "create the tape with persistent=true to call it again");
    m_used = true;
    if (output_gradient.defined() && output_gradient.shape() != target.shape())
        throw ShapeError("GradientTape.gradient: output_gradient has shape " +
                         shape_str(output_gradient.shape()) + " but the target has shape " +
                         shape_str(target.shape()));

    const TensorNode<T>* tnode = target.node();
    bool target_is_source = false;
    for (auto& s : sources) {
        if (!s.defined())
            throw ValueError("GradientTape.gradient: a source is an empty tensor");
        target_is_source = target_is_source || s.node() == tnode;
    }
    if (m_records.empty() && !target_is_source)
        throw RuntimeError("GradientTape.gradient: the tape recorded no operations (were the sources "
                           "watched, or trainable variables, while the tape was active?)");

    // Forward pass over the records: which nodes lie on a path from a source?
    std::unordered_set<const TensorNode<T>*> needs;
    for (auto& s : sources)
        needs.insert(s.node());
    for (auto& r : m_records)
        for (auto& in : r.inputs)
            if (needs.count(in.get())) {
                needs.insert(r.output.get());
                break;
            }

    std::unordered_map<const TensorNode<T>*, array_t<T>> grads;
    // A given output gradient is read in place rather than copied (it can be as large as an
    // activation); it is copied only when the target is also a source and so must be returned.
    const array_t<T>* borrowed_seed = nullptr;
    if (output_gradient.defined() && !target_is_source) {
        borrowed_seed = &output_gradient.value();
    } else {
        array_t<T> seed = output_gradient.defined() ? output_gradient.value()
                                                    : array_t<T>(array_t<T>::from_shape(target.value().shape()));
        if (!output_gradient.defined())
            seed.fill(T(1));
        grads.emplace(tnode, std::move(seed));
    }

    // on_gradient_ready: a source is final once the first record (in forward order) that uses it
    // has run; `ready` lists (first use, source), latest first use first.
    std::vector<std::pair<std::size_t, std::size_t>> ready;
    if (m_on_ready) {
        std::unordered_map<const TensorNode<T>*, std::size_t> first_use;
        for (std::size_t k = 0; k < m_records.size(); ++k)
            for (auto& in : m_records[k].inputs)
                first_use.emplace(in.get(), k);
        for (std::size_t i = 0; i < sources.size(); ++i) {
            bool seen = false;
            for (std::size_t j = 0; j < i && !seen; ++j)
                seen = sources[j].node() == sources[i].node();
            auto f = first_use.find(sources[i].node());
            if (!seen && f != first_use.end())
                ready.emplace_back(f->second, i);
        }
        std::sort(ready.begin(), ready.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    }
    std::size_t next_ready = 0;
    auto report_ready = [&](std::size_t after) { // every source first used at or after `after`
        for (; next_ready < ready.size() && ready[next_ready].first >= after; ++next_ready) {
            auto g = grads.find(sources[ready[next_ready].second].node());
            if (g != grads.end())
                m_on_ready(ready[next_ready].second, g->second);
        }
    };

    std::vector<array_t<T>*> dx;
    std::vector<bool> first;
    for (auto it = m_records.rbegin(); it != m_records.rend(); ++it) {
        if (m_on_ready)
            report_ready(static_cast<std::size_t>(m_records.rend() - it)); // records after this one ran
        Record& r = *it;
        if (!needs.count(r.output.get()))
            continue;
        const array_t<T>* g = nullptr;
        if (borrowed_seed && r.output.get() == tnode) {
            g = borrowed_seed;
        } else {
            auto found = grads.find(r.output.get());
            if (found == grads.end())
                continue;
            g = &found->second;
        }
        const bool may_overwrite = static_cast<bool>(r.backward_first);
        dx.assign(r.inputs.size(), nullptr);
        first.assign(r.inputs.size(), false);
        for (std::size_t i = 0; i < r.inputs.size(); ++i) {
            const TensorNode<T>* in = r.inputs[i].get();
            if (!needs.count(in))
                continue;
            auto slot = grads.find(in);
            if (slot == grads.end()) {
                bool repeated = false;
                for (std::size_t j = i + 1; j < r.inputs.size() && !repeated; ++j)
                    repeated = r.inputs[j].get() == in;
                array_t<T> acc = array_t<T>::from_shape(r.inputs[i]->value.shape());
                if (may_overwrite && !repeated) {
                    first[i] = true; // Note [First gradient contributions]
                } else {
                    // Backward functions add into dx, so a new accumulator starts at zero; the fill is
                    // parallel because weight gradients are large (784x512 floats in the MLP).
                    T* zp = acc.data();
                    parallel_for(acc.size(), [zp](std::size_t b, std::size_t e) { std::fill(zp + b, zp + e, T(0)); });
                }
                slot = grads.emplace(in, std::move(acc)).first;
            }
            dx[i] = &slot->second;
        }
        // References into an unordered_map survive rehashing, so dy stays valid.
        if (may_overwrite)
            r.backward_first(*g, dx, first);
        else
            r.backward(*g, dx);
    }

    if (m_on_ready)
        report_ready(0);

    std::vector<Tensor<T>> result;
    result.reserve(sources.size());
    for (std::size_t i = 0; i < sources.size(); ++i) {
        const Tensor<T>& s = sources[i];
        auto g = grads.find(s.node());
        bool listed_again = false;
        for (std::size_t j = i + 1; j < sources.size() && !listed_again; ++j)
            listed_again = sources[j].node() == s.node();
        if (g != grads.end() && !listed_again)
            result.emplace_back(std::move(g->second)); // the map is local: hand the array over
        else if (g != grads.end())
            result.emplace_back(g->second);
        else if (unconnected == Unconnected::zero)
            result.push_back(Tensor<T>::zeros(s.shape()));
        else
            throw ValueError("GradientTape.gradient: the target does not depend on a source of shape " +
                             shape_str(s.shape()));
    }
    if (!m_persistent) {
        m_records.clear();
        m_records.shrink_to_fit();
        m_produced.clear();
        m_keep.clear();
    }
    return result;
}

} // namespace xtape
