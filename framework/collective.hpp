// The collective operations data-parallel training needs, as a small interface that framework/
// declares and distributed/ implements with MPI (the only folder that includes <mpi.h>).
//
// Note [Collective calls]: every rank calls the same collectives in the same order with the same
// counts, even a rank that holds no sample of a batch (its sums are zeros): that is what keeps
// MPI from hanging. The process-wide collective is a single-process no-op by default (size 1,
// sums and broadcasts leave the arrays as they are), so nothing changes without MPI; callers test
// `size() > 1` before doing any work for other ranks, so one process makes no call at all.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace xtape {

/// Sums and broadcasts across the processes of a data-parallel job; this base is the single-process no-op (Note [Collective calls]).
class Collective {
public:
    /// Destroys the collective (the MPI one finalizes nothing: MpiGuard does).
    virtual ~Collective() = default;
    /// This process's index in the job, 0 to size() - 1 (0 in one process).
    virtual int rank() const { return 0; }
    /// The number of processes in the job (1 without MPI).
    virtual int size() const { return 1; }
    /// requires: every rank calls with the same n.
    /// ensures:  data[i] = the sum over ranks of data[i], the same bits on every rank.
    virtual void allreduce_sum(double* data, std::size_t n) const { (void)data, (void)n; }
    /// The float form of allreduce_sum: data[i] = the sum over ranks, identical bits on every rank.
    virtual void allreduce_sum(float* data, std::size_t n) const { (void)data, (void)n; }
    /// ensures: data holds rank 0's values on every rank.
    virtual void broadcast(double* data, std::size_t n) const { (void)data, (void)n; }
    /// The float form of broadcast: data holds rank 0's values on every rank.
    virtual void broadcast(float* data, std::size_t n) const { (void)data, (void)n; }
    /// Nonblocking allreduce_sum (MPI_Iallreduce): starts the sum and returns at once, so that the
    /// caller computes while it travels (Note [Overlapped gradient sums] in data_parallel.hpp).
    /// requires: every rank starts the same sums in the same order; data stays alive and untouched
    ///           until wait_all().
    /// ensures:  after wait_all(), data[i] = the sum over ranks, as allreduce_sum gives it.
    virtual void start_allreduce_sum(double* data, std::size_t n) const { (void)data, (void)n; }
    /// The float form of start_allreduce_sum above.
    virtual void start_allreduce_sum(float* data, std::size_t n) const { (void)data, (void)n; }
    /// Lets started sums advance: Open MPI moves a nonblocking collective forward only inside MPI
    /// calls (MPI_Testall on the pending ones; cheap, never waits).
    virtual void progress() const {}
    /// Completes every started sum (MPI_Waitall).
    virtual void wait_all() const {}
    /// Ends every rank's process: prints "xtape: rank R: message" to stderr, then aborts the whole
    /// job with `code` (MPI_Abort), so that no rank waits forever in a collective. Callers use it
    /// only with size() > 1 (one process lets its exception propagate); the default exits.
    [[noreturn]] virtual void abort(const std::string& message, int code) const;
    /// Calls to allreduce_sum/broadcast/start_allreduce_sum, the bytes they carried and the seconds
    /// they took (waiting for the slowest rank included; for a started sum, the time in its start
    /// and in wait_all) since the start: what bench_data_parallel prints.
    std::size_t calls() const { return m_calls; }
    /// The bytes sent by allreduce_sum and broadcast since the start.
    std::size_t bytes() const { return m_bytes; }
    /// The seconds spent in allreduce_sum and broadcast since the start, waits included.
    double seconds() const { return m_seconds; }

protected:
    /// For implementations: records `calls` calls (one by default) carrying `bytes` that took `seconds`.
    void count(std::size_t bytes, double seconds, std::size_t calls = 1) const
    {
        m_calls += calls;
        m_bytes += bytes;
        m_seconds += seconds;
    }

private:
    mutable std::size_t m_calls = 0, m_bytes = 0;
    mutable double m_seconds = 0;
};

/// The process-wide collective (the single-process one unless distributed/ installed another).
const Collective& collective();
/// The process-wide collective as a shared pointer, for callers that keep it beyond a call.
std::shared_ptr<const Collective> collective_ptr();
/// Installs `c` (null: back to the single-process one). distributed::MpiGuard calls it.
void set_collective(std::shared_ptr<const Collective> c);

/// Note [Saving on rank 0]: a file every rank would write (save_model, save_weights) is written by
/// rank 0 alone; the others wait until it is complete (one allreduce of rank 0's status, which is
/// also the barrier), so that when the call returns on any rank the file exists. That is tf.keras's
/// multi-worker rule (model.save and ModelCheckpoint run on every worker; the non-chief ones write
/// to temporary paths that they delete, so only the chief's file remains), without the writes. Every
/// rank must call; when rank 0's write throws, rank 0 rethrows its exception and the others throw
/// IOError naming `what`, so no rank hangs. One process: write() runs, no call.
void write_on_rank_zero(const std::string& what, const std::function<void()>& write);

} // namespace xtape
