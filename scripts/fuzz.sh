#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time: scripts/fuzz.sh TARGET SECONDS [BUILD_DIR]
#   TARGET: npy | idx | model_config | load_model | load_weights | cli_args (fuzz/fuzz_TARGET.cpp)
# BUILD_DIR defaults to build-asan (configured here with clang, ASan/UBSan and XTAPE_FUZZ when
# it is not yet); ctest's fuzz_TARGET tests call this with the tree they run in. The corpus
# grows in BUILD_DIR/fuzz/corpus/TARGET across runs; seeds come from the real Keras files
# (../shared/keras-models, or $XTAPE_KERAS_MODELS_DIR) and small files made here. A failing input
# is written to BUILD_DIR/fuzz/artifacts/TARGET/; commit it under tests/fuzz_regressions/TARGET/
# once fixed, so ctest's fuzz_TARGET_regressions replays it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:?usage: scripts/fuzz.sh TARGET SECONDS [BUILD_DIR]}"
seconds="${2:?usage: scripts/fuzz.sh TARGET SECONDS [BUILD_DIR]}"
build="${3:-$root/build-asan}"
case "$target" in npy|idx|model_config|load_model|load_weights|cli_args) ;; *)
    echo "fuzz.sh: unknown target '$target' (npy, idx, model_config, load_model, load_weights, cli_args)" >&2; exit 2 ;;
esac
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] || { echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2; exit 2; }
bin="$build/fuzz/fuzz_$target"
if [ ! -x "$bin" ] || [ $# -lt 3 ]; then
    if [ ! -f "$build/CMakeCache.txt" ]; then
        CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DXTAPE_SANITIZE=ON -DXTAPE_FUZZ=ON \
            -DXTAPE_NATIVE=OFF -DXTAPE_BUILD_TESTS=ON -DXTAPE_BUILD_EXAMPLES=OFF -DXTAPE_BUILD_BENCH=OFF > /dev/null
    fi
    cmake --build "$build" -j"$(nproc)" --target "fuzz_$target" fuzz_extract_configs > /dev/null
fi
models="${XTAPE_KERAS_MODELS_DIR:-$root/../shared/keras-models}"
work="$build/fuzz"
corpus="$work/corpus/$target"; seeds="$work/seeds/$target"; artifacts="$work/artifacts/$target"
mkdir -p "$corpus" "$seeds" "$artifacts"
real_files() { if [ -d "$models" ]; then find "$models" -name "$1" -size "-$2" -type f | sort; fi; }
if [ -z "$(ls -A "$seeds")" ]; then
    case "$target" in
    npy)
        real_files '*.npy' 100k | while read -r f; do cp "$f" "$seeds/$(echo "$f" | md5sum | cut -c1-12).npy"; done
        printf "\x93NUMPY\x01\x00\x3c\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }\n\x00\x00\x80\x3f\x00\x00\x00\x40" > "$seeds/small.npy" ;;
    idx)
        printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03\x04\x05\x06\x07\x08' > "$seeds/small.idx"
        gzip -c "$seeds/small.idx" > "$seeds/small.idx.gz"
        printf '\x00\x00\x08\x01\x00\x00\x00\x03\x07\x08\x09' > "$seeds/labels.idx" ;;
    model_config)
        mapfile -t files < <(real_files '*.h5' 4M)
        [ ${#files[@]} -eq 0 ] || "$build/fuzz/fuzz_extract_configs" "$seeds" "${files[@]}" > /dev/null ;;
    load_model|load_weights)
        # Both loaders choose the format by the first bytes, so the Keras 3 .keras archives (zip)
        # are seeds too.
        { real_files '*.h5' 100k; real_files '*.keras' 100k; } | while read -r f; do
            cp "$f" "$seeds/$(echo "$f" | md5sum | cut -c1-12).${f##*.}"; done ;;
    cli_args) # one argument per line
        printf 'fit\nm.h5\n--data\nd.h5\n--output\no.h5\n--epochs\n2\n--learning-rate\n0.01\n--x\na\n--x\nb\n--no-shuffle\n--validation-split\n0.2\n--seed\n3' > "$seeds/fit"
        printf 'gradcheck\nm.h5\n--data=d.h5\n--eps\n1e-6\n--max-elements\n0\n--seed\n9' > "$seeds/gradcheck"
        printf 'predict\nm.h5\n--input\ni.h5\n--dataset\nx_0\n--output\no.npy\n--output-names\n--batch-size\n7' > "$seeds/predict"
        printf 'plot\nlog.csv\n--output\nc.svg\n--metrics\nloss,accuracy\n--size\n640x480' > "$seeds/plot"
        printf 'summary\nm.h5\n--json' > "$seeds/summary"
        printf 'fold\n--help' > "$seeds/help"
        printf -- '--version' > "$seeds/version" ;;
    esac
