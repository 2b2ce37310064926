# Sourced by the scripts that configure a build directory of their own (sanitize.sh, check_cuda_build.sh):
#   volfeat_generator BUILD_DIR   sets the array `generator` to (-G Ninja) where ninja is installed
#                                 (scripts/install_deps.sh installs it) and BUILD_DIR is new or already
#                                 Ninja's, else to () (CMake's default, Unix Makefiles).
# Why: Make's order left each of those builds' longest compile (the CLI's main.cpp, 160 s under the
# sanitizers; volfeat-cuda's, 120 s) alone at the end, while Ninja starts it among the first. On AMD
# Zen 5 VMs, 2 jobs, 2026-12-07, not in the same minutes: the sanitizer build took 837 s with Make (a CI
# simulation), 724 s with Ninja (alone) and 730 s (the next simulation, on a slower stretch of the VM);
# the CUDA check 196 s with Make, 185 s (alone) and 173 s with Ninja.
volfeat_generator() {
  generator=()
  if command -v ninja > /dev/null &&
    { [ ! -f "$1/CMakeCache.txt" ] || grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$1/CMakeCache.txt"; }; then
    generator=(-G Ninja)
  fi
}
