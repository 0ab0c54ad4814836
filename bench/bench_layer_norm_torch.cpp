// libtorch's layer normalization on bench_layer_norm's cases, for a comparison on the same machine
// at the same time: forward at::native_layer_norm (output, mean and rstd, as autograd saves them)
// and backward at::native_layer_norm_backward (grad input, weight and bias), float32, at 1 and 2
// threads (at::set_num_threads), libtorch's own CPU kernels. Built only with -DXTAPE_BENCH_TORCH=ON
// when CMake finds Debian's libtorch-dev; never needed by the main build. Both calls allocate their
// outputs inside the timed call, as a torch user's call does.
//
// Prints bench_layer_norm's JSON lines with "path": "torch".
//   bench_layer_norm_torch [--min-time SECONDS] [--case SUBSTRING] [--list]
#include "bench/batch_norm_cases.hpp"

#include <torch/torch.h>

#include <array>
#include <vector>

int main(int argc, char** argv)
{
    static const std::vector<bench::Case> cases = { { { 4096, 1024 }, -1 }, { { 32, 128, 768 }, -1 } };
    bench::Options opt;
    if (const auto done = bench::parse_options(argc, argv, opt, false, cases))
        return *done;
    torch::NoGradGuard no_grad;
    for (const bench::Case& c : cases) {
        const std::string name = bench::case_name(c);
        if (!opt.selected(name))
            continue;
        const std::vector<int64_t> shape(c.shape.begin(), c.shape.end());
        const int64_t cols = shape.back();
        torch::Tensor x = torch::randn(shape) * 2.0 + 0.5, dy = torch::randn(shape);
        torch::Tensor w = torch::ones({ cols }) + 0.01, b = torch::zeros({ cols }) + 0.01;
        const std::vector<int64_t> normalized{ cols };
        for (int threads : { 1, 2 }) {
            at::set_num_threads(threads);
            std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> fwd;
            bench::print(name, "torch", "forward", threads, bench::time_it([&] {
                             fwd = at::native_layer_norm(x, normalized, w, b, 1e-3);
                         }, opt.min_time, 20));
            std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> bwd;
            const std::array<bool, 3> mask{ true, true, true };
            bench::print(name, "torch", "backward", threads, bench::time_it([&] {
                             bwd = at::native_layer_norm_backward(dy, x, normalized, std::get<1>(fwd),
                                                                  std::get<2>(fwd), w, b, mask);
                         }, opt.min_time, 20));
        }
    }
    return 0;
}
