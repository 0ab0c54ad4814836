#include "distributed/mpi.hpp"

#include "framework/errors.hpp"

#include <mpi.h>

#include <cstdlib>
#include <iostream>
#include <vector>

namespace xtape::distributed {
namespace {

/// Note [Collective calls] in framework/collective.hpp. MPI_Allreduce on MPI_COMM_WORLD; Open MPI's
/// algorithms give every rank the same bits (each element is reduced along one tree or ring, then
/// copied), which the tests check through checksums of the weights on every rank.
class MpiCollective final : public Collective {
public:
    MpiCollective()
    {
        MPI_Comm_rank(MPI_COMM_WORLD, &m_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &m_size);
    }
    int rank() const override { return m_rank; }
    int size() const override { return m_size; }
    void allreduce_sum(double* data, std::size_t n) const override { reduce(data, n, MPI_DOUBLE); }
    void allreduce_sum(float* data, std::size_t n) const override { reduce(data, n, MPI_FLOAT); }
    void broadcast(double* data, std::size_t n) const override { bcast(data, n, MPI_DOUBLE); }
    void broadcast(float* data, std::size_t n) const override { bcast(data, n, MPI_FLOAT); }
    void start_allreduce_sum(double* data, std::size_t n) const override { start(data, n, MPI_DOUBLE); }
    void start_allreduce_sum(float* data, std::size_t n) const override { start(data, n, MPI_FLOAT); }
    void progress() const override
    {
        if (m_pending.empty())
            return;
        int done = 0;
        check(MPI_Testall(static_cast<int>(m_pending.size()), m_pending.data(), &done, MPI_STATUSES_IGNORE),
              "MPI_Testall", m_pending.size());
        if (done)
            m_pending.clear();
    }
    void wait_all() const override
    {
        if (m_pending.empty())
            return;
        const double t0 = MPI_Wtime();
        check(MPI_Waitall(static_cast<int>(m_pending.size()), m_pending.data(), MPI_STATUSES_IGNORE), "MPI_Waitall",
              m_pending.size());
        m_pending.clear();
        count(0, MPI_Wtime() - t0, 0); // the sums were counted when they started
    }
    [[noreturn]] void abort(const std::string& message, int code) const override
    {
        std::cerr << "xtape: rank " << m_rank << ": " << message << std::endl;
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code); // MPI_Abort does not return; this keeps [[noreturn]] honest
    }

private:
    template <class U>
    void reduce(U* data, std::size_t n, MPI_Datatype type) const
    {
        const double t0 = MPI_Wtime();
        for (std::size_t done = 0; done < n;) { // counts are int in MPI
            const int k = static_cast<int>(std::min<std::size_t>(n - done, 1u << 30));
            check(MPI_Allreduce(MPI_IN_PLACE, data + done, k, type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce", n);
            done += static_cast<std::size_t>(k);
        }
        count(n * sizeof(U), MPI_Wtime() - t0);
    }
    template <class U>
    void start(U* data, std::size_t n, MPI_Datatype type) const
    {
        const double t0 = MPI_Wtime();
        for (std::size_t done = 0; done < n;) {
            const int k = static_cast<int>(std::min<std::size_t>(n - done, 1u << 30));
            MPI_Request r = MPI_REQUEST_NULL;
            check(MPI_Iallreduce(MPI_IN_PLACE, data + done, k, type, MPI_SUM, MPI_COMM_WORLD, &r), "MPI_Iallreduce", n);
            m_pending.push_back(r);
            done += static_cast<std::size_t>(k);
        }
        count(n * sizeof(U), MPI_Wtime() - t0);
    }
    template <class U>
    void bcast(U* data, std::size_t n, MPI_Datatype type) const
    {
        const double t0 = MPI_Wtime();
        for (std::size_t done = 0; done < n;) {
            const int k = static_cast<int>(std::min<std::size_t>(n - done, 1u << 30));
            check(MPI_Bcast(data + done, k, type, 0, MPI_COMM_WORLD), "MPI_Bcast", n);
            done += static_cast<std::size_t>(k);
        }
        count(n * sizeof(U), MPI_Wtime() - t0);
    }
    static void check(int rc, const char* what, std::size_t n)
    {
        if (rc == MPI_SUCCESS)
            return;
        char text[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, text, &len);
        // A count that differs between ranks (MPI_ERR_TRUNCATE) means the ranks' calls diverged.
        throw RuntimeError(std::string(what) + " of " + std::to_string(n) + " values failed: " + std::string(text, len));
    }
    int m_rank = 0, m_size = 1;
    mutable std::vector<MPI_Request> m_pending; ///< started sums (main thread only: MPI_THREAD_FUNNELED)
};

} // namespace

MpiGuard::MpiGuard(int& argc, char**& argv) { init(&argc, &argv); }
MpiGuard::MpiGuard() { init(nullptr, nullptr); }

bool launched_by_mpirun()
{
    // Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMI/PMIx launchers (srun, hydra) set these.
    for (const char* v : { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK" })
        if (std::getenv(v))
            return true;
    return false;
}

void MpiGuard::init(int* argc, char*** argv)
{
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized && !launched_by_mpirun())
        return; // one process: no MPI at all (Open MPI's singleton start costs time and may warn)
    if (!initialized) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            throw RuntimeError("MpiGuard: MPI_Init_thread failed");
        m_finalize = true;
    }
    // Errors come back as codes (turned into exceptions) instead of aborting inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    set_collective(std::make_shared<MpiCollective>());
    m_active = true;
}

MpiGuard::~MpiGuard()
{
    if (!m_active)
        return;
    set_collective(nullptr);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (m_finalize && !finalized)
        MPI_Finalize();
}

int MpiGuard::rank() const { return collective().rank(); }
int MpiGuard::size() const { return collective().size(); }

} // namespace xtape::distributed
