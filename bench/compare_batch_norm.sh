#!/usr/bin/env bash
# Interleaved comparison of bench_batch_norm (xtape's kernels) with the optional oneDNN and
# libtorch benches, for a noisy machine: one round runs each program once per case, back to back,
# so a slow moment of the machine hits both; after ROUNDS rounds it prints, per case and phase at
# 2 threads, the median over rounds of each program's median and in how many rounds xtape was
# faster than the best other program of that round. The per-round JSON lines go to stderr.
# bench_batch_norm's "floor" path (the byte model's traffic in flat loops, no batch-norm work) runs
# in each round too and is printed as a column, not as a competitor: how close each program is to
# what this machine's memory gave at that moment.
#
#   bench/compare_batch_norm.sh [BUILD_DIR] [ROUNDS] [CASE_SUBSTRING]
#
# A comparison program that was not built (its library is not installed) is left out.
set -euo pipefail
build=${1:-build}
rounds=${2:-5}
only=${3:-}
xtape="$build/bench/bench_batch_norm"
[ -x "$xtape" ] || { echo "compare_batch_norm: $xtape not found (build with -DXTAPE_BUILD_BENCH=ON)" >&2; exit 1; }
others=()
for b in bench_batch_norm_onednn bench_batch_norm_torch; do
    [ -x "$build/bench/$b" ] && others+=("$build/bench/$b")
done
[ ${#others[@]} -gt 0 ] || echo "compare_batch_norm: no comparison bench built; xtape alone" >&2
cases=$("$xtape" --list --case "$only")
[ -n "$cases" ] || { echo "compare_batch_norm: no case matches '$only'" >&2; exit 1; }

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for r in $(seq "$rounds"); do
    for c in $cases; do
        for prog in "$xtape kernel" "$xtape floor" "${others[@]}"; do
            read -r bin path <<<"$prog"
            args=(--case "$c" --min-time 0.3)
            [ -n "$path" ] && args+=(--path "$path")
            "$bin" "${args[@]}" 2>/dev/null | grep '"threads": 2' | sed "s/^/$r /" | tee -a "$lines" >&2
        done
    done
done

# One line per (round, case, path, phase) -> summary per (case, phase).
awk '
function median(s,   a, n, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    r = $1
    match($0, /"case": "[^"]*"/); c = substr($0, RSTART + 9, RLENGTH - 10)
    match($0, /"path": "[^"]*"/); p = substr($0, RSTART + 9, RLENGTH - 10)
    match($0, /"phase": "[^"]*"/); ph = substr($0, RSTART + 10, RLENGTH - 11)
    match($0, /"median_us": [0-9.]+/); m = substr($0, RSTART + 13, RLENGTH - 13) + 0
    key = c SUBSEP ph
    keys[key] = 1; paths[p] = 1
    med[key, p] = med[key, p] " " m
    if (p == "kernel") mine[key, r] = m
    else if (p == "floor") { }
    else if (!((key, r) in best) || m < best[key, r]) best[key, r] = m
    rounds[key, r] = 1
}
END {
    for (key in keys) {
        split(key, kc, SUBSEP)
        out = sprintf("%-22s %-8s", kc[1], kc[2])
        for (p in paths) if ((key, p) in med) out = out sprintf("  %s %.1f", p == "kernel" ? "xtape" : p, median(med[key, p]))
        wins = 0; total = 0
        for (rk in rounds) {
            split(rk, rr, SUBSEP)
            if (rr[1] SUBSEP rr[2] != key || !((key, rr[3]) in best)) continue
            total++
            if (mine[key, rr[3]] < best[key, rr[3]]) wins++
        }
        if (total) out = out sprintf("  xtape faster in %d/%d rounds", wins, total)
        print out
    }
}' "$lines" | sort
