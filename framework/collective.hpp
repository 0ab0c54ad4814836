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
    /// Ends every rank's process: prints "xtape: rank R: message" to stderr, then aborts the whole
    /// job with `code` (MPI_Abort), so that no rank waits forever in a collective. Callers use it
    /// only with size() > 1 (one process lets its exception propagate); the default exits.
    [[noreturn]] virtual void abort(const std::string& message, int code) const;
    /// Calls to allreduce_sum/broadcast, the bytes they carried and the seconds they took (waiting
    /// for the slowest rank included) since the start: what bench_data_parallel prints.
    std::size_t calls() const { return m_calls; }
    /// The bytes sent by allreduce_sum and broadcast since the start.
    std::size_t bytes() const { return m_bytes; }
    /// The seconds spent in allreduce_sum and broadcast since the start, waits included.
    double seconds() const { return m_seconds; }

protected:
    /// For implementations: records one call of `bytes` that took `seconds`.
    void count(std::size_t bytes, double seconds) const
    {
        ++m_calls;
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

} // namespace xtape
