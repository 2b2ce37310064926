#!/usr/bin/env python3
"""The volfeat program's run-time choice of Cpu kernels (backend/cpu/isa.hpp): VOLFEAT_CPU_ISA forces a
lower instruction set, one the CPU lacks or an unknown name is one error line, --version and run.json
name the set in use, and the generic and AVX2 paths give the default path's features.

usage: test_cpu_isa.py VOLFEAT_BINARY WORKDIR
"""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import csv_rows, fresh_dir, run_tests  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
LEVELS = ["generic", "avx2", "avx512"]


def cpu_best():
    """The best level this CPU has, from /proc/cpuinfo (independently of the program's own detection)."""
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"} <= flags:
        return "avx512"
    return "avx2" if {"avx2", "fma"} <= flags else "generic"


BEST = cpu_best()


def run(*args, isa=None, expect=0):
    env = dict(os.environ)
    env.pop("VOLFEAT_CPU_ISA", None)
    if isa is not None:
        env["VOLFEAT_CPU_ISA"] = isa
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=env)
    assert p.returncode == expect, f"exit {p.returncode} (expected {expect}) for {args} isa={isa}\nstderr: {p.stderr}"
    return p


def test_version_names_the_best_kernels_by_default():
    assert f"(Cpu kernels: {BEST})" in run("--version").stdout
    assert "(Cpu kernels: generic)" in run("--version", isa="generic").stdout


def test_unknown_or_unavailable_isa_is_one_error_line():
    p = run("--version", isa="sse9", expect=1)
    assert p.stderr.startswith("volfeat: error: VOLFEAT_CPU_ISA=sse9 is not one of") and p.stderr.count("\n") == 1, p.stderr
    above = LEVELS[LEVELS.index(BEST) + 1:]
    if not above:
        print(f"  (no level above {BEST} to refuse on this CPU)")
    for isa in above:
        p = run("extract", "--out", fresh_dir(WORK, "refused_" + isa), isa=isa, expect=1)
        assert p.stderr.startswith(f"volfeat: error: VOLFEAT_CPU_ISA={isa} but this CPU lacks"), p.stderr
        assert p.stderr.count("\n") == 1, p.stderr


def test_every_available_isa_gives_the_same_features():
    # The phantom through DenseNet's stem, block 1 and transition 1: the stem conv, pointwise and 3x3x3 convs
    # and the fused pools, on each kernel set this CPU has; cosines agree to float rounding.
    ph = fresh_dir(WORK, "isa_phantom")
    run("phantom", "--dims", "24,40,40", "--out", ph)
    common = ["--ct", os.path.join(ph, "knee_ct.nii.gz"), "--mask", os.path.join(ph, "knee_labels.nii.gz"),
              "--layers", "conv0,denseblock1,transition1", "--quiet"]
    results = {}
    for isa in LEVELS[:LEVELS.index(BEST) + 1]:
        out = fresh_dir(WORK, "isa_" + isa)
        run("extract", *common, "--out", out, isa=isa)
        assert json.load(open(os.path.join(out, "run.json")))["cpu_isa"] == isa
        header, rows = csv_rows(os.path.join(out, "similarities.csv"))
        results[isa] = (header, [[float(v) for v in r[1:]] for r in rows])
    want_header, want = results[BEST]
    for isa, (header, got) in results.items():
        assert header == want_header
        diff = max(abs(a - b) for ra, rb in zip(got, want) for a, b in zip(ra, rb))
        print(f"  {isa}: max |cosine - {BEST}'s| = {diff:.2e}")
        assert diff <= 1e-5, (isa, diff)


def main():
    os.makedirs(WORK, exist_ok=True)
    run_tests(globals())


if __name__ == "__main__":
    main()
