#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (issue #7).
#   scripts/sanitize.sh [BUILD_DIR]      (default: build-san in the project root)
# Configures BUILD_DIR with -DVOLFEAT_SANITIZE=ON (g++, -fsanitize=address,undefined at -O1; see
# CMakeLists.txt; Ninja where installed, scripts/generator.sh), builds the volfeat CLI, the tests and
# the fuzz replayers with -j${VOLFEAT_JOBS:-2}, then runs every ctest test, ${VOLFEAT_JOBS:-2} at a time,
# with --output-on-failure. Any ASan or UBSan report fails its test (halt_on_error, tests/CMakeLists.txt), also in the CLI runs of the
# python tests. Left out because no test runs them: the benchmarks and volfeat-thrust-omp (off by default anyway). Extra
# arguments after BUILD_DIR go to ctest (e.g. -R thrust). Exits with ctest's status; prints the
# build and test times. .ci/run runs it after the normal suite, with VOLFEAT_REFERENCE_DATA=build/tests/data:
# the reference steps (PyTorch's outputs, fixture files: the same for any build of this checkout) then copy
# that build's data instead of making it again (tests/CMakeLists.txt, volfeat_add_reference).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build-san}
shift || true
jobs=${VOLFEAT_JOBS:-2}

# shellcheck source=generator.sh
source "$root/scripts/generator.sh"
volfeat_generator "$build"

t0=$(date +%s)
cmake "${generator[@]}" -S "$root" -B "$build" -DVOLFEAT_SANITIZE=ON -DVOLFEAT_BUILD_BENCH=OFF -DVOLFEAT_BUILD_THRUST_CLI=OFF -DVOLFEAT_BUILD_PYTHON=OFF \
  -DVOLFEAT_REFERENCE_DATA="${VOLFEAT_REFERENCE_DATA:-}"
cmake --build "$build" -j"$jobs"
t1=$(date +%s)
echo "sanitize: configure + build took $(( t1 - t0 )) s"

status=0
# Two at a time: most tests spend part of their run single-threaded (python, gzip, PyTorch's
# reference), so this keeps both cores busy.
ctest --test-dir "$build" -j"$jobs" --output-on-failure "$@" || status=$?
echo "sanitize: ctest took $(( $(date +%s) - t1 )) s (ASan + UBSan, exit status $status)"
exit "$status"
