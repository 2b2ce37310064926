#!/usr/bin/env bash
# Installs every Debian 12 package volfeat builds, tests and benchmarks with. Idempotent.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PACKAGES=(
  # build
  cmake g++ make ninja-build libeigen3-dev zlib1g-dev libdeflate-dev libnifti2-dev libpng-dev libcli11-dev nlohmann-json3-dev
  # DICOM input (--ct DIR): GDCM; gdcmconv writes the compressed test series
  libgdcm-dev libgdcm-tools
  # cohorts over ranks: mpirun volfeat sweep|extract --manifest (MPICH works as well)
  libopenmpi-dev openmpi-bin
  # tests and benchmarks
  libboost-test-dev libbenchmark-dev libthrust-dev time
  # PyTorch reference oracle, notebooks
  python3-numpy python3-torch python3-torchvision python3-nibabel python3-pydicom python3-pandas python3-matplotlib
  # references of the denoise/contrast filters (issue #15)
  python3-scipy python3-skimage
  jupyter-nbconvert python3-ipykernel
  # the Python module (import volfeat), its pytest suite, and the .deb (cpack's dpkg-shlibdeps)
  pybind11-dev python3-dev python3-pytest dpkg-dev
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "volfeat dependencies: all installed"
