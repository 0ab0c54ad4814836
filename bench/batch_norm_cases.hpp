// What bench_batch_norm and bench_batch_norm_onednn share, so their lines compare: issue 4's six
// cases, the timing loop (median/min/max of repeated runs after warm-up) and the JSON line.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bench {

struct Case {
    std::vector<std::size_t> shape;
    int axis;
};

inline const std::vector<Case>& batch_norm_cases()
{
    static const std::vector<Case> cases = { { { 256, 1024 }, -1 },       { { 4096, 256 }, -1 },
                                             { { 32, 56, 56, 64 }, -1 },  { { 64, 14, 14, 256 }, -1 },
                                             { { 32, 64, 56, 56 }, 1 },   { { 64, 256, 14, 14 }, 1 } };
    return cases;
}

inline std::string case_name(const Case& c)
{
    std::string s;
    for (std::size_t i = 0; i < c.shape.size(); ++i)
        s += (i ? "x" : "") + std::to_string(c.shape[i]);
    return s + "/axis" + std::to_string(c.axis);
}

struct Timing {
    double median, min, max;
};

/// Runs setup(), f(), teardown() until both `min_reps` repetitions and `min_time` seconds of f are
/// reached (after warm-up); only f is timed.
template <class S, class F, class D>
Timing time_it(S&& setup, F&& f, D&& teardown, double min_time, int min_reps)
{
    for (int i = 0; i < 3; ++i) {
        setup();
        f();
        teardown();
    }
    std::vector<double> us;
    double total = 0;
    while (static_cast<int>(us.size()) < min_reps || total < min_time) {
        setup();
        const auto t0 = std::chrono::steady_clock::now();
        f();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        teardown();
        us.push_back(s * 1e6);
        total += s;
        if (us.size() >= 100000)
            break;
    }
    std::sort(us.begin(), us.end());
    const std::size_t n = us.size();
    const double median = n % 2 ? us[n / 2] : 0.5 * (us[n / 2 - 1] + us[n / 2]);
    return { median, us.front(), us.back() };
}

template <class F>
Timing time_it(F&& f, double min_time, int min_reps)
{
    return time_it([] {}, std::forward<F>(f), [] {}, min_time, min_reps);
}

inline void print(const std::string& name, const char* path, const char* phase, int threads, const Timing& t)
{
    std::printf("{\"case\": \"%s\", \"path\": \"%s\", \"phase\": \"%s\", \"threads\": %d, \"median_us\": %.1f, "
                "\"min_us\": %.1f, \"max_us\": %.1f}\n",
                name.c_str(), path, phase, threads, t.median, t.min, t.max);
    std::fflush(stdout);
}

/// The options the batch-norm benches share: --min-time SECONDS, --case SUBSTRING (cases whose
/// name contains it), --list (print the selected case names and exit, for scripts), and, where
/// `with_path` is set (bench_batch_norm), --path VALUE.
struct Options {
    double min_time = 1.0;
    std::string only;
    std::string path = "all";
    bool selected(const std::string& name) const { return only.empty() || name.find(only) != std::string::npos; }
};

/// Parses argv into o (--list prints `cases`); returns the exit code when the program should stop (--list done: 0; bad
/// usage, printed: 2), nothing when it should run.
inline std::optional<int> parse_options(int argc, char** argv, Options& o, bool with_path = false,
                                        const std::vector<Case>& cases = batch_norm_cases())
{
    bool list = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--min-time") && i + 1 < argc)
            o.min_time = std::atof(argv[++i]);
        else if (!std::strcmp(argv[i], "--case") && i + 1 < argc)
            o.only = argv[++i];
        else if (with_path && !std::strcmp(argv[i], "--path") && i + 1 < argc)
            o.path = argv[++i];
        else if (!std::strcmp(argv[i], "--list"))
            list = true;
        else {
            std::fprintf(stderr, "usage: %s [--min-time SECONDS] [--case SUBSTRING] [--list]%s\n", argv[0],
                         with_path ? " [--path kernel|op|floor]" : "");
            return 2;
        }
    }
    if (!list)
        return std::nullopt;
    for (const Case& c : cases)
        if (o.selected(case_name(c)))
            std::printf("%s\n", case_name(c).c_str());
    return 0;
}

} // namespace bench
