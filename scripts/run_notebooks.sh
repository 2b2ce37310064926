#!/usr/bin/env bash
# Runs a small sweep, extract and landmarks run, then executes every notebook in notebooks/ on their outputs.
#   scripts/run_notebooks.sh BUILD_DIR WORK_DIR
# BUILD_DIR holds experiments/volfeat and python/volfeat (not rebuilt here). WORK_DIR gets sweep/, extract/, landmarks/, the executed
# notebooks in executed/ and every figure as PNG in figures/. Data: ../shared/data/pelvis_ct beside the checkout,
# or volfeat's knee phantom if it is absent. Weights: BUILD_DIR/tests/data/torch/dn121_2d.npz (the torch_fx
# fixture) if present, else a seeded torchvision export if /usr/bin/python3 has torch + torchvision, else
# volfeat's random network only (scheme random). All of them are seeded initialisations, NOT pretrained weights.
# The notebooks' default input directories are those of WORK_DIR = build/notebooks (run from the project root).
# Prints "N passed, M failed" (notebooks) last; exits non-zero if a notebook or a volfeat run failed.
# VOLFEAT_THREADS=N limits volfeat's threads (default: all cores).
set -uo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR WORK_DIR" >&2
  exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "$1" && pwd) || exit 2
mkdir -p "$2" || exit 2
work=$(cd "$2" && pwd)
volfeat=$build/experiments/volfeat
py=/usr/bin/python3
jupyter=/usr/bin/jupyter
[[ -x $jupyter ]] || jupyter=$(command -v jupyter || true)
t_start=$SECONDS
failures=0
common=(--quiet)
[[ -n "${VOLFEAT_THREADS:-}" ]] && common+=(--threads "$VOLFEAT_THREADS")

say() { echo "run_notebooks: $*"; }

if [[ -z "$jupyter" ]]; then
  say "no jupyter (Debian's jupyter-nbconvert): cannot execute the notebooks"
  echo "0 passed, 0 failed"
  exit 1
fi

# The binary is rebuilt by others from time to time: wait for it, and retry a run that fails while it is relinked.
for _ in $(seq 1 24); do
  [[ -x $volfeat ]] && break
  say "waiting for $volfeat ..."
  sleep 5
done
if [[ ! -x $volfeat ]]; then
  say "no volfeat binary at $volfeat"
  echo "0 passed, 0 failed"
  exit 1
fi

run_volfeat() {  # run_volfeat NAME ARGS...: up to 3 attempts; the log goes to WORK_DIR/NAME.log
  local name=$1
  shift
  local attempt t0=$SECONDS
  for attempt in 1 2 3; do
    if "$volfeat" "$@" >"$work/$name.log" 2>&1; then
      say "$name: ok in $((SECONDS - t0)) s ($(tail -n 1 "$work/$name.log"))"
      return 0
    fi
    [[ $attempt -lt 3 ]] && { say "$name: failed (attempt $attempt), retrying in 10 s"; sleep 10; }
  done
  say "$name: FAILED; its output:"
  sed 's/^/  | /' "$work/$name.log"
  return 1
}

# ---- data ---------------------------------------------------------------------------------------------------
pelvis=$(cd "$root/.." && pwd)/shared/data/pelvis_ct
if [[ -f $pelvis/ct.nii.gz && -f $pelvis/femur1_hip2.nii.gz ]]; then
  ct=$pelvis/ct.nii.gz
  mask=$pelvis/femur1_hip2.nii.gz
  labels=femur=1,hip=2
  say "data: the pelvis CT $ct"
else
  say "data: $pelvis is absent: using volfeat's synthetic knee phantom instead"
  rm -rf "$work/phantom"
  run_volfeat phantom phantom --out "$work/phantom" || failures=$((failures + 1))
  ct=$work/phantom/knee_ct.nii.gz
  mask=$work/phantom/knee_labels.nii.gz
  labels=femur=1,tibia=2
  common+=(--resample 2)  # 160x160x128 at 1 mm -> 80x80x64: keeps the runs small
fi
data=(--ct "$ct" --mask "$mask" --labels "$labels" "${common[@]}")

# ---- weights ------------------------------------------------------------------------------------------------
weights=$build/tests/data/torch/dn121_2d.npz
if [[ -f $weights ]]; then
  say "weights: $weights (the torch_fx fixture: torchvision's seeded init exported, NOT pretrained)"
