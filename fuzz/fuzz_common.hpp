// Shared by the libFuzzer targets (Note [Fuzz targets] in fuzz/CMakeLists.txt).
#pragma once

#include "framework/errors.hpp"
#include "framework/limits.hpp"
#include "framework/model.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace xtape::fuzz {

/// The readers under test take a path, so each input is written to one file per process (in
/// /dev/shm when it exists: the fuzzer writes it thousands of times a second).
inline std::string write_input(const std::uint8_t* data, std::size_t size, const char* suffix)
{
    static const std::string path = std::string(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") +
                                    "/xtape_fuzz_" + std::to_string(::getpid()) + suffix;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f)
        __builtin_trap();
    if (size && std::fwrite(data, 1, size, f) != size)
        __builtin_trap();
    std::fclose(f);
    return path;
}

/// Lowers xtape's allocation limit once, well under libFuzzer's -malloc_limit_mb, so that a size
/// read from the input that passes xtape's checks cannot exhaust the fuzzer's memory either.
inline void limit_allocations_once()
{
    static const bool done = [] {
        set_max_array_elements(std::size_t(1) << 24); // 64 MiB of floats
        return true;
    }();
    (void)done;
}

/// Runs f; xtape's own typed errors are the expected outcome of bad input and end the run
/// quietly. Anything else (std::bad_alloc, a library exception that escaped, a crash) reaches
/// libFuzzer, which reports it with the input.
template <class F>
void expect_clean(F&& f)
{
    try {
        f();
    } catch (const xtape::Error&) {
    }
}

/// Runs a model that was built from fuzzed input on a batch of two zero samples when its input
/// shape is known and small, so the layers' calls are fuzzed too, not only their constructors.
template <class T>
void exercise(Model<T>& model)
{
    const dims_t in = model.input_shape();
    shape_t shape{ 2 };
    std::size_t n = 2;
    for (std::size_t i = 1; i < in.size(); ++i) {
        if (in[i] <= 0 || in[i] > 4096)
            return;
        shape.push_back(static_cast<std::size_t>(in[i]));
        n *= static_cast<std::size_t>(in[i]);
        if (n > (std::size_t(1) << 16))
            return;
    }
    PredictOptions<T> quiet;
    quiet.verbose = 0;
    model.predict(array_t<T>(xt::zeros<T>(shape)), quiet);
}

} // namespace xtape::fuzz
