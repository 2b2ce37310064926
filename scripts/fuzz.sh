#!/usr/bin/env bash
# Build and run one libFuzzer target:  scripts/fuzz.sh TARGET SECONDS
#   TARGET   nifti | npz | dicom_series (or fuzz_nifti | fuzz_npz | fuzz_dicom_series)
#   SECONDS  total fuzzing time (libFuzzer -max_total_time)
#
# Builds with clang in build-fuzz/ (override with VOLFEAT_FUZZ_BUILD=DIR) when needed, seeds a corpus
# from tests/bad_inputs/make_bad_inputs.py (--seed-corpus, plus the small bad-input fixtures), keeps
# the growing corpus in build-fuzz/corpus/TARGET across runs, writes crashers to
# build-fuzz/artifacts/TARGET/, and ends with a summary line: executions, exec/s, coverage (libFuzzer's
# edge count `cov` and feature count `ft`), corpus size and findings. Exit status 1 on a finding.
# Extra arguments after SECONDS go to the fuzzer (e.g. -jobs=1 -max_len=8192).
#
# A finding becomes a regression test: convert it with
#   xxd -p CRASH > tests/fuzz/regressions/TARGET/NAME.hex     (then fix the bug; ctest replays it)
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
kind=${1#fuzz_}
seconds=$2
shift 2
case "$kind" in
  nifti|npz|dicom_series) ;;
  *) echo "fuzz.sh: unknown target '$kind' (nifti, npz or dicom_series)" >&2; exit 2 ;;
esac
target=fuzz_$kind
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VOLFEAT_FUZZ_BUILD:-$root/build-fuzz}
python=${VOLFEAT_PYTHON:-/usr/bin/python3}
cxx=${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14)}

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DVOLFEAT_FUZZ=ON -DVOLFEAT_BUILD_TESTS=OFF -DVOLFEAT_BUILD_CLI=OFF -DVOLFEAT_BUILD_BENCH=OFF \
    -DVOLFEAT_NATIVE=OFF -DVOLFEAT_WITH_THRUST_OMP=OFF >/dev/null
fi
cmake --build "$build" --target "$target" -j2 >/dev/null

# Seeds: small valid files of every flavour, and the small bad inputs (defects next to valid data).
seeds=$build/seeds
if [[ ! -d $seeds/$kind ]]; then
  rm -rf "$seeds.tmp"
  "$python" "$root/tests/bad_inputs/make_bad_inputs.py" "$seeds.tmp" --seed-corpus
  "$python" "$root/tests/bad_inputs/make_bad_inputs.py" "$seeds.tmp/bad" >/dev/null
  find "$seeds.tmp/bad" -name '*.nii*' -size -8k -exec cp {} "$seeds.tmp/nifti/" \;
  find "$seeds.tmp/bad" -name '*.npz' -size -8k -exec cp {} "$seeds.tmp/npz/" \;
  rm -rf "$seeds.tmp/bad"
  # dicom_series: synthetic slice headers, seeded from the kept regressions (hex text -> bytes)
  mkdir -p "$seeds.tmp/dicom_series"
  for hex in "$root"/tests/fuzz/regressions/dicom_series/*.hex; do
    sed 's/#.*//' "$hex" | xxd -r -p >"$seeds.tmp/dicom_series/$(basename "$hex" .hex)"
  done
  mv "$seeds.tmp" "$seeds"
fi
corpus=$build/corpus/$kind
artifacts=$build/artifacts/$kind
mkdir -p "$corpus" "$artifacts"
log=$build/$target.log
dict=()
[[ -f $root/tests/fuzz/$kind.dict ]] && dict=(-dict="$root/tests/fuzz/$kind.dict")

echo "fuzz.sh: $target for ${seconds}s (corpus $corpus, seeds $seeds/$kind, log $log)"
set +e
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$build/tests/fuzz/$target" "$corpus" "$seeds/$kind" -max_total_time="$seconds" -max_len=16384 \
  -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=20 -print_final_stats=1 -artifact_prefix="$artifacts/" \
  "${dict[@]}" "$@" >"$log" 2>&1
status=$?
set -e

execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
findings=$(find "$artifacts" -type f | wc -l)
echo "fuzz.sh: $target ${seconds}s: ${execs:-?} executions (${rate:-?}/s), coverage cov=${cov:-?} edges ft=${ft:-?}" \
     "features, corpus ${corp:-?}, $findings finding(s) in $artifacts, exit $status"
if [[ $status -ne 0 || $findings -ne 0 ]]; then
  grep -E 'ERROR:|runtime error|SUMMARY|Test unit written' "$log" | head -20
  exit 1
fi
