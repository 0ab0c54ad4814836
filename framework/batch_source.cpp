#include "framework/batch_source.hpp"

#include "framework/collective.hpp"
#include "framework/errors.hpp"
#include "framework/random.hpp"

#include <algorithm>

namespace xtape {
namespace {

/// Rows idx[0..count) of a (or begin..begin+count when idx is null), as a new array.
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

} // namespace

template <class T>
array_t<T> take_rows(const array_t<T>& a, std::size_t begin, std::size_t count)
{
    return gather_rows(a, nullptr, begin, count);
}

template <class T>
ArrayBatches<T>::ArrayBatches(std::vector<const array_t<T>*> x, std::vector<const array_t<T>*> y,
                              std::vector<const array_t<T>*> sample_weight, std::size_t batch_size, bool shuffle,
                              std::size_t begin, std::optional<std::size_t> end)
    : m_x(std::move(x))
    , m_y(std::move(y))
    , m_sample_weight(std::move(sample_weight))
    , m_batch_size(batch_size)
    , m_begin(begin)
    , m_count(0)
    , m_shuffle(shuffle)
{
    if (batch_size == 0)
        throw ValueError("ArrayBatches: batch_size must be >= 1");
    if (m_x.empty() || !m_x[0])
        throw ValueError("ArrayBatches: no input array");
    if (m_x[0]->dimension() == 0)
        throw ValueError("ArrayBatches: x needs a sample axis, got shape " + shape_str(shape_of(*m_x[0])));
    const std::size_t stop = end ? *end : m_x[0]->shape()[0];
    if (begin > stop)
        throw ValueError("ArrayBatches: rows [" + std::to_string(begin) + ", " + std::to_string(stop) + ") are empty");
    for (const auto* v : { &m_x, &m_y, &m_sample_weight })
        for (const array_t<T>* a : *v)
            if (a && (a->dimension() == 0 || a->shape()[0] < stop))
                throw ValueError("ArrayBatches: an array of shape " + shape_str(shape_of(*a)) + " has fewer than " +
                                 std::to_string(stop) + " rows");
    m_count = stop - begin;
}

template <class T>
Batch<T> ArrayBatches<T>::get_batch(std::size_t index)
{
    if (index >= num_batches())
        throw ValueError("ArrayBatches: batch " + std::to_string(index) + " of " + std::to_string(num_batches()));
    const std::size_t b = index * m_batch_size, c = std::min(m_batch_size, m_count - b);
    // Row numbers of the arrays: a slice of the permutation, or a contiguous range.
    std::vector<std::size_t> rows;
    if (!m_order.empty()) {
        rows.resize(c);
        for (std::size_t i = 0; i < c; ++i)
            rows[i] = m_begin + m_order[b + i];
    }
    auto take = [&](const array_t<T>& a) { return gather_rows(a, rows.empty() ? nullptr : rows.data(), m_begin + b, c); };
    Batch<T> out;
    for (const array_t<T>* a : m_x)
        out.x.push_back(take(*a));
    for (const array_t<T>* a : m_y)
        out.y.push_back(take(*a));
    for (const array_t<T>* a : m_sample_weight)
        out.sample_weight.push_back(a ? std::optional<array_t<T>>(take(*a)) : std::nullopt);
    return out;
}

template <class T>
void ArrayBatches<T>::on_epoch_begin()
{
    if (!m_shuffle)
        return;
    m_order = random_permutation(m_count, global_rng());
    const Collective& comm = collective();
    if (comm.size() > 1) { // rank 0's order, whatever each rank's generator holds
        std::vector<double> v(m_order.begin(), m_order.end());
        comm.broadcast(v.data(), v.size());
        std::transform(v.begin(), v.end(), m_order.begin(), [](double i) { return static_cast<std::size_t>(i); });
    }
}

template <class T>
void ArrayBatches<T>::set_epoch_order(const std::vector<std::size_t>& order)
{
    if (!order.empty()) {
        std::vector<char> seen(m_count, 0);
        if (order.size() != m_count)
            throw ValueError("cannot resume with an order of " + std::to_string(order.size()) + " samples: the data has " +
                             std::to_string(m_count) + " training samples");
        for (std::size_t i : order) {
            if (i >= m_count || seen[i])
                throw ValueError("cannot resume with a sample order that is not a permutation of the " +
                                 std::to_string(m_count) + " training samples");
            seen[i] = 1;
        }
    }
    m_order = order;
}

template class ArrayBatches<float>;
template class ArrayBatches<double>;
template array_t<float> take_rows(const array_t<float>&, std::size_t, std::size_t);
template array_t<double> take_rows(const array_t<double>&, std::size_t, std::size_t);

} // namespace xtape
