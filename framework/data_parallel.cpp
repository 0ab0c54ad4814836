#include "framework/data_parallel.hpp"

#include "framework/errors.hpp"

#include <algorithm>

namespace xtape {

template <class T>
void GradientBuckets<T>::ready(std::size_t i, array_t<T>& g)
{
    if (!m_members.empty() && m_buf.size() + g.size() > m_cap)
        flush(nullptr);
    m_buf.insert(m_buf.end(), g.begin(), g.end());
    m_members.emplace_back(i, &g);
    if (m_buf.size() >= m_cap)
        flush(nullptr);
}

template <class T>
void GradientBuckets<T>::finish(std::vector<Tensor<T>>& grads)
{
    flush(&grads);
}

template <class T>
void GradientBuckets<T>::flush(std::vector<Tensor<T>>* grads)
{
    if (m_members.empty())
        return;
    m_comm.allreduce_sum(m_buf.data(), m_buf.size());
    ++m_calls;
    std::size_t off = 0;
    for (auto& [i, g] : m_members) {
        T* dst = grads ? (*grads)[i].mutable_value().data() : g->data();
        const std::size_t n = grads ? (*grads)[i].size() : g->size();
        std::copy(m_buf.begin() + static_cast<std::ptrdiff_t>(off), m_buf.begin() + static_cast<std::ptrdiff_t>(off + n),
                  dst);
        off += n;
    }
    m_buf.clear();
    m_members.clear();
}

template <class T>
void broadcast_variables(const std::vector<Variable<T>>& vars, const Collective& c)
{
    std::vector<T> buf;
    for (const auto& v : vars)
        buf.insert(buf.end(), v.value().begin(), v.value().end());
    c.broadcast(buf.data(), buf.size());
    std::size_t off = 0;
    for (auto v : vars) {
        array_t<T>& a = v.mutable_value();
        std::copy(buf.begin() + static_cast<std::ptrdiff_t>(off),
                  buf.begin() + static_cast<std::ptrdiff_t>(off + a.size()), a.begin());
        off += a.size();
    }
}

template <class T>
void MetricReducer<T>::begin(const std::vector<Metric<T>*>& metrics)
{
    m_saved.clear();
    for (Metric<T>* m : metrics) {
        std::vector<double> s;
        for (auto [p, n] : m->additive_state())
            s.insert(s.end(), p, p + n);
        m_saved.emplace_back(m, std::move(s));
        m->reset_state();
    }
}

template <class T>
void MetricReducer<T>::pack(const std::vector<Metric<T>*>& metrics, std::vector<double>& buf) const
{
    for (Metric<T>* m : metrics) {
        const auto state = m->additive_state();
        if (state.empty())
            throw NotImplementedError("metric '" + m->name() + "' (" + m->class_name() +
                                      ") has no additive state, so it cannot be summed across processes in "
                                      "data-parallel training");
        for (auto [p, n] : state)
            buf.insert(buf.end(), p, p + n);
    }
}

template <class T>
void MetricReducer<T>::unpack(const std::vector<Metric<T>*>& metrics, const std::vector<double>& buf,
                              std::size_t offset) const
{
    for (Metric<T>* m : metrics) {
        const std::vector<double>* saved = nullptr;
        for (const auto& s : m_saved)
            if (s.first == m)
                saved = &s.second;
        std::size_t k = 0;
        for (auto [p, n] : m->additive_state())
            for (std::size_t i = 0; i < n; ++i, ++k)
                p[i] = buf[offset++] + (saved && k < saved->size() ? (*saved)[k] : 0.0);
    }
}

#define XTAPE_INSTANTIATE(T)                                                                                       \
    template class GradientBuckets<T>;                                                                             \
    template void broadcast_variables<T>(const std::vector<Variable<T>>&, const Collective&);                      \
    template class MetricReducer<T>;
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
