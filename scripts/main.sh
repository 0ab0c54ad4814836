#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and trains the Fashion-MNIST example.
# --model mlp (default) trains examples/fashion_mnist, --model cnn examples/fashion_mnist_cnn;
# other arguments go to the example (e.g. --epochs 5 --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."
model=mlp
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --model) model="${2:?--model needs mlp or cnn}"; shift 2 ;;
        --model=*) model="${1#--model=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
case "$model" in
    mlp) target=fashion_mnist ;;
    cnn) target=fashion_mnist_cnn ;;
    *) echo "main.sh: --model must be mlp or cnn, got '$model'" >&2; exit 2 ;;
esac
bash scripts/setup.sh
. scripts/compiler_cache.sh
# Options are explicit: a build/ configured earlier with other options must not drop the example.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXTAPE_BUILD_EXAMPLES=ON "${cache_args[@]}" > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$(nproc)" --target "$target" >> build.log 2>&1 || { tail -n 80 build.log; exit 1; }
./build/examples/"$target" ${args[@]+"${args[@]}"}
