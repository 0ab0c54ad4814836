// Times one training step of the Fashion-MNIST MLP of examples/fashion_mnist.cpp (784 -> Dense 512
// -> BN -> ReLU -> Dense 256 -> BN -> ReLU -> Dense 10 softmax, sparse categorical cross-entropy,
// SGD, batch 128) and full epochs, for each split of the cores between xtape's OpenMP kernels and
// OpenBLAS (bench/step_bench.hpp says what the table holds).
//
// Reference on this machine (Debian's libtorch 1.13.1, same model): about 2.7 ms per step in
// its best configuration (torch 1 thread + OpenBLAS 2).
//
//   bench_mlp_step [--steps N] [--epochs N] [--config omp,blas ...]
#include "bench/step_bench.hpp"
#include "examples/fashion_mnist_common.hpp"
#include "framework/process.hpp"

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    return xtape::bench::run_step_bench(
        argc, argv, { "MLP 784-512-BN-ReLU-256-BN-ReLU-10", { 784 }, [] { return xtape::examples::fashion_mnist_mlp(); } });
}
