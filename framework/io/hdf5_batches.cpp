#include "framework/io/hdf5_batches.hpp"

#include "framework/collective.hpp"
#include "framework/errors.hpp"
#include "framework/limits.hpp"

#include <algorithm>
#include <map>
#include <mutex>

namespace xtape::io {

template <class T>
template <class F>
auto H5Batches<T>::locked(F&& f)
{
    std::lock_guard<std::recursive_mutex> lock(hdf5_mutex());
    return f();
}

namespace {
std::string describe(const H5DatasetRef& r, const shape_t& s)
{
    return r.file + " '" + r.dataset + "' " + shape_str(s);
}

/// The seed of the shuffle: the given one, or one from the global generator (rank 0's).
std::uint64_t shuffle_seed(const std::optional<std::uint64_t>& seed)
{
    if (seed)
        return *seed;
    // 53 bits, so that the broadcast (of doubles) carries it exactly.
    double s = static_cast<double>(next_seed() >> 11);
    const Collective& comm = collective();
    if (comm.size() > 1)
        comm.broadcast(&s, 1);
    return static_cast<std::uint64_t>(s);
}
} // namespace

void require_dataset(const H5Group& group, const std::string& file, const std::string& dataset)
{
    if (group.has_dataset(dataset))
        return;
    std::string names;
    for (const auto& n : group.member_names())
        names += (names.empty() ? "" : ", ") + n;
    throw IOError(file + ": no dataset '" + dataset + "' (the file's root holds: " +
                  (names.empty() ? std::string("nothing") : names) + ")");
}

template <class T>
std::vector<typename H5Batches<T>::Dataset> H5Batches<T>::open(const std::vector<H5DatasetRef>& refs, const char* what)
{
    // Called holding the lock; one open file per path.
    std::map<std::string, H5Group> roots;
    std::vector<Dataset> out;
    for (const auto& r : refs) {
        auto it = roots.find(r.file);
        if (it == roots.end())
            it = roots.emplace(r.file, H5File::open_read(r.file).root()).first;
        const H5Group& root = it->second;
        require_dataset(root, r.file, r.dataset);
        const shape_t shape = root.dataset_shape(r.dataset); // IOError "file: no dataset 'x'"
        const std::string dtype = root.dataset_dtype(r.dataset);
        if (dtype == "string" || dtype == "other")
            throw IOError(r.file + ": dataset '" + r.dataset + "' (" + what + ") holds " + dtype +
                          ", expected integer or floating-point numbers");
        if (shape.empty())
            throw ValueError(r.file + ": dataset '" + r.dataset + "' (" + what +
                             ") is a scalar; it needs a sample axis (its first)");
        out.push_back(Dataset{ r, root, shape });
    }
    return out;
}

template <class T>
H5Batches<T>::H5Batches(std::vector<H5DatasetRef> x, std::vector<H5DatasetRef> y,
                        std::vector<H5DatasetRef> sample_weight, H5BatchOptions options)
    : m_options(std::move(options))
{
    if (m_options.batch_size == 0)
        throw ValueError("H5Batches: batch_size must be >= 1");
    if (x.empty())
        throw ValueError("H5Batches: no input dataset given");
    locked([&] {
        // Opened into locals: on an error they close here, holding the lock.
        auto dx = open(x, "inputs"), dy = open(y, "targets"), dw = open(sample_weight, "sample weights");
        const std::size_t rows = dx[0].shape[0];
        std::string all;
        bool same = true;
        for (const auto* v : { &dx, &dy, &dw })
            for (const auto& d : *v) {
                all += (all.empty() ? "" : ", ") + describe(d.ref, d.shape);
                same = same && d.shape[0] == rows;
            }
        if (!same)
            throw ValueError("H5Batches: the datasets hold different numbers of samples (their first axis): " + all +
                             "; every input, target and sample weight needs one row per sample");
        const std::size_t end = m_options.end ? *m_options.end : rows;
        if (end > rows || m_options.begin > end)
            throw ValueError("H5Batches: rows [" + std::to_string(m_options.begin) + ", " + std::to_string(end) +
                             ") are not within the " + std::to_string(rows) + " rows of " + all);
        if (end == m_options.begin)
            throw ValueError(rows == 0 ? dx[0].ref.file + ": dataset '" + dx[0].ref.dataset + "' of shape " +
                                             shape_str(dx[0].shape) + " holds no samples; at least one is needed"
                                       : "H5Batches: rows [" + std::to_string(m_options.begin) + ", " +
                                             std::to_string(end) + ") of " + all +
                                             " hold no samples; at least one is needed");
        // A batch's arrays are allocated at every step: bound them once here (Note [Allocation limit]).
        for (const auto* v : { &dx, &dy, &dw })
            for (const auto& d : *v) {
                shape_t s = d.shape;
                s[0] = std::min(m_options.batch_size, end - m_options.begin);
                checked_size(s, d.ref.file + ": a batch of dataset '" + d.ref.dataset + "'");
            }
        m_count = end - m_options.begin;
        m_x = std::move(dx);
        m_y = std::move(dy);
        m_sample_weight = std::move(dw);
        return 0;
    });
    m_rng.seed(shuffle_seed(m_options.seed));
    m_order.resize(num_batches());
    for (std::size_t i = 0; i < m_order.size(); ++i)
        m_order[i] = i;
}

template <class T>
H5Batches<T>::~H5Batches()
{
    drop_pending();
    locked([&] { // the groups close their files: HDF5 calls, so under the lock
        m_x.clear();
        m_y.clear();
        m_sample_weight.clear();
        return 0;
    });
}

template <class T>
void H5Batches<T>::drop_pending() noexcept
{
    if (!m_pending.valid())
        return;
    try {
        m_pending.get(); // a failed speculative read is reported when its batch is asked for
    } catch (...) {
    }
}

template <class T>
Batch<T> H5Batches<T>::read(std::size_t file_batch) const
{
    const std::size_t b = m_options.begin + file_batch * m_options.batch_size;
    const std::size_t c = std::min(m_options.batch_size, m_options.begin + m_count - b);
    return locked([&] {
        Batch<T> out;
        for (const auto& d : m_x)
            out.x.push_back(d.root.template read_dataset_rows<T>(d.ref.dataset, b, c));
        for (const auto& d : m_y)
            out.y.push_back(d.root.template read_dataset_rows<T>(d.ref.dataset, b, c));
        for (const auto& d : m_sample_weight)
            out.sample_weight.emplace_back(d.root.template read_dataset_rows<T>(d.ref.dataset, b, c));
        return out;
    });
}

template <class T>
Batch<T> H5Batches<T>::get_batch(std::size_t index)
{
    const std::size_t n = num_batches();
    if (index >= n)
        throw ValueError("H5Batches: batch " + std::to_string(index) + " asked for, but " + m_x[0].ref.file +
                         " gives " + std::to_string(n) + " batches");
    Batch<T> out;
    if (m_pending.valid() && m_pending_index == index) {
        out = m_pending.get(); // rethrows the read's error
        ++m_prefetched;
    } else {
        drop_pending();
        out = read(m_order[index]);
    }
    if (m_options.prefetch && index + 1 < n) {
        m_pending_index = index + 1;
        const std::size_t file_batch = m_order[index + 1];
        m_pending = std::async(std::launch::async, [this, file_batch] { return read(file_batch); });
    }
    return out;
}

template <class T>
void H5Batches<T>::on_epoch_begin()
{
    drop_pending(); // its batch belonged to the last epoch's order
    if (m_options.shuffle)
        m_order = random_permutation(num_batches(), m_rng);
}

template class H5Batches<float>;
template class H5Batches<double>;

} // namespace xtape::io
