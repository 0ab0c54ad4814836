#!/usr/bin/env bash
# Installs every build and run dependency of xtape from Debian 12's packages.
# Idempotent and non-interactive; both README commands call it first.
set -euo pipefail
pkgs=(g++ cmake make libxtensor-dev libxtensor-blas-dev libxsimd-dev xtl-dev libopenblas-dev
      doctest-dev libhdf5-dev nlohmann-json3-dev zlib1g-dev dataset-fashion-mnist
      clang libclang-rt-14-dev libomp-14-dev # clang: the sanitizer build and its libFuzzer targets
      libzip-dev                             # .keras archives (issue 18)
      libopenmpi-dev openmpi-bin             # data-parallel training (issue 14)
      libcli11-dev gnuplot-nox doxygen       # the CLI's parser, training-curve pictures, the API reference (issue 16)
      ccache)                                # compiler cache (scripts/compiler_cache.sh)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
