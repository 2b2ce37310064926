#!/usr/bin/env bash
# Builds the .deb with cpack, unpacks it into a scratch root (dpkg-deb -x, no root needed) and uses
# it: the CLI, the Python module (PYTHONPATH into the root) and the CMake package's files.
# usage: test_deb_package.sh BUILD_DIR WORK_DIR        (exit 77: no dpkg-deb here)
set -euo pipefail
build=$(cd "$1" && pwd) work=$2
command -v dpkg-deb > /dev/null || { echo "no dpkg-deb: cannot test the .deb"; exit 77; }
rm -rf "$work" && mkdir -p "$work"
work=$(cd "$work" && pwd)
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/cpack" > "$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; exit 1; }
deb=$(ls "$work"/cpack/volfeat_*.deb)
echo "built $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb -I "$deb" | sed -n 's/^ *\(Package\|Version\|Architecture\|Depends\):/  \1:/p'
dpkg-deb -x "$deb" "$work/root"
root=$work/root
for f in usr/bin/volfeat usr/include/volfeat/volfeat.hpp usr/lib/cmake/volfeat/volfeatConfig.cmake \
         usr/lib/cmake/volfeat/volfeatTargets.cmake usr/lib/python3/dist-packages/volfeat/__init__.py; do
  test -e "$root/$f" || { echo "the .deb lacks /$f"; exit 1; }
done
ls "$root"/usr/lib/python3/dist-packages/volfeat/_volfeat*.so > /dev/null
grep -q "volfeat::io" "$root/usr/lib/cmake/volfeat/volfeatTargets.cmake"

# the CLI from the package
"$root/usr/bin/volfeat" --version
"$root/usr/bin/volfeat" phantom --out "$work/phantom" --dims 48,64,64 > /dev/null
"$root/usr/bin/volfeat" extract --ct "$work/phantom/knee_ct.nii.gz" --mask "$work/phantom/knee_labels.nii.gz" \
  --layers conv0,denseblock1 --quiet --out "$work/cli" > /dev/null
test -f "$work/cli/run.json"

# the installed CLI opens its DICOM reader (libvolfeat_dicom.so, lib/volfeat) on a directory: an empty one
# gets the reader's own refusal, not "could not be loaded"
if [ -f "$build/experiments/libvolfeat_dicom.so" ]; then
  mkdir -p "$work/empty_series"
  msg=$("$root/usr/bin/volfeat" info "$work/empty_series" 2>&1 || true)
  case "$msg" in *"no DICOM files"*) ;; *) echo "the installed CLI did not open its DICOM reader: $msg"; exit 1 ;; esac
  echo "deb: the CLI opens its DICOM reader"
fi

# the Python module from the package, on the same files: the CLI's features exactly
env -u PYTHONPATH PYTHONPATH="$root/usr/lib/python3/dist-packages" /usr/bin/python3 - "$root" "$work" <<'PY'
import sys
import numpy as np
import volfeat
root, work = sys.argv[1:]
assert volfeat.__file__.startswith(root), f"imported {volfeat.__file__}, not the package's"
r = volfeat.extract(ct=f"{work}/phantom/knee_ct.nii.gz", mask=f"{work}/phantom/knee_labels.nii.gz",
                    layers=["conv0", "denseblock1"], quiet=True)
with np.load(f"{work}/cli/features.npz") as z:
    assert len(z.files) == 6
    for k in z.files:
        assert np.array_equal(r.features[tuple(k.split("/", 1))], z[k]), k
ct, spacing, _ = volfeat.read_nifti(f"{work}/phantom/knee_ct.nii.gz")
assert ct.shape == (48, 64, 64), ct.shape
print(f"deb: import volfeat from {volfeat.__file__}: features equal the packaged CLI's")
print(r.similarities.round(4))
PY
if [ -f "$build/experiments/libvolfeat_dicom.so" ]; then  # the package's copy of the DICOM reader, beside _volfeat
  env -u PYTHONPATH PYTHONPATH="$root/usr/lib/python3/dist-packages" \
    /usr/bin/python3 "$(dirname "$0")/python_opens_dicom.py" "$work/empty_series" "deb"
fi
echo "deb package: OK"
