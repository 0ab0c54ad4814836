// The pieces of data-parallel training that the training loop uses when several processes run
// (framework/collective.hpp; the MPI collective is installed by distributed/mpi.hpp's MpiGuard).
//
// Note [Data-parallel training]: every rank holds the whole data set and the same model. Each
// global batch of B samples (the batch_size the user gave) is split contiguously: rank r of R takes
// samples [B r / R, B (r + 1) / R) of it, so shares differ by at most one and a rank may get none
// (it still runs the step, on an empty batch, and makes every collective call). A rank's loss is
// the compiled loss of its share times n_r / B, so the sum over ranks is the loss of the global
// batch (sum_over_batch_size divides by the count of the share; weights of samples and classes
// count as in one batch) and the SUM of the ranks' gradients is the gradient one process computes:
// gradients are summed with allreduce in buckets of whole weights as the backward pass finishes
// them (GradientBuckets). A rank without samples has a loss cut from the graph (Keras's
// divide_no_nan gives a constant 0), so it adds 0 * sum(outputs): its backward then runs through
// the same records and joins the synchronized batch norm calls of the others. Losses and
// metric states are summed too (one call per step), so every rank logs what one process would.
// Weights start as rank 0's (a broadcast before fit, evaluate and predict, which also covers a
// model loaded from a file), and stay identical because every rank applies the same gradients.
// train_on_batch, test_on_batch and predict_on_batch take their batch as the global batch and
// split it the same way (their first call on a model not yet synchronized broadcasts the weights).
#pragma once

#include "framework/collective.hpp"
#include "framework/metrics.hpp"
#include "framework/tensor.hpp"

#include <cstddef>
#include <vector>

namespace xtape {

/// Rank r's share [begin, end) of a batch of `count` samples (Note [Data-parallel training]).
struct Shard {
    std::size_t begin = 0, end = 0;
    /// The number of samples in the share (0 for a rank that gets none).
    std::size_t size() const { return end - begin; }
};
/// This rank's share of `count` samples: [count r / R, count (r + 1) / R).
inline Shard shard_of(std::size_t count, const Collective& c)
{
    const auto r = static_cast<std::size_t>(c.rank()), n = static_cast<std::size_t>(c.size());
    return Shard{ count * r / n, count * (r + 1) / n };
}

/// Sums gradients over ranks in buckets as the backward pass produces them (PyTorch DDP's
/// reducer): ready() copies a final gradient into the open bucket, and a bucket of about
/// `bucket_bytes` is sent at once, while the rest of the backward still has to run; finish() sends
/// the last bucket, waits for all of them and copies the sums into the gradients. Every rank's
/// tape completes the same gradients in the same order, so the calls match.
///
/// Note [Overlapped gradient sums]: a full bucket is started with a nonblocking allreduce
/// (Collective::start_allreduce_sum, MPI_Iallreduce) and only waited for in finish(), just before
/// the optimizer step, so the sums travel while the backward computes the next gradients; ready()
/// calls Collective::progress() so that Open MPI, which has no progress thread, moves them on. A
/// bucket's buffer is its own and stays untouched until the wait. The sums go to the tape's
/// gradients that finish() receives (the tape hands its arrays over when gradient() returns, so
/// nothing is written into them while it runs). set_overlapped_gradient_sums(false) makes every
/// bucket a blocking allreduce copied back at once (what bench_data_parallel --blocking compares).
template <class T>
/// Allreduces gradients in buckets as the backward pass finishes them (see the comment above).
class GradientBuckets {
public:
    /// Buckets of about `bucket_bytes` (1 MiB by default) over collective `c`, which must outlive this object.
    GradientBuckets(const Collective& c, std::size_t bucket_bytes = std::size_t(1) << 20);
    /// Waits for the sums still in flight (a backward that threw leaves some), so no buffer is freed under MPI.
    ~GradientBuckets();
    GradientBuckets(const GradientBuckets&) = delete;
    GradientBuckets& operator=(const GradientBuckets&) = delete;
    /// Source i's gradient g is final (GradientTape::on_gradient_ready).
    void ready(std::size_t i, array_t<T>& g);
    /// Sends the last bucket, waits for every bucket; the sums go to grads[i].
    void finish(std::vector<Tensor<T>>& grads);
    /// The number of allreduce calls made so far.
    std::size_t calls() const { return m_calls; }

private:
    struct Bucket {
        std::vector<T> buf;
        std::vector<std::pair<std::size_t, array_t<T>*>> members;
    };
    void send(std::vector<Tensor<T>>* grads = nullptr);
    void copy_back(Bucket& b, std::vector<Tensor<T>>* grads);
    const Collective& m_comm;
    std::size_t m_cap;
    bool m_overlap;
    std::vector<Bucket> m_buckets; ///< sent (and, overlapped, in flight), then the open one
    std::size_t m_open = 0;        ///< index of the open bucket
    bool m_finished = false;
    std::size_t m_calls = 0;
};

/// Whether GradientBuckets overlaps its sums with the backward pass (default true); process-wide.
void set_overlapped_gradient_sums(bool on);
bool overlapped_gradient_sums();

/// Rank 0's values of every variable on every rank (one call).
template <class T>
void broadcast_variables(const std::vector<Variable<T>>& vars, const Collective& c);

/// Snapshot of metric states, to sum each step's additions over ranks (Note [Data-parallel training]).
template <class T>
/// Sums each step's metric updates over ranks, so every rank's metrics hold the global batch's values.
class MetricReducer {
public:
    /// Saves the metrics' states and resets them, so that the next update holds this rank's share.
    void begin(const std::vector<Metric<T>*>& metrics);
    /// Appends the updates of `metrics` (the same, or their resolved form after the first batch)
    /// to `buf`; NotImplementedError for a metric without additive state.
    void pack(const std::vector<Metric<T>*>& metrics, std::vector<double>& buf) const;
    /// After the allreduce of `buf` from `offset`: state = saved state + summed update.
    void unpack(const std::vector<Metric<T>*>& metrics, const std::vector<double>& buf, std::size_t offset) const;

private:
    std::vector<std::pair<const Metric<T>*, std::vector<double>>> m_saved;
};

} // namespace xtape
