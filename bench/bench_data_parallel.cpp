// The cost of data parallelism per step for the Fashion-MNIST MLP of examples/fashion_mnist.cpp
// (784-512-BN-ReLU-256-BN-ReLU-10, BatchNormalization(synchronized=True), Adam, global batch 128),
// on random data: the step time and, per step, the collective calls, the bytes they carried and the
// time spent in them (waiting for the slower rank included). Run at np 1 and np 2, 1 thread each:
//
//   OMP_NUM_THREADS=1 build/bench/bench_data_parallel
//   mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 build/bench/bench_data_parallel
//
// --model FILE.h5 times a Keras model instead (e.g. ../shared/keras-models/mlcommons-tiny/.../
// pretrainedResnet.h5), on random inputs of its input shape and labels of its last axis.
//
// --blocking sums the gradient buckets with blocking allreduces instead of overlapping them with
// the backward pass (Note [Overlapped gradient sums]), for an A/B of the two.
//
//   bench_data_parallel [--steps N] [--batch-size N] [--model FILE.h5] [--blocking]
#include "distributed/mpi.hpp"
#include "examples/fashion_mnist_common.hpp"
#include "framework/data_parallel.hpp"
#include "framework/process.hpp"
#include "saving/keras_h5.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace xtape;

namespace {

/// Per-step wall time and collective counters.
class StepTimer : public Callback<float> {
public:
    std::vector<double> ms, comm_ms;
    std::vector<std::size_t> calls, bytes;
    void on_train_batch_begin(int, Logs&) override
    {
        const Collective& c = collective();
        m_t0 = std::chrono::steady_clock::now();
        m_calls = c.calls();
        m_bytes = c.bytes();
        m_seconds = c.seconds();
    }
    void on_train_batch_end(int, Logs&) override
    {
        const Collective& c = collective();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - m_t0).count());
        comm_ms.push_back((c.seconds() - m_seconds) * 1e3);
        calls.push_back(c.calls() - m_calls);
        bytes.push_back(c.bytes() - m_bytes);
    }

private:
    std::chrono::steady_clock::time_point m_t0;
    std::size_t m_calls = 0, m_bytes = 0;
    double m_seconds = 0;
};

double quantile(std::vector<double> v, double q)
{
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    distributed::MpiGuard mpi(argc, argv);
    std::size_t steps = 60, batch = 128;
    std::string file;
    for (int i = 1; i < argc; ++i)
        if (!std::strcmp(argv[i], "--blocking"))
            set_overlapped_gradient_sums(false);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--blocking"))
            --i; // a flag without value
        else if (!std::strcmp(argv[i], "--steps"))
            steps = std::strtoul(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--batch-size"))
            batch = std::strtoul(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--model"))
            file = argv[i + 1];
    }
    set_random_seed(1);
    std::shared_ptr<Model<float>> model;
    if (file.empty())
        model = examples::fashion_mnist_mlp(/*synchronized_bn=*/true);
    else
        model = load_model<float>(file, /*compile=*/false);
    shape_t xs{ (steps + 5) * batch };
    std::size_t classes = 10;
    if (file.empty()) {
        xs.push_back(784);
    } else {
        for (std::size_t k = 1; k < model->input_shape().size(); ++k)
            xs.push_back(static_cast<std::size_t>(model->input_shape()[k]));
        classes = static_cast<std::size_t>(model->output_shape().back());
    }
    const std::size_t n = xs[0];
    array_t<float> x = array_t<float>::from_shape(xs);
    array_t<float> y = array_t<float>::from_shape({ n });
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (auto& v : x)
        v = u(gen);
    for (std::size_t i = 0; i < n; ++i)
        y(i) = static_cast<float>(i % classes);
    model->compile(std::make_shared<Adam<float>>(), "sparse_categorical_crossentropy", { "accuracy" });
    auto timer = std::make_shared<StepTimer>();
    FitOptions<float> fo;
    fo.batch_size = batch;
    fo.shuffle = false;
    fo.verbose = 0;
    fo.callbacks = { timer };
    model->fit(x, y, fo);
    // The first 5 steps warm up (allocator, OpenBLAS buffers, Adam's slots).
    const std::vector<double> ms(timer->ms.begin() + 5, timer->ms.end());
    const std::vector<double> cms(timer->comm_ms.begin() + 5, timer->comm_ms.end());
    const std::size_t params = model->count_params();
    std::size_t grad_bytes = 0;
    for (const auto& v : model->trainable_weights())
        grad_bytes += v.value().size() * sizeof(float);
    if (mpi.rank() == 0) {
        std::printf("bench_data_parallel: %s, %zu parameters, global batch %zu, %d process(es), %d thread(s) each, "
                    "%zu steps, %s gradient sums\n",
                    file.empty() ? "MLP 784-512-BN(sync)-ReLU-256-BN(sync)-ReLU-10" : file.c_str(), params, batch,
                    collective().size(), max_threads(), ms.size(), overlapped_gradient_sums() ? "overlapped" : "blocking");
        std::printf("  step time        median %.3f ms (p10 %.3f, p90 %.3f)\n", quantile(ms, 0.5), quantile(ms, 0.1),
                    quantile(ms, 0.9));
        std::printf("  in collectives   median %.3f ms (p10 %.3f, p90 %.3f) per step\n", quantile(cms, 0.5),
                    quantile(cms, 0.1), quantile(cms, 0.9));
        std::printf("  collective calls %zu per step, %zu bytes per step (gradients: %zu bytes)\n", timer->calls.back(),
                    timer->bytes.back(), grad_bytes);
    }
    return 0;
}
