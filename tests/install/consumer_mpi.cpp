// Links xtape::distributed through the package (MPI found by xtapeConfig.cmake): under mpirun the
// ranks sum 1..N with the MPI collective; without mpirun it is one process. Light on purpose (no
// xtensor header), so that the install_consumer test stays fast.
#include "distributed/mpi.hpp"

#include <iostream>

int main(int argc, char** argv)
{
    xtape::distributed::MpiGuard mpi(argc, argv);
    double v[2] = { static_cast<double>(mpi.rank() + 1), 1.0 };
    xtape::collective().allreduce_sum(v, 2);
    const double n = v[1];
    if (n != mpi.size() || v[0] != n * (n + 1) / 2)
        return 1;
    if (mpi.rank() == 0)
        std::cout << "consumer_mpi: " << n << " process(es) summed with xtape::distributed\n";
    return 0;
}