fi
[ -n "$(ls -A "$seeds")" ] || echo "fuzz.sh: no seeds for $target (real files not found at $models); fuzzing from nothing"
extra=()
[ "$target" = model_config ] && extra=(-dict="$root/fuzz/model_config.dict")
[ "$target" = cli_args ] && extra=(-dict="$root/fuzz/cli_args.dict")
# -seed fixes the mutation order; the memory limits make an unbounded allocation a finding.
asan="detect_leaks=1"
malloc_limit=1024
hdf5=0
case "$target" in load_model|load_weights)
    hdf5=1
    # Debian's libhdf5 1.10.8 crashes (SEGV in H5HG_read), hangs (H5HG_read under H5Aread) and
    # leaks (H5F_open) on some corrupt files, and mallocs sizes read from corrupt metadata (446 GB
    # in H5C_protect), handling the NULL that glibc returns. No check on xtape's side can see
    # those coming (tests/fuzz_known/README.md). So the HDF5 targets fuzz in fork mode, which
    # records every finding under artifacts/ and goes on, and each finding is replayed below:
    # one whose faulting frame is inside libhdf5 is listed as a libhdf5 defect, any other fails
    # the run. xtape's own allocations stay bounded by the targets' limit (fuzz_common.hpp), and a
    # bad_alloc in xtape still fails. Full unwinding lets fuzz/lsan.supp and the classification
    # see libhdf5's frames (it has no frame pointers).
    extra+=(-fork=1 -ignore_timeouts=1 -ignore_ooms=1 -ignore_crashes=1)
    asan="detect_leaks=1:allocator_may_return_null=1:fast_unwind_on_malloc=0"
    malloc_limit=0 ;;
esac
export LSAN_OPTIONS="suppressions=$root/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-$asan}"
before=$(ls "$artifacts" | wc -l)
status=0
"$bin" -max_total_time="$seconds" -seed=1 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb="$malloc_limit" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" ${extra[@]+"${extra[@]}"} "$corpus" "$seeds" || status=$?
[ "$hdf5" = 1 ] || exit "$status"

# The first stack frame that is neither the fuzzer's, the sanitizers' nor libc's: where it failed.
faulting_frame() {
    grep -E '^ +#[0-9]+ 0x[0-9a-f]+ ' | grep -vE 'fuzzer::|__sanitizer|__asan|__lsan|__interceptor|AlarmCallback|libc\.so|in malloc|in calloc|in realloc|operator new|H5FL_|H5MM_' | head -n 1
}
ours=0; known=0
for a in "$artifacts"/*; do
    [ -e "$a" ] || continue
    out=$("$bin" -timeout=10 -rss_limit_mb=2048 "$a" 2>&1 || true)
    if ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error|deadly signal' <<<"$out"; then
        echo "fuzz.sh: $a: no longer fails on replay"; continue
    fi
    frame=$(faulting_frame <<<"$out")
    if grep -q 'libhdf5' <<<"$frame"; then
        known=$((known + 1)); echo "fuzz.sh: libhdf5 defect: $(basename "$a"):$(sed 's/.* in / in /' <<<"$frame")"
    else
        ours=$((ours + 1)); echo "fuzz.sh: FAILURE outside libhdf5: $a"; grep -E 'ERROR|SUMMARY' <<<"$out" | head -n 3; echo "   at:$frame"
    fi
done
echo "fuzz.sh: $target: $((before)) earlier findings, $known libhdf5 defects and $ours xtape failures among the artifacts"
[ "$ours" -eq 0 ]