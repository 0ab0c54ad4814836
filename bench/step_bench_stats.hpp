// The statistics every training-step bench prints, xtape's (bench/step_bench.hpp) and the libtorch
// comparison's (bench_cnn_step_torch.cpp, which does not link xtape): standard C++ only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace bench {

struct StepStats {
    double median, p10, p90, min, max;
};

/// requires: v not empty.
inline StepStats step_stats(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)]; };
    // The median of an even count is the mean of the middle two.
    const std::size_t h = v.size() / 2;
    const double median = v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
    return StepStats{ median, at(0.1), at(0.9), v.front(), v.back() };
}

} // namespace bench
