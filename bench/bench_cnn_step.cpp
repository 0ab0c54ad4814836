// Times one training step of issue 12's Fashion-MNIST CNN, the model of examples/fashion_mnist_cnn.cpp
// (28x28x1 -> Conv2D 32 3x3 same -> BN -> ReLU -> MaxPool -> Conv2D 64 3x3 same -> BN -> ReLU ->
// MaxPool -> Flatten -> Dense 128 -> BN -> ReLU -> Dropout -> Dense 10 softmax, sparse categorical
// cross-entropy, SGD, batch 128) and full epochs, for each split of the cores between xtape's
// OpenMP kernels and OpenBLAS: the table of bench_mlp_step (bench/step_bench.hpp says what it holds).
// bench/compare_cnn_step.sh runs it against bench_cnn_step_torch (the same network in libtorch) in
// alternating rounds.
//
//   bench_cnn_step [--steps N] [--epochs N] [--config omp,blas ...]
#include "bench/step_bench.hpp"
#include "examples/fashion_mnist_common.hpp"
#include "framework/process.hpp"

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    // Fewer default steps and epochs than the MLP: a step is ~20x longer.
    xtape::bench::StepBenchSpec spec{ "CNN 28x28x1-C32-BN-ReLU-P-C64-BN-ReLU-P-D128-BN-ReLU-Drop-D10",
                                      { 28, 28, 1 },
                                      [] { return xtape::examples::fashion_mnist_cnn(); } };
    spec.steps = 30;
    spec.epochs = 1;
    spec.warmup = 3;
    return xtape::bench::run_step_bench(argc, argv, spec);
}
