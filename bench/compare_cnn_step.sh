#!/usr/bin/env bash
# Interleaved comparison of one training step of issue 12's Fashion-MNIST CNN in xtape
# (bench_cnn_step) and in libtorch (bench_cnn_step_torch, built with -DXTAPE_BENCH_TORCH=ON), for
# a noisy machine: each round runs both programs once, back to back, in alternating order, so a
# slow moment of the machine hits both. Every configuration of each program runs in every round
# (xtape's omp,blas splits; torch's memory formats and torch,blas splits). After ROUNDS rounds it
# prints, per configuration, the median over rounds of the per-round median step time and the
# smallest and largest of them; then, per round, the best xtape configuration over the best torch
# configuration, as a median and range over rounds. The per-round lines go to stderr.
#
#   bench/compare_cnn_step.sh [BUILD_DIR] [ROUNDS] [STEPS]
set -euo pipefail
build=${1:-build}
rounds=${2:-5}
steps=${3:-20}
xtape="$build/bench/bench_cnn_step"
torch="$build/bench/bench_cnn_step_torch"
[ -x "$xtape" ] || { echo "compare_cnn_step: $xtape not found (build with -DXTAPE_BUILD_BENCH=ON)" >&2; exit 1; }
[ -x "$torch" ] || { echo "compare_cnn_step: $torch not found (configure with -DXTAPE_BENCH_TORCH=ON; needs libtorch-dev)" >&2; exit 1; }

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
run_xtape() {
    # Table rows "omp,blas  median [p10, p90]".
    "$xtape" --steps "$steps" --epochs 0 --config 1,1 --config 1,2 --config 2,1 --config 2,2 |
        awk -v r="$1" '$1 ~ /^[0-9]+,[0-9]+$/ { print r, "xtape", "omp,blas=" $1, $2 }'
}
run_torch() {
    # Table rows "format  torch,blas  median [p10, p90]".
    "$torch" --steps "$steps" |
        awk -v r="$1" '$2 ~ /^[0-9]+,[0-9]+$/ { print r, "torch", $1 "/torch,blas=" $2, $3 }'
}
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        { run_xtape "$r"; run_torch "$r"; } | tee -a "$lines" >&2
    else
        { run_torch "$r"; run_xtape "$r"; } | tee -a "$lines" >&2
    fi
done

awk '
function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    r = $1; prog = $2; cfg = $3; ms = $4 + 0
    key = prog " " cfg
    all[key] = all[key] " " ms
    if (!(key in lo) || ms < lo[key]) lo[key] = ms
    if (!(key in hi) || ms > hi[key]) hi[key] = ms
    if (!((prog, r) in best) || ms < best[prog, r]) best[prog, r] = ms
    seen[r] = 1
}
END {
    printf "%-36s %10s %22s\n", "program configuration", "median ms", "[min, max] over rounds"
    for (key in all) printf "%-36s %10.2f   [%8.2f, %8.2f]\n", key, median(all[key]), lo[key], hi[key] | "sort"
    close("sort")
    ratios = ""; n = 0; rlo = 1e9; rhi = 0
    for (r in seen) {
        if (!(("xtape", r) in best) || !(("torch", r) in best)) continue
        q = best["xtape", r] / best["torch", r]; ratios = ratios " " q; n++
        if (q < rlo) rlo = q; if (q > rhi) rhi = q
    }
    if (n) printf "best xtape / best torch per round: median %.3f [%.3f, %.3f] over %d rounds (target <= 0.5)\n", median(ratios), rlo, rhi, n
}' "$lines"
