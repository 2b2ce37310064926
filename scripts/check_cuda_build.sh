#!/usr/bin/env bash
# Compiles the CUDA variant of volfeat (the Thrust backend under nvcc): the tests test_primitives_cuda
# and test_densenet_cuda, the CLI volfeat-cuda and the benchmark driver volfeat_cuda_forward, in a
# separate build directory, for the default architectures (VOLFEAT_CUDA_ARCHITECTURES: 75, the FMA
# convs, and 80, the tensor-core convs).
#   scripts/check_cuda_build.sh [BUILD_DIR]      (default: build-cuda beside this script's checkout)
#   VOLFEAT_JOBS=N for parallel compile jobs (default 2).
#   VOLFEAT_CUDA_BUILD_TYPE=T for the CMake build type (default Release). CI, which only compiles, sets None:
#   host code at -O0 (the device code is optimised by ptxas all the same), the same errors in 285 s against
#   426 s for Release (Zen 3, 2 jobs, 2026-12-02).
#   VOLFEAT_CUDA_ARCHITECTURES=LIST for other architectures than CMakeLists.txt's default, 75;80. CI sets 80:
#   every kernel, the tensor-core convs included, compiles for sm_80, and sm_75 only compiles the FMA
#   convs a second time (and the tensor-core kernel's empty #else body): 231 s against 304 s for the
#   two (build type None, AMD Zen 5, 2 jobs, 2026-12-05).
# Ninja where installed (scripts/generator.sh). Without nvcc it says so and exits 0. With a GPU
# (nvidia-smi lists one) it also runs the CUDA tests; without one it says plainly that they were
# compiled and not run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build-cuda}
jobs=${VOLFEAT_JOBS:-2}

nvcc=$(command -v nvcc || true)
if [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [[ -z "$nvcc" ]]; then
  echo "check_cuda_build: no nvcc on PATH or in /usr/local/cuda/bin: the CUDA variant was NOT compiled"
  exit 0
fi
echo "check_cuda_build: $("$nvcc" --version | tail -n 2 | head -n 1)"

# The architectures only when asked for: the default (75;80) is CMakeLists.txt's, and an existing build
# directory keeps the one it was configured with.
arch_args=()
if [[ -n "${VOLFEAT_CUDA_ARCHITECTURES:-}" ]]; then arch_args=(-DVOLFEAT_CUDA_ARCHITECTURES="$VOLFEAT_CUDA_ARCHITECTURES"); fi
# shellcheck source=generator.sh
source "$root/scripts/generator.sh"
volfeat_generator "$build"
cmake "${generator[@]}" -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${VOLFEAT_CUDA_BUILD_TYPE:-Release}" -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DVOLFEAT_WITH_CUDA=ON -DVOLFEAT_WITH_THRUST_OMP=OFF -DVOLFEAT_BUILD_BENCH=ON "${arch_args[@]}"
# One target holding the four (CMakeLists.txt: several --target names build one after another)
cmake --build "$build" -j "$jobs" --target volfeat_cuda_programs

echo "compiled: $build/tests/test_primitives_cuda $build/tests/test_densenet_cuda $build/experiments/volfeat-cuda" \
  "$build/bench/volfeat_cuda_forward"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "check_cuda_build: a GPU is present: running the CUDA tests"
  ctest --test-dir "$build" -L cuda --output-on-failure
  echo "CUDA variant compiled and its tests ran on: $(nvidia-smi -L | head -n 1)"
else
  echo "CUDA variant compiled; NOT run (no GPU on this machine)"
fi
