// examples/fashion_mnist.cpp trained data parallel: the same script plus one line (the MPI guard),
// and BatchNormalization(synchronized=True) so that the statistics are those of the global batch.
//
//   mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 \
//       build/examples/fashion_mnist_data_parallel --epochs 3 --batch-size 128
//
// Every rank loads the data; each global batch of --batch-size samples is split across the ranks
// (framework/data_parallel.hpp); rank 0 alone prints the progress and writes the CSV log.
#include "distributed/mpi.hpp"
#include "examples/fashion_mnist_common.hpp"
#include "framework/process.hpp"

#include <cstdio>
#include <exception>

using namespace xtape;

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    distributed::MpiGuard mpi(argc, argv); // the one line: data parallel under mpirun
    if (mpi.rank() != 0 && !std::freopen("/dev/null", "w", stdout)) // the script's printf: rank 0's
        return 1;
    const examples::FashionMnistArgs args =
      examples::parse_fashion_mnist_args(argc, argv, "fashion_mnist_data_parallel_log.csv");
    try {
        const examples::FashionMnist data = examples::prepare_fashion_mnist(args, /*flat=*/true);
        const auto model = examples::fashion_mnist_mlp(/*synchronized_bn=*/true);
        std::printf("%d process(es), global batch %zu\n", mpi.size(), args.batch_size);
        examples::compile_fit_evaluate(*model, data, args);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fashion_mnist_data_parallel: %s\n", e.what());
        return 1;
    }
}
