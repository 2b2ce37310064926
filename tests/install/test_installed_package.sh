#!/usr/bin/env bash
# Installs the built tree into a scratch prefix and builds examples/ against it with find_package,
# as a user's project would, then runs the examples and imports the installed Python module.
# usage: test_installed_package.sh BUILD_DIR SOURCE_DIR WORK_DIR [SHARED_DIR]
set -euo pipefail
build=$1 src=$2 work=$3 shared=${4:-$src/../shared}
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/volfeat/volfeatConfig.cmake"
# At -O1: this checks the package (its config, its targets' flags and dependencies), not the optimiser.
# Release's -O3 made compiling the examples, this test's longest step, 1.7 times as long (2 TUs, -j2,
# Zen 3: 98 s against 57 s); they then run 0.9 s against 1.9 s.
cmake -S "$src/examples" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_FLAGS_RELEASE=-O1 \
  > "$work/configure.log"
cmake --build "$work/build" -j2 > "$work/build.log"
out=$("$work/build/phantom_similarity")
echo "$out"
# two layers, three cosines each, every one a number in [-1, 1]
[ "$(echo "$out" | wc -l)" -eq 2 ]
echo "$out" | grep -oE '[-]?[0-9]+\.[0-9]{4}' | awk '$1 < -1 || $1 > 1 { bad = 1 } END { exit bad }'
[ "$(echo "$out" | grep -oE '[-]?[0-9]+\.[0-9]{4}' | wc -l)" -eq 6 ]
echo "installed package: find_package(volfeat) + build + run phantom_similarity OK"

# extract_regions (volfeat::io: NIfTI in) on the pelvis CT, or on the knee phantom the installed CLI writes
ct=$shared/data/pelvis_ct/ct.nii.gz mask=$shared/data/pelvis_ct/femur1_hip2.nii.gz labels=femur=1,hip=2
if [ ! -f "$ct" ]; then
  "$work/prefix/bin/volfeat" phantom --out "$work/phantom" --dims 64,80,80 > /dev/null
  ct=$work/phantom/knee_ct.nii.gz mask=$work/phantom/knee_labels.nii.gz labels=femur=1,tibia=2
fi
out=$("$work/build/extract_regions" "$ct" "$mask" "$labels" conv0,denseblock1)
echo "$out"
# three pairs, two layers each, cosines in [-1, 1]; the same values as the installed CLI's table
[ "$(echo "$out" | wc -l)" -eq 3 ]
echo "$out" | awk 'NF != 3 || $2 < -1 || $2 > 1 || $3 < -1 || $3 > 1 { bad = 1 } END { exit bad }'
"$work/prefix/bin/volfeat" extract --ct "$ct" --mask "$mask" --labels "$labels" --layers conv0,denseblock1 \
  --quiet --out "$work/cli" > /dev/null
want=$(tail -n +2 "$work/cli/similarities.csv" | awk -F, '{ printf "%s %.4f %.4f\n", $1, $2, $3 }')
[ "$out" = "$want" ] || { echo "extract_regions differs from the CLI's similarities.csv:"; echo "$want"; exit 1; }
echo "installed package: extract_regions (volfeat::io) matches the installed CLI"

# the installed CLI opens its DICOM reader (libvolfeat_dicom.so, lib/volfeat) on a directory: an empty one
# gets the reader's own refusal, not "could not be loaded"
if [ -f "$build/experiments/libvolfeat_dicom.so" ]; then
  mkdir -p "$work/empty_series"
  msg=$("$work/prefix/bin/volfeat" info "$work/empty_series" 2>&1 || true)
  case "$msg" in *"no DICOM files"*) ;; *) echo "the installed CLI did not open its DICOM reader: $msg"; exit 1 ;; esac
  echo "installed package: the CLI opens its DICOM reader"
fi

# the Python module from the prefix (not from the build tree)
site=$work/prefix/$(sed -n 's/^VOLFEAT_PYTHON_INSTALL_DIR:STRING=//p' "$build/CMakeCache.txt")
if [ -f "$build/python/volfeat/__init__.py" ]; then
  PYTHONPATH=$site /usr/bin/python3 - "$site" "$ct" "$mask" "$labels" <<'PY'
import sys, numpy as np, volfeat
site, ct, mask, labels = sys.argv[1:]
assert volfeat.__file__.startswith(site), volfeat.__file__
r = volfeat.extract(ct=ct, mask=mask, labels=labels, layers=["conv0", "denseblock1"], quiet=True)
assert r.similarities.shape == (3, 2) and np.all(np.abs(r.similarities.to_numpy()) <= 1)
print(f"installed package: import volfeat from {site}: OK\n{r.similarities.round(4)}")
PY
  # ... and its DICOM reader, the package's copy of libvolfeat_dicom.so (an empty directory gets the reader's
  # own refusal, not "could not be loaded")
  if [ -f "$build/experiments/libvolfeat_dicom.so" ]; then
    PYTHONPATH=$site /usr/bin/python3 "$(dirname "$0")/python_opens_dicom.py" "$work/empty_series" "installed package"
  fi
fi