elif $py -c "import torch, torchvision" >/dev/null 2>&1; then
  weights=$work/dn121_seed0.npz
  if [[ ! -f $weights ]]; then
    $py "$root/weights/export_torchvision.py" --seed 0 --out "$weights" >"$work/export.log" 2>&1 ||
      { say "torchvision export FAILED:"; sed 's/^/  | /' "$work/export.log"; weights=""; failures=$((failures + 1)); }
  fi
  [[ -n $weights ]] && say "weights: $weights (seeded torchvision export, NOT pretrained)"
else
  weights=""
  say "weights: /usr/bin/python3 cannot import torch + torchvision: scheme random only (volfeat's seeded network)"
fi
if [[ -n $weights ]]; then
  wargs=(--weights "$weights")
  schemes=random,i3d-mean
  extract_scheme=(--inflate i3d-mean)
else
  wargs=()
  schemes=random
  extract_scheme=()
fi

# ---- volfeat runs -------------------------------------------------------------------------------------------
layers=denseblock1,transition1,denseblock2
rm -rf "$work/sweep" "$work/extract" "$work/landmarks" "$work/executed" "$work/figures"
run_volfeat sweep sweep "${data[@]}" "${wargs[@]}" --schemes "$schemes" --seed 0 --layers "$layers" \
  --pools mean,max,gem --modes shared --similarities cosine,cka --null-seeds 2 --out "$work/sweep" ||
  failures=$((failures + 1))
run_volfeat extract extract "${data[@]}" "${wargs[@]}" "${extract_scheme[@]}" --layers "$layers" \
  --out "$work/extract" || failures=$((failures + 1))
if "$volfeat" landmarks --help >/dev/null 2>&1; then
  # exact per-patch features (not --dense), few landmarks and a small search radius
  run_volfeat landmarks landmarks "${data[@]}" "${wargs[@]}" --schemes "$schemes" --layers conv0,shallow \
    --patch 12,16 --max-landmarks 6 --radius 12 --stride 2 --out "$work/landmarks" || failures=$((failures + 1))
else
  say "landmarks: this volfeat has no 'landmarks' subcommand: notebooks/03_landmarks.ipynb will say it skipped"
fi
say "volfeat runs done in $((SECONDS - t_start)) s"

# ---- notebooks ----------------------------------------------------------------------------------------------
kernel=$($py - <<'EOF' 2>/dev/null
from jupyter_client.kernelspec import KernelSpecManager
specs = KernelSpecManager().find_kernel_specs()
print("python3" if "python3" in specs else next(iter(sorted(specs)), ""))
EOF
)
if [[ -z "$kernel" ]]; then
  say "no Jupyter kernel installed (python3-ipykernel): cannot execute the notebooks"
  echo "0 passed, 0 failed"
  exit 1
fi
# The notebooks import volfeat (the Python module of this build): 04 reads NIfTI with it, 05 calls extract and
# Network.forward on the same data and weights as the extract run above and checks the CLI's features bit for bit.
export PYTHONPATH=$build/python${PYTHONPATH:+:$PYTHONPATH}
export VOLFEAT_CT=$ct VOLFEAT_MASK=$mask VOLFEAT_LABELS=$labels VOLFEAT_WEIGHTS=$weights VOLFEAT_LAYERS=$layers
export VOLFEAT_SWEEP_DIR=$work/sweep VOLFEAT_EXTRACT_DIR=$work/extract VOLFEAT_LANDMARKS_DIR=$work/landmarks
export VOLFEAT_FIGURES_DIR=$work/figures VOLFEAT_RUN_CWD=$root
export PYDEVD_DISABLE_FILE_VALIDATION=1
mkdir -p "$work/executed"
passed=0
failed=0
cd "$root/notebooks" || exit 1
for nb in *.ipynb; do
  t0=$SECONDS
  if "$jupyter" nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name="$kernel" \
      --ExecutePreprocessor.timeout=300 --output-dir "$work/executed" "$nb" >"$work/executed/${nb%.ipynb}.log" 2>&1; then
    passed=$((passed + 1))
    say "$nb: ok in $((SECONDS - t0)) s"
  else
    failed=$((failed + 1))
    say "$nb: FAILED in $((SECONDS - t0)) s; the end of its log:"
    grep -v '^0.00s' "$work/executed/${nb%.ipynb}.log" | tail -n 25 | sed 's/^/  | /'
  fi
done
say "executed notebooks in $work/executed, figures in $work/figures ($(ls "$work/figures" 2>/dev/null | wc -l) PNG);" \
  "total $((SECONDS - t_start)) s"
[[ $failures -gt 0 ]] && say "$failures volfeat run(s) failed"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $failures -eq 0 && $passed -gt 0 ]]
