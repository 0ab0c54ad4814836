// Convolution speed: the fused kernels of framework/conv.hpp (forward; backward input; backward
// kernel + bias), float32, channels_last and channels_first, at 1 and 2 threads, on the issue's
// shapes, next to OpenBLAS's sgemm measured in the same program:
//
//   "sgemm 1024^3": kernels::gemm (OpenBLAS, split over the OpenMP team as every xtape product is)
//            on square 1024 matrices: the machine's sgemm rate at that thread count, measured first;
//            "pct_of_sgemm" of every other line is relative to it.
//   "sgemm": the same on the product the convolution amounts to, (N * P, K) x (K, C_out) with
//            K = taps x C_in / groups, on buffers allocated once - the rate the convolution would
//            reach with free im2col (that product alone is 231 MB for the 3x3 case, so it is slower
//            than the square one).
//
// Each line: {"case", "format", "phase", "threads", "median_us", "min_us", "max_us", "gflops",
// "sgemm_gflops", "pct_of_sgemm"}; GFLOP/s counts 2 flops per multiply-add of the direct formula
// (the backward phases do as many as the forward).
//
//   bench_conv [--min-time SECONDS] [--case SUBSTRING] [--threads N]
#include "bench/batch_norm_cases.hpp"
#include "framework/conv.hpp"
#include "framework/kernels/gemm.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace xtape;

namespace {

struct ConvCase {
    std::string name;
    std::size_t n, h, w, cin, cout, k;
    bool depthwise;
};

std::vector<float> random_vector(std::size_t n, unsigned seed)
{
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v)
        x = u(gen);
    return v;
}

void print(const std::string& name, const char* format, const char* phase, int threads, const bench::Timing& t,
           double flops, double sgemm_gflops)
{
    const double gf = flops / (t.median * 1e3);
    std::printf("{\"case\": \"%s\", \"format\": \"%s\", \"phase\": \"%s\", \"threads\": %d, \"median_us\": %.1f, "
                "\"min_us\": %.1f, \"max_us\": %.1f, \"gflops\": %.1f, \"sgemm_gflops\": %.1f, \"pct_of_sgemm\": %.0f}\n",
                name.c_str(), format, phase, threads, t.median, t.min, t.max, gf, sgemm_gflops,
                sgemm_gflops > 0 ? 100.0 * gf / sgemm_gflops : 0.0);
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    double min_time = 1.0;
    std::string only;
    int only_threads = 0;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--min-time") && i + 1 < argc)
            min_time = std::atof(argv[++i]);
        else if (!std::strcmp(argv[i], "--case") && i + 1 < argc)
            only = argv[++i];
        else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
            only_threads = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: %s [--min-time SECONDS] [--case SUBSTRING] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    const std::vector<ConvCase> cases = {
        { "128x28x28x1->32 3x3", 128, 28, 28, 1, 32, 3, false },
        { "32x56x56x64->64 3x3", 32, 56, 56, 64, 64, 3, false },
        { "64x14x14x256->256 1x1", 64, 14, 14, 256, 256, 1, false },
        { "32x56x56x64 depthwise 3x3", 32, 56, 56, 64, 64, 3, true },
    };
    const int max_t = max_threads();
    std::vector<double> square(max_t + 1, 0.0);
    {
        const std::size_t n = 1024;
        std::vector<float> A = random_vector(n * n, 7), B = random_vector(n * n, 8), C(n * n);
        for (int threads = 1; threads <= max_t; ++threads) {
            if (only_threads && threads != only_threads)
                continue;
            set_num_threads(threads);
            const double flops = 2.0 * double(n) * n * n;
            const bench::Timing t = bench::time_it(
                [&] { kernels::gemm<float>(false, false, n, n, n, 1.f, A.data(), B.data(), 0.f, C.data()); }, min_time, 5);
            square[threads] = flops / (t.median * 1e3);
            print("sgemm 1024^3", "-", "sgemm", threads, t, flops, square[threads]);
        }
    }
    for (const ConvCase& c : cases) {
        if (!only.empty() && c.name.find(only) == std::string::npos)
            continue;
        for (bool cf : { false, true }) {
            const shape_t xs = cf ? shape_t{ c.n, c.cin, c.h, c.w } : shape_t{ c.n, c.h, c.w, c.cin };
            const shape_t ks = c.depthwise ? shape_t{ c.k, c.k, 1, c.cout } : shape_t{ c.k, c.k, c.cin, c.cout };
            ConvOptions o;
            o.padding = "same";
            o.channels_first = cf;
            o.groups = c.depthwise ? c.cin : 1;
            const convolution::Geometry g = convolution::conv_geometry(xs, ks, o, "bench_conv");
            const std::size_t xn = shape_size(g.x_shape()), yn = shape_size(g.y_shape()), kn = shape_size(ks);
            const std::vector<float> x = random_vector(xn, 1), w = random_vector(kn, 2), b = random_vector(g.out_channels, 3),
                                     dy = random_vector(yn, 4);
            std::vector<float> y(yn), dx(xn), dw(kn), db(g.out_channels);
            const double flops = 2.0 * g.macs();
            // the product the convolution amounts to, as one gemm per group
            const std::size_t M = g.batch * g.out_points(), K = g.col_depth(), Nc = g.out_per_group();
            std::vector<float> A = random_vector(M * K, 5), B = random_vector(K * Nc, 6), C(M * Nc);
            for (int threads = 1; threads <= max_t; ++threads) {
                if (only_threads && threads != only_threads)
                    continue;
                set_num_threads(threads);
                const char* fmt = cf ? "channels_first" : "channels_last";
                const double sgemm = square[threads];
                if (!c.depthwise) {
                    const bench::Timing t = bench::time_it(
                        [&] { kernels::gemm<float>(false, false, M, Nc, K, 1.f, A.data(), B.data(), 0.f, C.data()); },
                        min_time, 5);
                    print(c.name, fmt, "sgemm", threads, t, flops, sgemm);
                }
                const bench::Timing f = bench::time_it(
                    [&] { convolution::forward<float>(g, x.data(), w.data(), b.data(), y.data()); }, min_time, 5);
                print(c.name, fmt, "forward", threads, f, flops, sgemm);
                const bench::Timing bi = bench::time_it(
                    [&] { convolution::backward_input<float>(g, dy.data(), w.data(), dx.data()); }, min_time, 5);
                print(c.name, fmt, "backward_input", threads, bi, flops, sgemm);
                const bench::Timing bk = bench::time_it(
                    [&] {
                        convolution::backward_kernel<float>(g, x.data(), dy.data(), dw.data());
                        convolution::add_channel_sums<float>(dy.data(), g.batch, g.out_points(), g.out_channels, cf,
                                                             db.data());
                    },
                    min_time, 5);
                print(c.name, fmt, "backward_kernel_bias", threads, bk, flops, sgemm);
            }
        }
    }
    return 0;
}
