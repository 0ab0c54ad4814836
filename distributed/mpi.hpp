// Data-parallel training on MPI: one line in a C++ program,
//
//   int main(int argc, char** argv) {
//       xtape::distributed::MpiGuard mpi(argc, argv); // MPI_Init ... MPI_Finalize
//       ... model.fit(x, y, options);                  // data parallel under mpirun -np N
//   }
//
// The guard initializes MPI (thread level FUNNELED: only the main thread calls MPI, OpenMP
// threads compute), installs the MPI collective as the process-wide one (framework/collective.hpp),
// and on destruction restores the single-process collective and finalizes MPI. Run as
//   mpirun -np 2 ./program            (in a container as root: --allow-run-as-root --oversubscribe)
// A program not started by mpirun (or srun) does not initialize MPI at all; with one process
// (no mpirun, or -np 1) everything runs exactly as without the guard.
#pragma once

#include "framework/collective.hpp"

namespace xtape::distributed {

/// True when a launcher (mpirun, srun) started this process.
bool launched_by_mpirun();

/// Initializes MPI for data-parallel training and installs its collective for the guard's lifetime (see the top of this file).
class MpiGuard {
public:
    /// requires: called once per process, before any other MPI use. Throws RuntimeError when MPI
    ///           cannot be initialized.
    MpiGuard(int& argc, char**& argv);
    /// The same without the program's arguments (MPI_Init with null argc/argv).
    MpiGuard();
    /// Restores the single-process collective and finalizes MPI if this guard initialized it.
    ~MpiGuard();
    /// Not copyable: one guard owns MPI's lifetime.
    MpiGuard(const MpiGuard&) = delete;
    /// Not assignable, for the same reason.
    MpiGuard& operator=(const MpiGuard&) = delete;
    /// This process's rank in MPI_COMM_WORLD (0 without mpirun).
    int rank() const;
    /// The number of processes in the job (1 without mpirun).
    int size() const;

private:
    void init(int* argc, char*** argv);
    bool m_active = false, m_finalize = false;
};

} // namespace xtape::distributed
