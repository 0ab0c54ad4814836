#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and trains the Fashion-MNIST example.
# Extra arguments go to the example (e.g. --epochs 5 --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Options are explicit: a build/ configured earlier with other options must not drop the example.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DXTAPE_BUILD_EXAMPLES=ON > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$(nproc)" --target fashion_mnist >> build.log 2>&1 || { tail -n 80 build.log; exit 1; }
./build/examples/fashion_mnist "$@"
