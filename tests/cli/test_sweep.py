#!/usr/bin/env python3
"""volfeat sweep and volfeat report, end to end.

usage: test_sweep.py VOLFEAT_BINARY WORKDIR TORCH_REF_DIR SHARED_DIR
Prints one line per check and a closing 'N passed, M failed'; exits non-zero on any failure.
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SANITIZED, cli_runner, csv_rows, fresh_dir, normal_suite_only, run_tests  # noqa: E402

BIN, WORK, TORCH, SHARED = sys.argv[1:5]
PELVIS = os.path.join(SHARED, "data", "pelvis_ct")
KEY = 7  # volume, scheme, mode, layer, pool, similarity, pair

# 2 modes x (2 null networks + 1 scheme) = 6 units, each a forward pass to denseblock1, on a 64x80x80
# knee phantom: 1/8 of the built-in one's voxels. What these tests check does not depend on the size,
# and the sanitizer run of the suite pays for every voxel: there a 32x40x40 one (this test took 198 s
# alone under the sanitizers at 64x80x80, 53 s at 32x40x40, Zen 3; femur and tibia still hold voxels at
# denseblock1's grid).
DIMS = "32,40,40" if SANITIZED else "64,80,80"
SMALL = os.path.join(WORK, "knee_" + DIMS.replace(",", "x"))
SWEEP = ["sweep", "--ct", os.path.join(SMALL, "knee_ct.nii.gz"), "--mask", os.path.join(SMALL, "knee_labels.nii.gz"),
         "--labels", "femur=1,tibia=2", "--schemes", "random", "--null-seeds", "2", "--layers", "pool0,denseblock1",
         "--pools", "mean,max,gem", "--modes", "shared,mask-input", "--similarities", "cosine,euclidean,cka", "--quiet"]


run = cli_runner(BIN)


rows = csv_rows


def fresh(name):
    return fresh_dir(WORK, name)


_reference = []


def reference_sweep():
    # Made afresh once per run of this script: whatever an earlier run (an interrupted ctest, an older
    # version of this file) left in WORK must not become the reference.
    if not _reference:
        out = fresh("sweep_reference")
        run(*SWEEP, "--out", out)
        _reference.append(rows(os.path.join(out, "sweep.csv")))
    return _reference[0]


def test_sweep_writes_the_full_product_with_null_statistics():
    header, body = reference_sweep()
    assert header[:KEY] == ["volume", "scheme", "mode", "layer", "pool", "similarity", "pair"], header
    # per unit: 2 layers x (3 pools x 2 vector similarities + cka) x 3 pairs = 42 rows
    assert len(body) == 6 * 42, len(body)
    keys = [tuple(r[:KEY]) for r in body]
    assert len(set(keys)) == len(keys), "duplicated rows"
    observed = [r for r in body if r[1] == "random"]
    assert len(observed) == 2 * 42
    assert all(r[10] == "2" and r[11] and 0 <= float(r[13]) <= 100 for r in observed), observed[0]
    assert {r[4] for r in body if r[5] == "cka"} == {"-"}
    col = header.index
    cos = [float(r[col("value")]) for r in body if r[col("similarity")] == "cosine"]
    euc = [float(r[col("value")]) for r in body if r[col("similarity")] == "euclidean"]
    assert all(-1 <= c <= 1 for c in cos) and all(0 <= e <= 2 for e in euc)
    assert {r[col("forward_passes")] for r in body if r[col("mode")] == "mask-input"} == {"3"}


def test_sweep_killed_and_restarted_loses_and_duplicates_nothing():
    _, want = reference_sweep()
    out = fresh("sweep_killed")
    path = os.path.join(out, "sweep.csv")
    proc = subprocess.Popen([BIN, *SWEEP, "--out", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once at least one unit's rows are in, before the end
        if os.path.exists(path) and sum(1 for _ in open(path)) > 1 + 42:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, partial = rows(path)
    assert 42 <= len(partial) < len(want), f"killed after {len(partial)} of {len(want)} rows; kill came too late"
    # a torn last line, as a kill in the middle of a write would leave
    with open(path, "a") as f:
        f.write("knee_ct.nii.gz,random,shared,denseblock1,mean,cosine,femur-ti")
    p = run(*SWEEP, "--out", out)
    assert "already done" in p.stdout, p.stdout
    _, got = rows(path)
    keys = [tuple(r[:KEY]) for r in got]
    assert len(set(keys)) == len(keys), "duplicated rows after restart"
    assert set(keys) == {tuple(r[:KEY]) for r in want}, "rows lost or extra after restart"
    ref = {tuple(r[:KEY]): float(r[9]) for r in want}
    for r in got:
        assert abs(float(r[9]) - ref[tuple(r[:KEY])]) <= 1e-9 * max(1.0, abs(ref[tuple(r[:KEY])])), r
    # run again: nothing to do, nothing appended
    p = run(*SWEEP, "--out", out)
    assert "(0 computed, 6 already done)" in p.stdout, p.stdout
    assert len(rows(path)[1]) == len(want)


def test_sweep_without_volumes_runs_on_the_builtin_phantom():
    out = fresh("sweep_builtin")
    p = run("sweep", "--schemes", "random", "--layers", "conv0", "--pools", "mean", "--modes", "shared",
            "--similarities", "cosine", "--quiet", "--out", out)
    assert "1 unit (1 computed, 0 already done)" in p.stdout, p.stdout
    header, body = rows(os.path.join(out, "sweep.csv"))
    assert [(r[0], r[3], r[6]) for r in body] == [("phantom", "conv0", pair) for pair in
                                                  ("femur-tibia", "femur-background", "tibia-background")], body


def test_sweep_refuses_a_csv_with_other_columns():
    out = fresh("sweep_other_csv")
    os.makedirs(out)
    with open(os.path.join(out, "sweep.csv"), "w") as f:
        f.write("a,b,c\n1,2,3\n")
    p = run(*SWEEP, "--out", out, expect=1)
    assert "exists with other columns" in p.stderr and "sweep.csv" in p.stderr, p.stderr


@normal_suite_only("test_cohort runs sweeps over manifests")
def test_sweep_over_a_manifest_with_schemes():
    src = os.path.join(TORCH, "dn121_2d.npz")
    if not (os.path.exists(src) and os.path.exists(os.path.join(PELVIS, "ct.nii.gz"))):
        print("  SKIP: needs the torch export and ../shared/data/pelvis_ct")
        return
    out = fresh("sweep_manifest")
    os.makedirs(out)
    manifest = os.path.join(out, "manifest.csv")
    with open(manifest, "w") as f:
        f.write("id,ct,mask,labels\n")
        f.write(f"pelvis,{PELVIS}/ct.nii.gz,{PELVIS}/femur1_hip2.nii.gz,\"femur=1,hip=2\"\n")
        f.write(f"pelvis_lr,{PELVIS}/ct.nii.gz,{PELVIS}/totalsegmentator_labels.nii.gz,\"femur_l=75,femur_r=76\"\n")
    run("sweep", "--manifest", manifest, "--weights", src, "--schemes", "i3d-mean,centre,acs,orientations-mean",
        "--layers", "pool0", "--pools", "mean", "--modes", "shared", "--similarities", "cosine", "--quiet",
        "--out", out)
    header, body = rows(os.path.join(out, "sweep.csv"))
    assert {r[0] for r in body} == {"pelvis", "pelvis_lr"}
    assert {r[1] for r in body} == {"i3d-mean", "centre", "acs", "orientations-mean"}
    assert len(body) == 4 * 3 + 4 * 3  # schemes x pairs, per volume
    ens = [r for r in body if r[1] == "orientations-mean"]
    assert {r[header.index("forward_passes")] for r in ens} == {"3"}
    assert {r[header.index("weights_kind")] for r in body} == {"seeded-init"}


@normal_suite_only("report is extract with preset settings: test_cli runs extract")
def test_report_preset_equals_extract_with_the_same_settings_and_takes_overrides():
    src = os.path.join(TORCH, "dn121_2d.npz")
    if not (os.path.exists(src) and os.path.exists(os.path.join(PELVIS, "ct.nii.gz"))):
        print("  SKIP: needs the torch export and ../shared/data/pelvis_ct")
        return
    common = ["--ct", f"{PELVIS}/ct.nii.gz", "--mask", f"{PELVIS}/femur1_hip2.nii.gz", "--labels", "hip=2,femur=1",
              "--weights", src, "--quiet"]
    rep, ext = fresh("report_a"), fresh("extract_a")
    p = run("report", "--preset", "denseblock4-tail", *common, "--out", rep)
    assert "Report A" in p.stdout and "denselayer15.conv2" in p.stdout and "(pub. 0.6991)" in p.stdout, p.stdout
    run("extract", "--mode", "mask-input", "--pool", "mean", "--preset", "denseblock4-tail", *common, "--out", ext)
    assert open(os.path.join(rep, "similarities.csv")).read() == open(os.path.join(ext, "similarities.csv")).read()
    cfg = json.load(open(os.path.join(rep, "run.json")))
    assert cfg["forward_passes"] == 3 and cfg["config"]["mode"] == "mask-input"
    over = fresh("report_override")
    run("report", "--preset", "last-3rd-5th", *common, "--normalize", "none", "--mode", "shared", "--out", over)
    cfg = json.load(open(os.path.join(over, "run.json")))
    assert cfg["config"]["normalize"] == "none" and cfg["forward_passes"] == 1
    assert [l["name"] for l in cfg["layers"]] == ["features.denseblock4.denselayer16.conv2",
                                                  "features.denseblock4.denselayer15.conv2",
                                                  "features.denseblock4.denselayer14.conv2"]


def main():
    os.makedirs(WORK, exist_ok=True)
    run("phantom", "--dims", DIMS, "--out", SMALL)
    run_tests(globals())


if __name__ == "__main__":
    main()
