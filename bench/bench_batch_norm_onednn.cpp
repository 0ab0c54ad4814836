// oneDNN's batch normalization on issue 4's six cases, for a comparison on the same machine at the
// same time as bench_batch_norm: training forward (use_scale | use_shift, statistics computed)
// and backward (diff_src, diff_scale, diff_shift), float32, at 1 and 2 threads, the
// implementation oneDNN picks for itself (named on stderr). Built only when CMake finds Debian's
// libdnnl-dev (oneDNN 2.x); never needed by the main build.
//
// Prints bench_batch_norm's JSON lines with "path": "onednn" (the input's own layout), and for the
// channel-first cases also "onednn-blocked" (oneDNN's nChw16c, see data_desc):
//   {"case": "32x56x56x64/axis-1", "path": "onednn", "phase": "forward", "threads": 2, "median_us": ..., ...}
//
//   bench_batch_norm_onednn [--min-time SECONDS] [--case SUBSTRING] [--list]
#include "bench/batch_norm_cases.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace {

using bench::Case;
using dnnl::memory;

/// oneDNN's view of a case: dims are always (N, C, spatial...) and the layout tag says where C
/// lies. A 2-D case is (N, C, 1, 1) channel-last, because oneDNN's JIT kernels do not take the 2-D
/// "nc" tag (it falls back to a reference kernel 100x slower). `blocked` asks for oneDNN's own
/// nChw16c layout, its fastest for channel-first data (a different memory layout from the
/// input's, so a real model would pay reorders around it).
memory::desc data_desc(const Case& c, bool blocked)
{
    const auto& s = c.shape;
    const auto d = [](std::size_t v) { return static_cast<memory::dim>(v); };
    const auto f32 = memory::data_type::f32;
    if (s.size() == 2)
        return memory::desc({ d(s[0]), d(s[1]), 1, 1 }, f32, memory::format_tag::nhwc);
    if (c.axis == -1) // (N, H, W, C)
        return memory::desc({ d(s[0]), d(s[3]), d(s[1]), d(s[2]) }, f32, memory::format_tag::nhwc);
    return memory::desc({ d(s[0]), d(s[1]), d(s[2]), d(s[3]) }, f32,
                        blocked ? memory::format_tag::nChw16c : memory::format_tag::nchw);
}

std::size_t channels(const Case& c) { return c.shape[c.axis < 0 ? c.shape.size() - 1 : static_cast<std::size_t>(c.axis)]; }

void fill(memory& m, std::size_t n, std::mt19937& gen, double mean, double stddev)
{
    std::normal_distribution<float> normal(static_cast<float>(mean), static_cast<float>(stddev));
    float* p = static_cast<float*>(m.get_data_handle());
    for (std::size_t i = 0; i < n; ++i)
        p[i] = normal(gen);
}

} // namespace

int main(int argc, char** argv)
{
    bench::Options opt;
    if (const auto done = bench::parse_options(argc, argv, opt))
        return *done;
    const double min_time = opt.min_time;
    using namespace dnnl;
    engine eng(engine::kind::cpu, 0);
    stream strm(eng);
    const float epsilon = 1e-3f;
    const auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
    for (const Case& c : bench::batch_norm_cases()) {
        const std::string name = bench::case_name(c);
        if (!opt.selected(name))
            continue;
        for (bool blocked : { false, true }) {
            if (blocked && c.axis != 1)
                continue;
            const char* path = blocked ? "onednn-blocked" : "onednn";
            const memory::desc md = data_desc(c, blocked);
            const std::size_t n = md.get_size() / sizeof(float), C = channels(c);
            const memory::desc cd({ static_cast<memory::dim>(C) }, memory::data_type::f32, memory::format_tag::x);
            memory src(md, eng), dst(md, eng), diff_dst(md, eng), diff_src(md, eng);
            memory scale(cd, eng), shift(cd, eng), diff_scale(cd, eng), diff_shift(cd, eng);
            std::mt19937 gen(42);
            fill(src, n, gen, 0.5, 2.0);
            fill(diff_dst, n, gen, 0.5, 2.0);
            fill(scale, C, gen, 1.0, 0.01);
            fill(shift, C, gen, 0.0, 0.01);
            for (int threads : { 1, 2 }) {
                // Primitives are created after the thread count is set: some kernels size their
                // reduction buffers for it.
                omp_set_num_threads(threads);
                batch_normalization_forward::primitive_desc fpd(
                    batch_normalization_forward::desc(prop_kind::forward_training, md, epsilon, flags), eng);
                batch_normalization_backward::primitive_desc bpd(
                    batch_normalization_backward::desc(prop_kind::backward, md, md, epsilon, flags), eng, fpd);
                memory mean(fpd.mean_desc(), eng), variance(fpd.variance_desc(), eng);
                batch_normalization_forward fwd(fpd);
                batch_normalization_backward bwd(bpd);
                std::fprintf(stderr, "%s %s threads %d: forward %s, backward %s\n", name.c_str(), path, threads, fpd.impl_info_str(),
                             bpd.impl_info_str());
                const bench::Timing fw = bench::time_it(
                    [&] {
                        fwd.execute(strm, { { DNNL_ARG_SRC, src },
                                            { DNNL_ARG_DST, dst },
                                            { DNNL_ARG_MEAN, mean },
                                            { DNNL_ARG_VARIANCE, variance },
                                            { DNNL_ARG_SCALE, scale },
                                            { DNNL_ARG_SHIFT, shift } });
                        strm.wait();
                    },
                    min_time, 20);
                bench::print(name, path, "forward", threads, fw);
                const bench::Timing bw = bench::time_it(
                    [&] {
                        bwd.execute(strm, { { DNNL_ARG_SRC, src },
                                            { DNNL_ARG_MEAN, mean },
                                            { DNNL_ARG_VARIANCE, variance },
                                            { DNNL_ARG_DIFF_DST, diff_dst },
                                            { DNNL_ARG_SCALE, scale },
                                            { DNNL_ARG_SHIFT, shift }, // oneDNN 2.6 checks it is given
                                            { DNNL_ARG_DIFF_SRC, diff_src },
                                            { DNNL_ARG_DIFF_SCALE, diff_scale },
                                            { DNNL_ARG_DIFF_SHIFT, diff_shift } });
                        strm.wait();
                    },
                    min_time, 20);
                bench::print(name, path, "backward", threads, bw);
            }
        }
    }
    return 0;
}
