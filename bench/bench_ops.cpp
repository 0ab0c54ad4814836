// Per-op timings in float32: forward without a tape (inference), and backward as the time of
// GradientTape::gradient with a given output gradient (so no extra reduction is timed).
// One line per op and size: median and [min, max] over repetitions, in milliseconds.
//
// usage: bench_ops [repetitions]   (default 21; OMP_NUM_THREADS sets the thread count)
#include "framework/ops.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace xtape;
using F = Tensor<float>;
using clock_type = std::chrono::steady_clock;

namespace {

F random_f(const shape_t& shape, unsigned seed, float lo = -1.f, float hi = 1.f)
{
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    array_t<float> a = array_t<float>::from_shape(shape);
    for (auto& v : a)
        v = u(gen);
    return F(std::move(a));
}

struct Stats
{
    double median = 0, min = 0, max = 0;
};

Stats stats_of(std::vector<double> ms)
{
    std::sort(ms.begin(), ms.end());
    return { ms[ms.size() / 2], ms.front(), ms.back() };
}

double ms_since(clock_type::time_point t0)
{
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

/// Times op(inputs) without a tape, then the backward of the same op under a tape.
void bench(const std::string& name, const std::string& shape, const std::vector<F>& inputs,
           const std::function<F(const std::vector<F>&)>& op, int reps)
{
    // Warm-up: page in the inputs and outputs, spin up the OpenMP pool.
    for (int i = 0; i < 2; ++i)
        op(inputs);
    std::vector<double> fwd, bwd;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = clock_type::now();
        F y = op(inputs);
        fwd.push_back(ms_since(t0));
    }
    F dy;
    for (int r = 0; r < reps + 2; ++r) {
        GradientTape<float> tape;
        for (const auto& x : inputs)
            tape.watch(x);
        F y = op(inputs);
        if (!dy.defined())
            dy = F::full(y.shape(), 1.0f / static_cast<float>(std::max<std::size_t>(y.size(), 1)));
        const auto t0 = clock_type::now();
        auto g = tape.gradient(y, inputs, dy);
        if (r >= 2)
            bwd.push_back(ms_since(t0));
    }
    const Stats f = stats_of(fwd), b = stats_of(bwd);
    std::printf("%-30s %-22s fwd %9.3f ms [%9.3f, %9.3f]   bwd %9.3f ms [%9.3f, %9.3f]\n", name.c_str(),
                shape.c_str(), f.median, f.min, f.max, b.median, b.min, b.max);
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 21;
    std::printf("xtape bench_ops: float32, %d threads, %d repetitions (median [min, max])\n", max_threads(),
                reps);
    const std::vector<shape_t> sizes = { { 128, 512 }, { 4096, 1024 } };
    for (const auto& s : sizes) {
        const std::string ss = shape_str(s);
        const F a = random_f(s, 1), b = random_f(s, 2), bias = random_f({ s[1] }, 3);
        bench(
            "add", ss, { a, b }, [](const std::vector<F>& in) { return add(in[0], in[1]); }, reps);
        bench(
            "add (bias broadcast)", ss + "+" + shape_str(bias.shape()), { a, bias },
            [](const std::vector<F>& in) { return add(in[0], in[1]); }, reps);
        bench(
            "mul", ss, { a, b }, [](const std::vector<F>& in) { return mul(in[0], in[1]); }, reps);
        bench(
            "relu", ss, { a }, [](const std::vector<F>& in) { return relu(in[0]); }, reps);
        bench(
            "sigmoid", ss, { a }, [](const std::vector<F>& in) { return sigmoid(in[0]); }, reps);
        bench(
            "softmax (last axis)", ss, { a }, [](const std::vector<F>& in) { return softmax(in[0]); }, reps);
        bench(
            "sum (all)", ss, { a }, [](const std::vector<F>& in) { return sum(in[0]); }, reps);
        bench(
            "sum (axis 0)", ss, { a }, [](const std::vector<F>& in) { return sum(in[0], { 0 }); }, reps);
        bench(
            "sum (axis -1)", ss, { a }, [](const std::vector<F>& in) { return sum(in[0], { -1 }); }, reps);
        // one-hot labels; only the logits are differentiated
        array_t<float> y = xt::zeros<float>(s);
        for (std::size_t r = 0; r < s[0]; ++r)
            y(r, (r * 7919) % s[1]) = 1.0f;
        const F labels(std::move(y));
        bench(
            "categorical_crossentropy", ss + " logits", { a },
            [labels](const std::vector<F>& in) { return categorical_crossentropy(labels, in[0], true); },
            reps);
    }
    const F x = random_f({ 128, 784 }, 4), w = random_f({ 784, 512 }, 5), b = random_f({ 512 }, 6);
    bench(
        "matmul", "128x784 @ 784x512", { x, w },
        [](const std::vector<F>& in) { return matmul(in[0], in[1]); }, reps);
    bench(
        "linear", "128x784 @ 784x512 + b", { x, w, b },
        [](const std::vector<F>& in) { return linear(in[0], in[1], in[2]); }, reps);
    return 0;
}
