#!/usr/bin/env bash
# Issue #12's checks on a GPU machine, as one prepared script (GPU time is short). Run it from the
# checkout there, after ../shared/gpu/pack.sh built build-cuda here:
#   bash .gpu/run.sh 'bash scripts/gpu_check.sh [quick]'
# Steps, each under its own timeout, each step's outcome on one line at the end:
#   1. ctest -L cuda: every primitive (float32 on 3xTF32 tensor cores, tf32) against the reference, and
#      DenseNet against the PyTorch fixtures (the tests' figures, printed after it);
#   2. bench/compare_pytorch_cuda.py: volfeat-cuda float32/tf32 vs PyTorch fp32-strict/TF32/bf16 at 128³,
#      108×256×256 and 216×512×512 (quick: 128³ and 108×256×256 only);
#   3. bench/cuda_forward.cu --profile: the forward's GPU time per kind of step at 216×512×512;
#   4. bench/time_extract.py with volfeat-cuda: the whole extract at 216×512×512, float32 and tf32.
# Logs go to $OUT (the device tool's folder) when set, else to /tmp/vfgpu_out.
set -uo pipefail
out=${OUT:-/tmp/vfgpu_out}
mkdir -p "$out"
build=${VOLFEAT_CUDA_BUILD:-build-cuda}
quick=${1:-}
summary=()
step() {  # step NAME SECONDS CMD...
  local name=$1 secs=$2
  shift 2
  echo "=== $name ($(date -u +%T))"
  timeout "$secs" "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  summary+=("$name: exit $rc")
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
step ctest 150 ctest --test-dir "$build" -L cuda --output-on-failure -V
grep -aE "worst|tensor cores|tf32 \(|SKIP|NOTE" "$out/ctest.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-400
sizes=128x128x128,108x256x256,216x512x512
[[ $quick == quick ]] && sizes=128x128x128,108x256x256
step compare 200 env PYTHONUNBUFFERED=1 python3 bench/compare_pytorch_cuda.py --build "$build" --sizes "$sizes" \
  --json "$out/compare.json"
for p in float32 tf32; do  # where the forward's time goes, per kind of step
  step "profile_$p" 60 "$build/bench/volfeat_cuda_forward" 216 512 512 --reps 1 --warmup 1 --profile --precision "$p"
done
if [[ $quick != quick ]]; then
  for p in float32 tf32; do
    step "extract_$p" 60 env PYTHONUNBUFFERED=1 python3 bench/time_extract.py --build "$build" --program volfeat-cuda \
      --dims 216,512,512 --reps 3 --threads 16 --precision "$p" --work /tmp/vfgpu_extract
  done
fi
printf '%s\n' "${summary[@]}"
