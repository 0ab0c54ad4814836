// libtorch's batch normalization on issue 4's six cases, for a comparison on the same machine at the
// same time as bench_batch_norm: training forward (statistics computed, weight and bias, running
// statistics moved with torch's momentum 0.1) and backward (grad input, grad weight, grad bias),
// float32, at 1 and 2 threads (at::set_num_threads), on libtorch's own CPU kernels. Built only
// when CMake finds Debian's libtorch-dev (libtorch 1.13); never needed by the main build.
//
// The tensors are laid out as a torch user would hold the case's data, without a copy:
// channel-last cases (axis -1) are the NHWC array permuted to (N, C, H, W), which has
// channels_last strides; 2-D cases are (N, C); channel-first cases are contiguous NCHW. Which
// kernel that layout selects is named on stderr.
//
// Prints bench_batch_norm's JSON lines with "path": "torch", what a user's call costs:
// torch::batch_norm for the forward, at::native_batch_norm_backward with the mean and invstd that
// at::native_batch_norm saved for the backward. Both allocate their outputs inside the timed call
// (libtorch 1.13 registers no CPU kernel for native_batch_norm.out); the results are freed
// outside it.
//   {"case": "32x56x56x64/axis-1", "path": "torch", "phase": "forward", "threads": 2, "median_us": ..., ...}
//
//   bench_batch_norm_torch [--min-time SECONDS] [--case SUBSTRING] [--list]
#include "bench/batch_norm_cases.hpp"
#include "bench/torch_common.hpp"

#include <torch/torch.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

namespace {

using bench::Case;

/// The case's data as a torch (N, C, spatial...) tensor with the memory layout the case's axis
/// implies: channel-last data viewed through permute keeps its NHWC storage.
torch::Tensor as_torch_layout(const Case& c, double mean, double stddev)
{
    std::vector<int64_t> shape(c.shape.begin(), c.shape.end());
    torch::Tensor t = torch::randn(shape, torch::kFloat32) * stddev + mean;
    if (c.axis == -1 && shape.size() == 4)
        return t.permute({ 0, 3, 1, 2 });
    return t;
}

/// The kernel libtorch's batch_norm_kernel.cpp dispatches to for this layout: a contiguous
/// input with one element per (n, c) - the 2-D case - is treated as channels-last (NC11).
const char* kernel_name(const torch::Tensor& x)
{
    const int64_t image = x.numel() / x.size(0) / x.size(1);
    if (x.is_contiguous())
        return image == 1 ? "channels_last_impl (contiguous NC11)" : "contiguous_impl (NCHW)";
    if (x.is_contiguous(at::MemoryFormat::ChannelsLast))
        return "channels_last_impl (channels_last strides)";
    return "none (not contiguous in any format: TORCH_CHECK fails)";
}

} // namespace

int main(int argc, char** argv)
{
    bench::Options opt;
    if (const auto done = bench::parse_options(argc, argv, opt))
        return *done;
    const double min_time = opt.min_time;
    // Nothing here needs gradients recorded; the guard keeps autograd's bookkeeping out of the
    // timings even if a tensor were created with requires_grad.
    torch::NoGradGuard no_grad;
    torch::manual_seed(42);
    std::fprintf(stderr, "libtorch %s, %s\n", TORCH_VERSION, bench::torch_cpu_capability().c_str());
    // bench_batch_norm's epsilon (Keras's default); torch's default momentum.
    const double epsilon = 1e-3, momentum = 0.1;
    const std::array<bool, 3> all_grads = { true, true, true };
    for (const Case& c : bench::batch_norm_cases()) {
        const std::string name = bench::case_name(c);
        if (!opt.selected(name))
            continue;
        const torch::Tensor x = as_torch_layout(c, 0.5, 2.0), dy = as_torch_layout(c, 0.5, 2.0);
        const int64_t C = x.size(1);
        const torch::Tensor weight = torch::randn({ C }) * 0.01 + 1.0, bias = torch::randn({ C }) * 0.01;
        torch::Tensor running_mean = torch::zeros({ C }), running_var = torch::ones({ C });
        for (int threads : { 1, 2 }) {
            at::set_num_threads(threads);
            std::fprintf(stderr,
                         "%s threads %d: kernel %s, %s\n",
                         name.c_str(),
                         at::get_num_threads(),
                         kernel_name(x),
                         x.suggest_memory_format() == at::MemoryFormat::ChannelsLast
                           ? "suggest_memory_format ChannelsLast"
                           : "suggest_memory_format Contiguous");
            // The statistics the backward reads, as training's forward saves them.
            torch::Tensor save_mean, save_invstd;
            std::tie(std::ignore, save_mean, save_invstd) =
              at::native_batch_norm(x, weight, bias, running_mean, running_var, true, momentum, epsilon);

            torch::Tensor out;
            std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> grads;
            const auto release = [&] {
                out = torch::Tensor();
                grads = {};
            };
            const bench::Timing fw = bench::time_it(
              [] {},
              [&] {
                  out = torch::batch_norm(
                    x, weight, bias, running_mean, running_var, true, momentum, epsilon, false);
              },
              release,
              min_time,
              20);
            bench::print(name, "torch", "forward", threads, fw);
            const bench::Timing bw = bench::time_it([] {},
                                                    [&] {
                                                        grads = at::native_batch_norm_backward(dy,
                                                                                               x,
                                                                                               weight,
                                                                                               running_mean,
                                                                                               running_var,
                                                                                               save_mean,
                                                                                               save_invstd,
                                                                                               true,
                                                                                               epsilon,
                                                                                               all_grads);
                                                    },
                                                    release,
                                                    min_time,
                                                    20);
            bench::print(name, "torch", "backward", threads, bw);
        }
    }
    return 0;
}
