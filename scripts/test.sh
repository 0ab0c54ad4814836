#!/usr/bin/env bash
# The README's test command: installs dependencies, builds everything in Release (with the
# optional comparison benches when their packages are usable), runs the whole doctest suite
# through ctest, then rebuilds the tests labelled "sanitize" with AddressSanitizer and
# UndefinedBehaviorSanitizer under clang, runs them, and runs each libFuzzer target in the same
# tree for XTAPE_FUZZ_SECONDS (default 30) plus its committed regression inputs
# (XTAPE_SKIP_SANITIZE=1 skips that part).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/compiler_cache.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXTAPE_BUILD_TESTS=ON -DXTAPE_BUILD_EXAMPLES=ON \
    -DXTAPE_BUILD_BENCH=ON -DXTAPE_BUILD_TOOLS=ON -DXTAPE_BENCH_ONEDNN=ON -DXTAPE_BENCH_TORCH=ON \
    "${cache_args[@]}" > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$jobs" >> build.log 2>&1 || { tail -n 80 build.log; exit 1; }
(cd build && ctest --output-on-failure -j1)
if [ "${XTAPE_SKIP_SANITIZE:-0}" != "1" ]; then
    # -O1 -g1: half the compile time of -O2 -g under the sanitizers (measured on losses.cpp:
    # 29.8 s -> 14.1 s), with line numbers still in the reports.
    # clang, because libFuzzer needs it: one sanitizer build of the library serves the tests
    # and the fuzzers (Note [Fuzz targets] in fuzz/CMakeLists.txt).
    CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DXTAPE_SANITIZE=ON -DXTAPE_FUZZ=ON \
        -DXTAPE_FUZZ_SECONDS="${XTAPE_FUZZ_SECONDS:-30}" -DXTAPE_NATIVE=OFF -DXTAPE_BUILD_TESTS=ON \
        -DXTAPE_BUILD_EXAMPLES=OFF -DXTAPE_BUILD_BENCH=OFF -DXTAPE_BUILD_TOOLS=ON "${cache_args[@]}" > build-asan.log 2>&1 \
        || { cat build-asan.log; exit 1; }
    cmake --build build-asan -j"$jobs" --target sanitize_tests fuzz_targets >> build-asan.log 2>&1 \
        || { tail -n 80 build-asan.log; exit 1; }
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --output-on-failure -j1 -L sanitize)
    (cd build-asan && ctest --output-on-failure -j1 -L fuzz)
fi
