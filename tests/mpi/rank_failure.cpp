// A fit where rank 1 alone gets bad data (labels for fewer samples than x): rank 1 throws, prints
// its message and aborts the job; rank 0, waiting in a collective, is ended by mpirun. Run by
// check_rank_failure.cmake, which wants a non-zero exit, rank 1's message and no hang.
#include "distributed/mpi.hpp"
#include "framework/process.hpp"
#include "framework/sequential.hpp"
#include "layers/dense.hpp"

#include <iostream>

using namespace xtape;

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    distributed::MpiGuard mpi(argc, argv);
    auto m = std::make_shared<Sequential<float>>("fails");
    m->add(std::make_shared<Dense<float>>(2, "linear", true, "d"));
    m->build({ -1, 3 });
    m->compile("sgd", "mse");
    const std::size_t n = mpi.rank() == 1 ? 7 : 8; // the bad data, on rank 1 only
    array_t<float> x = xt::ones<float>({ std::size_t(8), std::size_t(3) });
    array_t<float> y = xt::ones<float>({ n, std::size_t(2) });
    FitOptions<float> fo;
    fo.epochs = 1000000; // would run for hours if the failure hung instead of ending the job
    fo.verbose = 0;
    m->fit(x, y, fo);
    std::cout << "rank " << mpi.rank() << " finished (it should not)" << std::endl;
    return 0;
}
