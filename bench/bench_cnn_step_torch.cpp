// libtorch's time for one training step of issue 12's Fashion-MNIST CNN (bench_cnn_step's network:
// Conv2d 1->32 3x3 pad 1 without bias -> BatchNorm2d -> ReLU -> MaxPool2d 2 -> Conv2d 32->64 ->
// BatchNorm2d -> ReLU -> MaxPool2d 2 -> Flatten -> Linear 3136->128 -> BatchNorm1d -> ReLU ->
// Dropout 0.3 -> Linear 128->10, cross-entropy on the logits, SGD lr 0.01, batch 128), written
// with torch::nn as a libtorch user would. Built only when CMake finds Debian's libtorch-dev
// (libtorch 1.13, -DXTAPE_BENCH_TORCH=ON); bench/compare_cnn_step.sh runs it against
// bench_cnn_step in alternating rounds.
//
// A step is zero_grad, forward, loss, backward, optimizer step: what bench_cnn_step's
// train_on_batch does (xtape's softmax + sparse cross-entropy is one fused op; torch's
// cross_entropy on logits is its fused counterpart). BatchNorm uses Keras's epsilon 1e-3 and
// momentum 0.99 (torch's 0.01). Each configuration is a memory format - nchw (contiguous) or
// channels_last (input and conv weights in NHWC strides, as model.to(memory_format=
// torch.channels_last) gives) - and a split of the cores, torch's intra-op threads
// (at::set_num_threads) and OpenBLAS's threads (openblas_set_num_threads found at run time in the
// libopenblas libtorch loaded; libtorch's linear layers call it). Prints, per configuration, the
// median and the p10 and p90 of --steps timed steps after 3 untimed ones:
//
//   format         torch,blas   step ms: median [p10, p90]
//   channels_last  1,2              80.123 [79.000, 85.000]
//
//   bench_cnn_step_torch [--steps N] [--config torch,blas ...] [--format nchw|channels_last ...]
#include "bench/step_bench_stats.hpp"
#include "bench/torch_common.hpp"

#include <torch/torch.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace nn = torch::nn;

nn::Sequential make_cnn()
{
    auto bn = [](int64_t c) { return nn::BatchNormOptions(c).eps(1e-3).momentum(0.01); };
    return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1).bias(false)),
                          nn::BatchNorm2d(bn(32)),
                          nn::ReLU(),
                          nn::MaxPool2d(nn::MaxPool2dOptions(2)),
                          nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1).bias(false)),
                          nn::BatchNorm2d(bn(64)),
                          nn::ReLU(),
                          nn::MaxPool2d(nn::MaxPool2dOptions(2)),
                          nn::Flatten(),
                          nn::Linear(64 * 7 * 7, 128),
                          nn::BatchNorm1d(bn(128)),
                          nn::ReLU(),
                          nn::Dropout(0.3),
                          nn::Linear(128, 10));
}

/// OpenBLAS's thread count, through the symbol of the libopenblas already loaded (libtorch links
/// it through libblas.so.3); false when no loaded library has it.
bool set_openblas_threads(int n)
{
    using setter = void (*)(int);
    static const auto fn = reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    if (!fn)
        return false;
    fn(n);
    return true;
}

} // namespace

int main(int argc, char** argv)
{
    int steps = 30;
    std::vector<std::pair<int, int>> configs{ { 1, 1 }, { 1, 2 }, { 2, 1 }, { 2, 2 } };
    std::vector<std::string> formats{ "nchw", "channels_last" };
    bool custom_config = false, custom_format = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--steps" && i + 1 < argc && (steps = std::atoi(argv[i + 1])) >= 1)
            ++i;
        else if (a == "--config" && i + 1 < argc) {
            int t = 0, b = 0;
            if (std::sscanf(argv[++i], "%d,%d", &t, &b) != 2 || t < 1 || b < 1) {
                std::fprintf(stderr, "--config expects torch,blas thread counts (e.g. 1,2), got %s\n", argv[i]);
                return 2;
            }
            if (!custom_config)
                configs.clear();
            custom_config = true;
            configs.emplace_back(t, b);
        } else if (a == "--format" && i + 1 < argc && (std::string(argv[i + 1]) == "nchw" ||
                                                       std::string(argv[i + 1]) == "channels_last")) {
            if (!custom_format)
                formats.clear();
            custom_format = true;
            formats.emplace_back(argv[++i]);
        } else {
            std::fprintf(stderr,
                         "usage: %s [--steps N] [--config torch,blas ...] [--format nchw|channels_last ...]\n",
                         argv[0]);
            return 2;
        }
    }

    torch::manual_seed(42);
    const int64_t batch = 128;
    const torch::Tensor x_nchw = torch::rand({ batch, 1, 28, 28 });
    const torch::Tensor y = torch::arange(batch, torch::kLong).remainder(10);
    const bool blas_settable = set_openblas_threads(1);
    std::printf("libtorch %s CNN 28x28x1-C32-BN-ReLU-P-C64-BN-ReLU-P-D128-BN-ReLU-Drop-D10, SGD, batch %lld: %d "
                "timed steps; %s; oneDNN (mkldnn) %s; OpenBLAS threads %s\n",
                TORCH_VERSION, static_cast<long long>(batch), steps, bench::torch_cpu_capability().c_str(),
                at::hasMKLDNN() ? "available" : "absent", blas_settable ? "set per row" : "not settable (left as is)");
    std::printf("%-14s %-12s %28s\n", "format", "torch,blas", "step ms: median [p10, p90]");
    for (const std::string& format : formats) {
        const bool cl = format == "channels_last";
        for (auto [threads, blas] : configs) {
            at::set_num_threads(threads);
            set_openblas_threads(blas);
            torch::manual_seed(42);
            nn::Sequential net = make_cnn();
            const auto memory_format = cl ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
            for (auto& p : net->parameters())
                if (p.dim() == 4)
                    p.set_data(p.contiguous(memory_format));
            const torch::Tensor x = x_nchw.contiguous(memory_format);
            torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.01));
            net->train();
            auto step = [&] {
                opt.zero_grad();
                torch::Tensor loss = torch::nn::functional::cross_entropy(net->forward(x), y);
                loss.backward();
                opt.step();
            };
            for (int i = 0; i < 3; ++i) // page faults, thread pools, oneDNN's primitive cache
                step();
            std::vector<double> t;
            for (int i = 0; i < steps; ++i) {
                const auto t0 = std::chrono::steady_clock::now();
                step();
                t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            }
            const bench::StepStats s = bench::step_stats(t);
            std::printf("%-14s %d,%-10d %10.3f [%6.3f, %6.3f]\n", format.c_str(), threads, blas, s.median, s.p10,
                        s.p90);
            std::fflush(stdout);
        }
    }
    return 0;
}
