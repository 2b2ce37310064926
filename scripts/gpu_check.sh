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
#   4. bench/time_extract.py with volfeat-cuda: the whole extract at 216×512×512, float32 and tf32;
#   5. issue #17's AMX tiles, on this machine's host CPU where it has them (no session's own machine has had
#      AMX): test_gemm_kernels (the tile GEMM on real tiles against a naive GEMM), test_bf16 on the tiles, and
#      bench/compare_pytorch.py --bf16-ab at 128³ on 2 threads, then the bf16 forward on AVX512-BF16 alone for
#      the A/B. Without AMX it prints the CPU and skips. Needs those targets in the pack:
#        VF_GPU_TARGETS="test_primitives_cuda test_densenet_cuda volfeat_cli_cuda volfeat_cuda_forward \
#                        test_gemm_kernels test_bf16 volfeat_forward" bash ../shared/gpu/pack.sh
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
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
if grep -qw amx_tile /proc/cpuinfo && grep -qw amx_bf16 /proc/cpuinfo; then
  echo "host CPU: $cpu, with AMX tiles"
  if [[ -x $build/tests/test_gemm_kernels && -x $build/tests/test_bf16 && -x $build/bench/volfeat_forward ]]; then
    step amx_tests 120 bash -c "'$build/tests/test_gemm_kernels' --log_level=message && \
      VOLFEAT_BF16_KERNELS=amx '$build/tests/test_bf16' --log_level=message"
    step amx_compare 150 env PYTHONUNBUFFERED=1 python3 bench/compare_pytorch.py --build "$build" \
      --python "$(command -v python3)" --sizes 128x128x128 --threads 2 --reps 5 --bf16-ab --markdown
    for k in avx512bf16 amx; do  # the same bf16 forward on each kernel set, 2 threads
      step "bf16_$k" 60 env VOLFEAT_BF16_KERNELS=$k OMP_PROC_BIND=close "$build/bench/volfeat_forward" 128 128 128 \
        --reps 7 --warmup 2 --threads 2 --precision bf16
    done
  else
    echo "AMX step skipped: the pack lacks test_gemm_kernels, test_bf16 or volfeat_forward (VF_GPU_TARGETS above)"
  fi
else
  echo "host CPU: $cpu; no AMX tiles (amx_tile, amx_bf16): AMX step skipped"
fi
printf '%s\n' "${summary[@]}"
