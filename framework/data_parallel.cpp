#include "framework/data_parallel.hpp"

#include "framework/errors.hpp"

#include <algorithm>

namespace xtape {

namespace {
bool& overlap_flag()
{
    static bool on = true;
    return on;
}
} // namespace

void set_overlapped_gradient_sums(bool on) { overlap_flag() = on; }
bool overlapped_gradient_sums() { return overlap_flag(); }

template <class T>
GradientBuckets<T>::GradientBuckets(const Collective& c, std::size_t bucket_bytes)
    : m_comm(c)
    , m_cap(bucket_bytes / sizeof(T))
    , m_overlap(overlapped_gradient_sums())
    , m_buckets(1)
{
}

template <class T>
GradientBuckets<T>::~GradientBuckets()
{
    // A backward that threw leaves started sums that MPI may still write into: their buffers stay
    // alive (leaked) rather than freed under it; the job is ending anyway (MPI_Abort in fit).
    if (m_open > 0 && !m_finished)
        new std::vector<Bucket>(std::move(m_buckets));
}

template <class T>
void GradientBuckets<T>::ready(std::size_t i, array_t<T>& g)
{
    if (m_overlap)
        m_comm.progress(); // Note [Overlapped gradient sums]
    if (!m_buckets[m_open].members.empty() && m_buckets[m_open].buf.size() + g.size() > m_cap)
        send();
    Bucket& b = m_buckets[m_open];
    b.buf.insert(b.buf.end(), g.begin(), g.end());
    b.members.emplace_back(i, &g);
    if (b.buf.size() >= m_cap)
        send();
}

template <class T>
void GradientBuckets<T>::send(std::vector<Tensor<T>>* grads)
{
    Bucket& b = m_buckets[m_open];
    if (b.members.empty())
        return;
    ++m_calls;
    if (m_overlap) {
        m_comm.start_allreduce_sum(b.buf.data(), b.buf.size());
        m_buckets.emplace_back(); // may move the vectors, not their heap buffers
        ++m_open;
        return;
    }
    // Blocking: the sums go back at once, into the tape's arrays while it runs, else into grads.
    m_comm.allreduce_sum(b.buf.data(), b.buf.size());
    copy_back(b, grads);
    b.buf.clear();
    b.members.clear();
}

template <class T>
void GradientBuckets<T>::finish(std::vector<Tensor<T>>& grads)
{
    send(&grads);
    if (!m_overlap)
        return;
    m_comm.wait_all();
    m_finished = true;
    for (Bucket& b : m_buckets)
        copy_back(b, &grads);
}

template <class T>
void GradientBuckets<T>::copy_back(Bucket& b, std::vector<Tensor<T>>* grads)
{
    std::size_t off = 0;
    for (auto& [i, g] : b.members) {
        T* dst = grads ? (*grads)[i].mutable_value().data() : g->data();
        const std::size_t n = grads ? (*grads)[i].size() : g->size();
        std::copy(b.buf.begin() + static_cast<std::ptrdiff_t>(off), b.buf.begin() + static_cast<std::ptrdiff_t>(off + n),
                  dst);
        off += n;
    }
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
