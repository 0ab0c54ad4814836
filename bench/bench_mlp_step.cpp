// Times one training step of the Fashion-MNIST MLP (784 -> Dense 512 -> BN -> ReLU -> Dense 256
// -> BN -> ReLU -> Dense 10 softmax, sparse categorical cross-entropy, SGD, batch 128) and full
// epochs of 60,000 samples (469 steps, model.fit with shuffling), printing the median and the
// spread of each (steps: p10 and p90 of --steps steps; epochs: min and max of --epochs epochs),
// for each split of the 2 cores between xtape's OpenMP kernels and OpenBLAS's own threads.
// "omp,blas" = "2,1" is xtape's default
// (Note [OpenBLAS threads and kernels]): OpenBLAS single-threaded, each product split over the
// OpenMP team; "1,2" leaves the products to OpenBLAS's threads.
//
// Reference on this machine (Debian's libtorch 1.13.1, same model): about 2.7 ms per step in
// its best configuration (torch 1 thread + OpenBLAS 2).
//
//   bench_mlp_step [--steps N] [--epochs N] [--config omp,blas ...]
#include "framework/blas_setup.hpp"
#include "framework/model.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/relu.hpp"
#include "optim/sgd.hpp"

#include <xtensor/xview.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace xtape;

namespace {

double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::shared_ptr<Sequential<float>> make_mlp()
{
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 784 }));
    m->add(std::make_shared<Dense<float>>(512));
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<ReLU<float>>());
    m->add(std::make_shared<Dense<float>>(256));
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<ReLU<float>>());
    m->add(std::make_shared<Dense<float>>(10, "softmax"));
    m->compile(std::make_shared<SGD<float>>(0.01), "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

struct Stats {
    double median, p10, p90, min, max;
};

Stats stats(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)]; };
    // The median of an even count is the mean of the middle two.
    const std::size_t h = v.size() / 2;
    const double median = v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
    return Stats{ median, at(0.1), at(0.9), v.front(), v.back() };
}

} // namespace

int main(int argc, char** argv)
{
    int steps = 200, epochs = 5;
    std::vector<std::pair<int, int>> configs{ { 1, 1 }, { 1, 2 }, { 2, 1 }, { 2, 2 } };
    bool custom = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--steps" && i + 1 < argc && (steps = std::atoi(argv[i + 1])) >= 1)
            ++i;
        else if (a == "--epochs" && i + 1 < argc)
            epochs = std::atoi(argv[++i]);
        else if (a == "--config" && i + 1 < argc) {
            int o = 0, b = 0;
            if (std::sscanf(argv[++i], "%d,%d", &o, &b) != 2) {
                std::fprintf(stderr, "--config expects omp,blas (e.g. 1,2)\n");
                return 2;
            }
            if (!custom)
                configs.clear();
            custom = true;
            configs.emplace_back(o, b);
        } else {
            std::fprintf(stderr, "usage: %s [--steps N] [--epochs N] [--config omp,blas ...]\n", argv[0]);
            return 2;
        }
    }

    // Random data of Fashion-MNIST's shape: timings do not depend on the values.
    const std::size_t batch = 128, n = epochs > 0 ? 60000 : batch;
    std::mt19937 gen(1);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    array_t<float> x = array_t<float>::from_shape({ n, 784 }), y = array_t<float>::from_shape({ n });
    for (auto& v : x)
        v = u(gen);
    for (std::size_t i = 0; i < n; ++i)
        y(i) = static_cast<float>(i % 10);
    const array_t<float> xb = xt::view(x, xt::range(0, batch), xt::all()), yb = xt::view(y, xt::range(0, batch));

    std::printf("MLP 784-512-BN-ReLU-256-BN-ReLU-10, SGD, batch %zu: %d timed steps, %d epochs of %zu samples; "
                "OpenBLAS kernels: %s\n",
                batch, steps, epochs, n, blas_core_name());
    std::printf("%-14s %28s %36s %14s\n", "omp,blas", "step ms: median [p10, p90]", "epoch s: median [min, max]",
                "ms/step (fit)");
    for (auto [omp, blas] : configs) {
        set_num_threads(omp);
        set_blas_threads(blas);
        set_random_seed(42);
        auto m = make_mlp();
        for (int i = 0; i < 20; ++i) // warm-up: page faults, thread pools, allocator
            m->train_on_batch(xb, yb);
        std::vector<double> t;
        for (int i = 0; i < steps; ++i) {
            const double t0 = now_ms();
            m->train_on_batch(xb, yb);
            t.push_back(now_ms() - t0);
        }
        const Stats s = stats(t);
        std::vector<double> e;
        FitOptions<float> fo;
        fo.batch_size = batch;
        fo.verbose = 0;
        for (int i = 0; i < epochs; ++i) {
            const double t0 = now_ms();
            m->fit(x, y, fo);
            e.push_back((now_ms() - t0) / 1000.0);
        }
        if (e.empty()) {
            std::printf("%d,%-12d %10.3f [%6.3f, %6.3f]\n", omp, blas, s.median, s.p10, s.p90);
        } else {
            const Stats es = stats(e);
            std::printf("%d,%-12d %10.3f [%6.3f, %6.3f] %19.3f [%6.3f, %6.3f] %14.3f\n", omp, blas, s.median, s.p10,
                        s.p90, es.median, es.min, es.max,
                        es.median * 1000.0 / static_cast<double>((n + batch - 1) / batch));
        }
        std::fflush(stdout);
    }
    return 0;
}
