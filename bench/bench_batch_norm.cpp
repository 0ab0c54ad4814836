// Batch normalization speed: training forward (statistics + normalization) and backward
// (dx, dgamma, dbeta) in float32, at 1 and 2 threads, for the six cases of issue 4, on two paths:
//
//   "kernel": the fused kernels called directly (bn::forward_training / bn::backward, dx written,
//             not accumulated) on buffers allocated once - the work oneDNN's and libtorch's
//             kernels do.
//   "op":     what training pays: batch_norm_train under a GradientTape that watches x (gamma and
//             beta are trainable variables), with a reused workspace and statistics object as the
//             layer passes them, and tape.gradient(y, {x, gamma, beta}, dy) for the backward - the
//             recording, the output and gradient arrays the tape allocates, and its bookkeeping.
//             Glibc's allocator is set as Model::fit sets it (Note [Allocator settings for
//             training] in framework/allocator.cpp) unless MALLOC_* variables are set.
//   "floor":  the byte model's memory traffic with no batch-norm work: flat loops over the same
//             buffers, split over the threads as the kernels split rows, second pass in reversed
//             blocks, output streamed from 8 MB. Forward: sum x, then y = a x + b; backward: sum dy
//             and dy x in one pass, then dx = a x + b dy + c. What this machine's memory gives for
//             that traffic at that moment (README, "Benchmarks").
//
// Prints one JSON object per line:
//   {"case": "32x56x56x64/axis-1", "path": "kernel", "phase": "forward", "threads": 2, "median_us": ..., "min_us": ..., "max_us": ...}
//
//   bench_batch_norm [--min-time SECONDS] [--case SUBSTRING] [--list] [--path kernel|op|floor]
#include "bench/batch_norm_cases.hpp"
#include "bench/memory_floor.hpp"
#include "framework/batch_norm.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"
#include "framework/tape.hpp"

#include <xsimd/xsimd.hpp>


#include <cstdio>
#include <cstdlib>
#include <random>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif
#include <string>
#include <vector>

using namespace xtape;

namespace {

using bench::Case;
using bench::Timing;
using bench::print;
using bench::time_it;
using bench::floor_backward;
using bench::floor_forward;

bn::Layout layout_of(const Case& c)
{
    const std::size_t rank = c.shape.size();
    const std::size_t a = c.axis < 0 ? rank + c.axis : static_cast<std::size_t>(c.axis);
    bn::Layout l;
    l.outer = 1;
    for (std::size_t i = 0; i < a; ++i)
        l.outer *= c.shape[i];
    l.channels = c.shape[a];
    l.inner = 1;
    for (std::size_t i = a + 1; i < rank; ++i)
        l.inner *= c.shape[i];
    return l;
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    bench::Options opt;
    if (const auto done = bench::parse_options(argc, argv, opt, true))
        return *done;
    const double min_time = opt.min_time;
    const std::string& path = opt.path;
    if (path != "all" && path != "kernel" && path != "op" && path != "floor") {
        std::fprintf(stderr, "bench_batch_norm: --path must be kernel, op or floor, got '%s'\n", path.c_str());
        return 2;
    }
    const bool run_kernel = path == "all" || path == "kernel", run_op = path == "all" || path == "op";
    const bool run_floor = path == "all" || path == "floor";
    for (const Case& c : bench::batch_norm_cases()) {
        const std::string name = bench::case_name(c);
        if (!opt.selected(name))
            continue;
        const bn::Layout l = layout_of(c);
        const std::size_t n = l.size(), C = l.channels;
        using buffer = bn::Workspace<float>::aligned_vector<float>;
        buffer x(n), y(n), dy(n), dx(n), gamma(C), beta(C), dgamma(C), dbeta(C);
        std::mt19937 gen(42);
        std::normal_distribution<float> normal(0.5f, 2.0f);
        for (std::size_t i = 0; i < n; ++i) {
            x[i] = normal(gen);
            dy[i] = normal(gen);
        }
        for (std::size_t i = 0; i < C; ++i) {
            gamma[i] = 1.0f + 0.01f * static_cast<float>(i % 7);
            beta[i] = 0.01f * static_cast<float>(i % 5);
        }
        std::vector<double> mean(C), var(C), inv(C);
        const bn::ChannelStats stats{ mean.data(), var.data(), inv.data(), nullptr, nullptr };
        bn::Workspace<float> ws;

        // The op path's tensors hold the same values.
        auto to_array = [](const buffer& b, const shape_t& shape) {
            array_t<float> a = array_t<float>::from_shape(shape);
            std::copy(b.begin(), b.end(), a.begin());
            return a;
        };
        const shape_t shape(c.shape.begin(), c.shape.end());
        const Tensor<float> tx(to_array(x, shape)), tdy(to_array(dy, shape));
        const Variable<float> vgamma("gamma", to_array(gamma, { C })), vbeta("beta", to_array(beta, { C }));
        BatchNormSpec spec;
        spec.axes = { c.axis };
        auto op_ws = std::make_shared<bn::Workspace<float>>();
        BatchNormStats<float> op_stats;

        for (int threads : { 1, 2 }) {
            set_num_threads(threads);
            if (run_kernel) {
                const Timing fw = time_it(
                    [&] {
                        bn::forward_training(l, x.data(), gamma.data(), beta.data(), 1e-3, nullptr, y.data(), stats, ws);
                    },
                    min_time, 20);
                print(name, "kernel", "forward", threads, fw);
                const Timing bw = time_it(
                    [&] {
                        bn::backward(l, x.data(), dy.data(), gamma.data(), mean.data(), inv.data(), nullptr, nullptr,
                                     true, dx.data(), false, dgamma.data(), dbeta.data(), ws);
                    },
                    min_time, 20);
                print(name, "kernel", "backward", threads, bw);
            }
            if (run_floor) {
                print(name, "floor", "forward", threads, time_it([&] { floor_forward(x.data(), y.data(), n); }, min_time, 20));
                print(name, "floor", "backward", threads,
                      time_it([&] { floor_backward(x.data(), dy.data(), dx.data(), n); }, min_time, 20));
            }
            if (run_op) {
                std::unique_ptr<GradientTape<float>> tape;
                Tensor<float> ty;
                std::vector<Tensor<float>> grads;
                auto start_tape = [&] {
                    tape = std::make_unique<GradientTape<float>>();
                    tape->watch(tx);
                };
                auto forward = [&] { ty = batch_norm_train(tx, vgamma.tensor(), vbeta.tensor(), spec, &op_stats, {}, nullptr, op_ws); };
                auto finish = [&] {
                    grads.clear();
                    ty = Tensor<float>();
                    tape.reset();
                };
                const Timing fw = time_it(start_tape, forward, finish, min_time, 20);
                print(name, "op", "forward", threads, fw);
                const Timing bw = time_it(
                    [&] {
                        start_tape();
                        forward();
                    },
                    [&] { grads = tape->gradient(ty, { tx, vgamma.tensor(), vbeta.tensor() }, tdy); }, finish, min_time,
                    20);
                print(name, "op", "backward", threads, bw);
            }
        }
    }
    return 0;
}
