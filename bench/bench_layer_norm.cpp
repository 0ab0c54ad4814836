// Layer normalization speed: forward (row statistics + normalization) and backward (dx, dgamma,
// dbeta) in float32 at 1 and 2 threads on issue 13's shapes, (4096, 1024) and (32, 128, 768)
// normalized over the last axis, on three paths as bench_batch_norm prints them:
//
//   "kernel": ln::forward / ln::backward (dx written, not accumulated) on buffers allocated once.
//   "op":     layer_norm under a GradientTape that watches x (gamma and beta trainable variables)
//             with a reused workspace, and tape.gradient(y, {x, gamma, beta}, dy) - what training pays.
//   "floor":  the memory floor of bench/memory_floor.hpp for the same number of elements.
//
//   bench_layer_norm [--min-time SECONDS] [--case SUBSTRING] [--list] [--path kernel|op|floor]
#include "bench/batch_norm_cases.hpp"
#include "bench/memory_floor.hpp"
#include "framework/layer_norm.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"

#include <cstdio>
#include <random>

using namespace xtape;

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    static const std::vector<bench::Case> cases = { { { 4096, 1024 }, -1 }, { { 32, 128, 768 }, -1 } };
    bench::Options opt;
    if (const auto done = bench::parse_options(argc, argv, opt, true, cases))
        return *done;
    const std::string& path = opt.path;
    if (path != "all" && path != "kernel" && path != "op" && path != "floor") {
        std::fprintf(stderr, "bench_layer_norm: --path must be kernel, op or floor, got '%s'\n", path.c_str());
        return 2;
    }
    for (const bench::Case& c : cases) {
        const std::string name = bench::case_name(c);
        if (!opt.selected(name))
            continue;
        const std::size_t cols = c.shape.back();
        std::size_t n = 1;
        for (auto d : c.shape)
            n *= d;
        const std::size_t rows = n / cols;
        const shape_t shape(c.shape.begin(), c.shape.end());
        std::mt19937 gen(42);
        std::normal_distribution<float> normal(0.5f, 2.0f);
        array_t<float> x = array_t<float>::from_shape(shape), dy = array_t<float>::from_shape(shape);
        array_t<float> y = array_t<float>::from_shape(shape), dx = array_t<float>::from_shape(shape);
        for (std::size_t i = 0; i < n; ++i) {
            x.data()[i] = normal(gen);
            dy.data()[i] = normal(gen);
        }
        array_t<float> gamma = array_t<float>::from_shape({ cols }), beta = array_t<float>::from_shape({ cols });
        array_t<float> dgamma = xt::zeros<float>({ cols }), dbeta = xt::zeros<float>({ cols });
        for (std::size_t j = 0; j < cols; ++j) {
            gamma(j) = 1.0f + 0.01f * static_cast<float>(j % 7);
            beta(j) = 0.01f * static_cast<float>(j % 5);
        }
        std::vector<double> mean(rows), inv(rows);
        ln::Workspace<float> ws;
        const Tensor<float> tx(x), tdy(dy);
        const Variable<float> vgamma("gamma", gamma), vbeta("beta", beta);
        auto op_ws = std::make_shared<ln::Workspace<float>>();
        for (int threads : { 1, 2 }) {
            set_num_threads(threads);
            if (path == "all" || path == "kernel") {
                bench::print(name, "kernel", "forward", threads, bench::time_it([&] {
                                 ln::forward(rows, cols, x.data(), gamma.data(), beta.data(), 1e-3, false, y.data(),
                                             mean.data(), inv.data());
                             }, opt.min_time, 20));
                bench::print(name, "kernel", "backward", threads, bench::time_it([&] {
                                 ln::backward(rows, cols, x.data(), dy.data(), gamma.data(), mean.data(), inv.data(),
                                              false, dx.data(), false, dgamma.data(), dbeta.data(), ws);
                             }, opt.min_time, 20));
            }
            if (path == "all" || path == "floor") {
                bench::print(name, "floor", "forward", threads,
                             bench::time_it([&] { bench::floor_forward(x.data(), y.data(), n); }, opt.min_time, 20));
                bench::print(name, "floor", "backward", threads, bench::time_it([&] {
                                 bench::floor_backward(x.data(), dy.data(), dx.data(), n);
                             }, opt.min_time, 20));
            }
            if (path == "all" || path == "op") {
                std::unique_ptr<GradientTape<float>> tape;
                Tensor<float> ty;
                std::vector<Tensor<float>> grads;
                auto start_tape = [&] {
                    tape = std::make_unique<GradientTape<float>>();
                    tape->watch(tx);
                };
                auto forward = [&] { ty = layer_norm(tx, vgamma.tensor(), vbeta.tensor(), LayerNormSpec{}, op_ws); };
                auto finish = [&] {
                    grads.clear();
                    ty = Tensor<float>();
                    tape.reset();
                };
                bench::print(name, "op", "forward", threads, bench::time_it(start_tape, forward, finish, opt.min_time, 20));
                bench::print(name, "op", "backward", threads, bench::time_it(
                                 [&] {
                                     start_tape();
                                     forward();
                                 },
                                 [&] { grads = tape->gradient(ty, { tx, vgamma.tensor(), vbeta.tensor() }, tdy); },
                                 finish, opt.min_time, 20));
            }
        }
    }
    return 0;
}
