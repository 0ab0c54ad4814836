// Pooling and resampling timings in float32 on the Fashion-MNIST CNN's shapes and a ResNet-sized
// one: forward without a tape (inference), and backward as the time of GradientTape::gradient with
// a given output gradient. Each line also prints a floor: one parallel pass that reads the input
// and writes an output of the op's size (no pooling work), timed the same way.
//
// usage: bench_pooling [repetitions]   (default 21; OMP_NUM_THREADS sets the thread count)
#include "framework/parallel.hpp"
#include "framework/pooling.hpp"
#include "framework/process.hpp"
#include "framework/resampling.hpp"

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

F random_f(const shape_t& shape, unsigned seed)
{
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    array_t<float> a = array_t<float>::from_shape(shape);
    for (auto& v : a)
        v = u(gen);
    return F(std::move(a));
}

double median_ms(std::vector<double> ms)
{
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

double ms_since(clock_type::time_point t0)
{
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

void bench(const std::string& name, const F& x, const std::function<F(const F&)>& op, int reps)
{
    for (int i = 0; i < 2; ++i)
        op(x);
    std::vector<double> fwd, bwd, floor;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = clock_type::now();
        F y = op(x);
        fwd.push_back(ms_since(t0));
    }
    F dy;
    for (int r = 0; r < reps + 2; ++r) {
        GradientTape<float> tape;
        tape.watch(x);
        F y = op(x);
        if (!dy.defined())
            dy = F::full(y.shape(), 1.0f);
        const auto t0 = clock_type::now();
        auto g = tape.gradient(y, std::vector<F>{ x }, dy);
        if (r >= 2)
            bwd.push_back(ms_since(t0));
    }
    // The floor: read x once, write an output-sized array (allocation included, as the op pays it).
    const std::size_t out_size = op(x).size();
    for (int r = 0; r < reps; ++r) {
        const auto t0 = clock_type::now();
        array_t<float> out = array_t<float>::from_shape({ out_size });
        const float* xp = x.data();
        float* op_ = out.data();
        const std::size_t n = x.size(), m = out_size;
        parallel_for(n, [&](std::size_t b, std::size_t e) {
            float s = 0.f;
            for (std::size_t i = b; i < e; ++i)
                s += xp[i];
            const std::size_t ob = b * m / n, oe = e * m / n;
            for (std::size_t i = ob; i < oe; ++i)
                op_[i] = s;
        });
        floor.push_back(ms_since(t0));
    }
    std::printf("%-44s %-18s fwd %8.3f ms   bwd %8.3f ms   floor %8.3f ms\n", name.c_str(),
                shape_str(x.shape()).c_str(), median_ms(fwd), median_ms(bwd), median_ms(floor));
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 21;
    std::printf("xtape bench_pooling: float32, %d threads, %d repetitions (medians)\n", max_threads(), reps);
    const PoolSpec p2{ { 2, 2 }, { 2, 2 }, false, false }, p2cf{ { 2, 2 }, { 2, 2 }, false, true };
    const PoolSpec p3{ { 3, 3 }, { 2, 2 }, true, false };
    const F a = random_f({ 128, 28, 28, 32 }, 1), acf = random_f({ 128, 32, 28, 28 }, 2);
    const F b = random_f({ 128, 14, 14, 64 }, 3), r = random_f({ 32, 56, 56, 64 }, 4);
    bench("max_pool 2x2 channels_last", a, [&](const F& x) { return max_pool(x, p2); }, reps);
    bench("max_pool 2x2 channels_first", acf, [&](const F& x) { return max_pool(x, p2cf); }, reps);
    bench("max_pool 2x2 channels_last", b, [&](const F& x) { return max_pool(x, p2); }, reps);
    bench("max_pool 3x3 s2 same channels_last", r, [&](const F& x) { return max_pool(x, p3); }, reps);
    bench("average_pool 2x2 channels_last", a, [&](const F& x) { return average_pool(x, p2); }, reps);
    bench("average_pool 2x2 channels_first", acf, [&](const F& x) { return average_pool(x, p2cf); }, reps);
    bench("global_average_pool channels_last", r, [](const F& x) { return global_average_pool(x, false, false); },
          reps);
    bench("global_max_pool channels_last", r, [](const F& x) { return global_max_pool(x, false, false); }, reps);
    bench("repeat_elements (UpSampling2D 2x2)", b, [](const F& x) { return repeat_elements(x, { 1, 2, 2, 1 }); },
          reps);
    bench("zero_pad (ZeroPadding2D 1)", a, [](const F& x) { return zero_pad(x, { { 0, 0 }, { 1, 1 }, { 1, 1 }, { 0, 0 } }); },
          reps);
    return 0;
}
