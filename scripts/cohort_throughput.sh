#!/usr/bin/env bash
# Volumes per hour of `volfeat sweep --manifest` over a 20-volume cohort: 19 knee phantoms of mixed
# sizes (32x40x40 .. 96x120x120 voxels) and the pelvis CT (122x101x112), a small layer set (a random
# DenseNet121 up to denseblock1, one pooling, one similarity: one forward pass per volume), at 1 rank
# (one process) and at 2 ranks (mpirun -np 2). Figures for README "Cohorts".
# usage: scripts/cohort_throughput.sh BUILD_DIR WORK_DIR [SHARED_DIR]
set -euo pipefail
BUILD=${1:?BUILD_DIR}; WORK=${2:?WORK_DIR}; SHARED=${3:-$(dirname "$0")/../../shared}
VOLFEAT=$BUILD/experiments/volfeat
mkdir -p "$WORK"
DIMS=(32,40,40 48,60,60 64,80,80 80,100,100 96,120,120)
echo "id,ct,mask,labels" > "$WORK/cohort.csv"
for i in $(seq 1 19); do
  d=${DIMS[$(( (i - 1) % ${#DIMS[@]} ))]}
  [ -f "$WORK/knee$i/knee_labels.nii.gz" ] || "$VOLFEAT" phantom --dims "$d" --seed "$i" --out "$WORK/knee$i" >/dev/null
  echo "knee$i,knee$i/knee_ct.nii.gz,knee$i/knee_labels.nii.gz,\"femur=1,tibia=2\"" >> "$WORK/cohort.csv"
done
echo "pelvis,$SHARED/data/pelvis_ct/ct.nii.gz,$SHARED/data/pelvis_ct/femur1_hip2.nii.gz,\"femur=1,hip=2\"" >> "$WORK/cohort.csv"
ARGS=(sweep --manifest "$WORK/cohort.csv" --schemes random --layers pool0,denseblock1 --pools mean --modes shared
      --similarities cosine --quiet)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ranks in 1 2; do
  rm -rf "$WORK/out$ranks"
  start=$(date +%s.%N)
  if [ "$ranks" = 1 ]; then "$VOLFEAT" "${ARGS[@]}" --out "$WORK/out$ranks"
  else mpirun --oversubscribe -np "$ranks" "$VOLFEAT" "${ARGS[@]}" --out "$WORK/out$ranks"; fi
  end=$(date +%s.%N)
  awk -v r="$ranks" -v s="$start" -v e="$end" 'BEGIN { t = e - s; printf "%d rank(s): 20 volumes in %.1f s = %.0f volumes/hour\n", r, t, 20 * 3600 / t }'
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
