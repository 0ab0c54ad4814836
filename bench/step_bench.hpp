// The training-step benchmark that bench_mlp_step and bench_cnn_step share: one model, timed for
// --steps train_on_batch calls at batch 128 and for --epochs model.fit epochs of 60,000 samples
// (469 steps, with shuffling), for each split of the 2 cores between xtape's OpenMP kernels and
// OpenBLAS's own threads (--config omp,blas, repeatable). Prints the median and the spread of each
// (steps: p10 and p90; epochs: min and max). "omp,blas" = "2,1" is xtape's default
// (Note [OpenBLAS threads and kernels]): OpenBLAS single-threaded, each product split over the
// OpenMP team; "1,2" leaves the products to OpenBLAS's threads. The data are random: the timings
// do not depend on the values.
#pragma once

#include "bench/step_bench_stats.hpp"
#include "framework/blas_setup.hpp"
#include "framework/model.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "optim/sgd.hpp"

#include <xtensor/xview.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace xtape::bench {

struct StepBenchSpec {
    std::string title;   ///< the first line names the network
    shape_t sample_shape; ///< one sample, without the batch axis
    std::function<std::shared_ptr<Sequential<float>>()> make_model; ///< not compiled
    int steps = 200, epochs = 5, warmup = 20; ///< defaults; --steps and --epochs override
};

using ::bench::step_stats;
using ::bench::StepStats;

/// ensures: the table on stdout; returns main's status (2 on a bad command line).
inline int run_step_bench(int argc, char** argv, StepBenchSpec spec)
{
    std::vector<std::pair<int, int>> configs{ { 1, 1 }, { 1, 2 }, { 2, 1 }, { 2, 2 } };
    bool custom = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--steps" && i + 1 < argc && (spec.steps = std::atoi(argv[i + 1])) >= 1)
            ++i;
        else if (a == "--epochs" && i + 1 < argc)
            spec.epochs = std::atoi(argv[++i]);
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

    const std::size_t batch = 128, n = spec.epochs > 0 ? 60000 : batch;
    shape_t shape{ n };
    shape.insert(shape.end(), spec.sample_shape.begin(), spec.sample_shape.end());
    std::mt19937 gen(1);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    array_t<float> x = array_t<float>::from_shape(shape), y = array_t<float>::from_shape({ n });
    for (auto& v : x)
        v = u(gen);
    for (std::size_t i = 0; i < n; ++i)
        y(i) = static_cast<float>(i % 10);
    const array_t<float> xb = xt::view(x, xt::range(0, batch)), yb = xt::view(y, xt::range(0, batch));

    auto now_ms = [] {
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
    };
    std::printf("%s, SGD, batch %zu: %d timed steps, %d epochs of %zu samples; OpenBLAS kernels: %s\n",
                spec.title.c_str(), batch, spec.steps, spec.epochs, n, blas_core_name());
    std::printf("%-14s %28s %36s %14s\n", "omp,blas", "step ms: median [p10, p90]", "epoch s: median [min, max]",
                "ms/step (fit)");
    for (auto [omp, blas] : configs) {
        set_num_threads(omp);
        set_blas_threads(blas);
        set_random_seed(42);
        auto m = spec.make_model();
        m->compile(std::make_shared<SGD<float>>(0.01), "sparse_categorical_crossentropy", { "accuracy" });
        for (int i = 0; i < spec.warmup; ++i) // page faults, thread pools, allocator
            m->train_on_batch(xb, yb);
        std::vector<double> t;
        for (int i = 0; i < spec.steps; ++i) {
            const double t0 = now_ms();
            m->train_on_batch(xb, yb);
            t.push_back(now_ms() - t0);
        }
        const StepStats s = step_stats(t);
        std::vector<double> e;
        FitOptions<float> fo;
        fo.batch_size = batch;
        fo.verbose = 0;
        for (int i = 0; i < spec.epochs; ++i) {
            const double t0 = now_ms();
            m->fit(x, y, fo);
            e.push_back((now_ms() - t0) / 1000.0);
        }
        if (e.empty()) {
            std::printf("%d,%-12d %10.3f [%6.3f, %6.3f]\n", omp, blas, s.median, s.p10, s.p90);
        } else {
            const StepStats es = step_stats(e);
            std::printf("%d,%-12d %10.3f [%6.3f, %6.3f] %19.3f [%6.3f, %6.3f] %14.3f\n", omp, blas, s.median, s.p10,
                        s.p90, es.median, es.min, es.max,
                        es.median * 1000.0 / static_cast<double>((n + batch - 1) / batch));
        }
        std::fflush(stdout);
    }
    return 0;
}

} // namespace xtape::bench
