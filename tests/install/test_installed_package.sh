#!/usr/bin/env bash
# Installs the built tree into a scratch prefix and builds examples/ against it with find_package,
# as a user's project would, then runs the example.
# usage: test_installed_package.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/volfeat/volfeatConfig.cmake"
cmake -S "$src/examples" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log"
cmake --build "$work/build" -j2 > "$work/build.log"
out=$("$work/build/phantom_similarity")
echo "$out"
# two layers, three cosines each, every one a number in [-1, 1]
[ "$(echo "$out" | wc -l)" -eq 2 ]
echo "$out" | grep -oE '[-]?[0-9]+\.[0-9]{4}' | awk '$1 < -1 || $1 > 1 { bad = 1 } END { exit bad }'
[ "$(echo "$out" | grep -oE '[-]?[0-9]+\.[0-9]{4}' | wc -l)" -eq 6 ]
echo "installed package: find_package(volfeat) + build + run OK"
