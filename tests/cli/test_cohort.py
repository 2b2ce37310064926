#!/usr/bin/env python3
"""Cohorts without MPI (issue #16): sweep and extract --manifest over --shard i/N job-array tasks
racing on one --out, a shard killed with kill -9 and rerun, a bad volume in failures.csv, merge.
Every check compares with the single-process run of the same command, row for row.

usage: test_cohort.py VOLFEAT_BINARY WORKDIR
Prints one line per check and a closing 'N passed, M failed'; exits non-zero on any failure.
"""
import glob
import math
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cli_runner, csv_rows, fresh_dir, run_tests  # noqa: E402
from cohort_fixtures import (KEY, assert_same_extract, assert_same_sweep, extract_args, make_cohort,  # noqa: E402
                             stable_rows, sweep_args)

BIN, WORK = sys.argv[1:3]
os.makedirs(WORK, exist_ok=True)
run = cli_runner(BIN)
MANIFEST = make_cohort(BIN, WORK)
BAD_MANIFEST = make_cohort(BIN, WORK, bad=True)
SWEEP = sweep_args(MANIFEST) + ["--threads", "1"]
EXTRACT = extract_args(MANIFEST) + ["--threads", "1"]
UNITS, ROWS_PER_UNIT = 12, 24
TIMEOUT_S = 600

_reference = {}


def reference(kind):
    """The single-process run, made afresh once per run of this script."""
    if kind not in _reference:
        out = fresh_dir(WORK, "reference_" + kind)
        if kind == "sweep":
            run(*SWEEP, "--out", out)
        elif kind == "sweep_bad":
            run(*sweep_args(BAD_MANIFEST), "--threads", "1", "--out", out, expect=3)
        else:
            run(*EXTRACT, "--out", out)
        _reference[kind] = out
    return _reference[kind]


def start(*args):
    return subprocess.Popen([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p):
    out, err = p.communicate(timeout=TIMEOUT_S)
    return p.returncode, out, err


def test_the_single_run_over_a_manifest_writes_every_unit():
    _, rows = csv_rows(os.path.join(reference("sweep"), "sweep.csv"))
    assert len(rows) == UNITS * ROWS_PER_UNIT, len(rows)
    assert {r[0] for r in rows} == {"small", "medium", "large"}
    assert not os.path.exists(os.path.join(reference("sweep"), "failures.csv"))


def test_three_racing_shards_write_the_single_runs_rows():
    out = fresh_dir(WORK, "shards_racing")
    procs = [start(*SWEEP, "--shard", f"{i}/3", "--out", out) for i in (1, 2, 3)]
    results = [finish(p) for p in procs]
    computed = 0
    for rc, stdout, stderr in results:
        assert rc == 0, stderr
        computed += int(stdout.split(": ")[2].split(" computed")[0])
    assert computed == UNITS, [r[1] for r in results]  # disjoint: every unit computed once
    assert sum("rows in" in r[1] for r in results) >= 1, "no shard wrote sweep.csv"
    assert_same_sweep(out, reference("sweep"))
    assert len(glob.glob(os.path.join(out, "cohort", "parts", "*.csv"))) == UNITS
    assert not glob.glob(os.path.join(out, "cohort", "claims", "*")), "claims left behind"
    # a plain rerun on the directory joins the cohort and finds everything done
    p = run(*SWEEP, "--out", out)
    assert "0 computed, 12 already done" in p.stdout, p.stdout
    assert_same_sweep(out, reference("sweep"))


def test_shards_are_disjoint_deterministic_and_largest_first():
    outs = []
    for i in (1, 2):
        out = fresh_dir(WORK, f"shard_alone_{i}")
        p = run(*SWEEP, "--shard", f"{i}/2", "--out", out)
        assert "units not finished yet" in p.stdout and not os.path.exists(os.path.join(out, "sweep.csv")), p.stdout
        outs.append({tuple(r[:3]) for part in glob.glob(os.path.join(out, "cohort", "parts", "*.csv"))
                     for r in csv_rows(part)[1]})
    assert not outs[0] & outs[1] and len(outs[0] | outs[1]) == UNITS, outs
    # groups (volume, mode) dealt largest first: shard 1 gets large/shared, shard 2 large/mask-input
    assert ("large", "random", "shared") in outs[0] and ("large", "random", "mask-input") in outs[1], outs


def test_a_shard_killed_and_rerun_loses_and_duplicates_nothing():
    out = fresh_dir(WORK, "shard_killed")
    victim = start(*SWEEP, "--shard", "1/2", "--out", out)
    other = start(*SWEEP, "--shard", "2/2", "--out", out)
    deadline = time.time() + TIMEOUT_S
    parts = os.path.join(out, "cohort", "parts")
    while time.time() < deadline and victim.poll() is None:
        if len(glob.glob(os.path.join(parts, "*.csv"))) >= 3:
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL, "shard 1 finished before the kill; the kill came too late"
    rc, stdout, stderr = finish(other)
    assert rc == 0 and "units not finished yet" in stdout, stdout + stderr
    # a torn last line in a part, as a kill in the middle of a write would leave
    some_part = sorted(glob.glob(os.path.join(parts, "*.csv")))[0]
    with open(some_part, "a") as f:
        f.write("small,random,shared,conv0,mean,cosine,femur-ti")
    p = run("merge", out, expect=1)
    assert "units are not finished yet" in p.stderr, p.stderr
    run(*SWEEP, "--shard", "1/2", "--out", out)
    assert_same_sweep(out, reference("sweep"))
    p = run("merge", out)
    assert f"{UNITS * ROWS_PER_UNIT} rows in" in p.stdout, p.stdout
    assert_same_sweep(out, reference("sweep"))


def test_shards_finish_a_killed_single_process_sweep():
    out = fresh_dir(WORK, "single_then_shards")
    path = os.path.join(out, "sweep.csv")
    single = start(*SWEEP, "--out", out)
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline and single.poll() is None:  # kill once a few units' rows are in
        if os.path.exists(path) and sum(1 for _ in open(path)) > 1 + 3 * ROWS_PER_UNIT:
            break
        time.sleep(0.02)
    single.send_signal(signal.SIGKILL)
    single.communicate()
    assert single.returncode == -signal.SIGKILL, "the single run finished before the kill; the kill came too late"
    procs = [start(*SWEEP, "--shard", f"{i}/2", "--out", out) for i in (1, 2)]
    results = [finish(p) for p in procs]
    assert [r[0] for r in results] == [0, 0], results
    done = sum(int(r[1].split("computed, ")[1].split(" already")[0]) for r in results)
    assert done >= 3, [r[1] for r in results]  # the single run's finished units are not redone
    assert_same_sweep(out, reference("sweep"))


def test_a_bad_volume_goes_to_failures_csv_and_the_others_finish():
    ref = reference("sweep_bad")
    header, failures = csv_rows(os.path.join(ref, "failures.csv"))
    assert header == ["volume", "scheme", "mode", "ct", "mask", "message"], header
    assert sorted((f[0], f[1], f[2]) for f in failures) == sorted(
        ("broken", s, m) for s in ("null-random:1001", "random") for m in ("shared", "mask-input")), failures
    assert all("broken_ct.nii.gz" in f[5] for f in failures), failures
    # the other volumes' rows are those of the cohort without the bad volume
    assert stable_rows(os.path.join(ref, "sweep.csv")) == stable_rows(os.path.join(reference("sweep"), "sweep.csv"))
    out = fresh_dir(WORK, "shards_bad")
    procs = [start(*sweep_args(BAD_MANIFEST), "--threads", "1", "--shard", f"{i}/2", "--out", out) for i in (1, 2)]
    codes = [finish(p)[0] for p in procs]
    assert codes == [3, 3], codes  # each shard met one of the bad volume's (volume, mode) groups
    assert_same_sweep(out, ref)
    got = sorted(tuple(f[:3]) for f in csv_rows(os.path.join(out, "failures.csv"))[1])
    assert got == sorted(tuple(f[:3]) for f in failures), got
    p = run("merge", out, expect=3)
    assert "4 failed" in p.stdout, p.stdout


def test_extract_over_a_manifest_writes_volume_directories_and_cohort_tables():
    ref = reference("extract")
    for i in ("small", "medium", "large"):
        assert os.path.exists(os.path.join(ref, i, "run.json")), i
    # each volume's directory is what a plain extract of that volume writes
    single = fresh_dir(WORK, "extract_one_volume")
    d = os.path.join(WORK, "phantom_medium")
    run("extract", "--ct", f"{d}/knee_ct.nii.gz", "--mask", f"{d}/knee_labels.nii.gz", "--labels", "femur=1,tibia=2",
        "--layers", "conv0,pool0", "--threads", "1", "--quiet", "--out", single)
    with open(os.path.join(single, "similarities.csv")) as a, open(os.path.join(ref, "medium", "similarities.csv")) as b:
        assert a.read() == b.read()
    header, feats = csv_rows(os.path.join(ref, "features_long.csv"))
    assert header == ["volume", "region", "layer", "channel", "value"], header
    vec = {}
    for v, region, layer, c, x in feats:
        vec.setdefault((v, region, layer), []).append(float(x))
    assert {k[0] for k in vec} == {"small", "medium", "large"} and {k[2] for k in vec} == {"conv0", "pool0"}
    header, sims = csv_rows(os.path.join(ref, "similarities_across_volumes.csv"))
    assert header == ["region", "layer", "volume_a", "volume_b", "cosine"], header
    assert len(sims) == 3 * 2 * 3, len(sims)  # regions x layers x volume pairs
    for region, layer, a, b, cos in sims:  # against the long table, in Python
        x, y = vec[(a, region, layer)], vec[(b, region, layer)]
        want = sum(p * q for p, q in zip(x, y)) / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))
        assert abs(float(cos) - want) <= 1e-12, (region, layer, a, b, cos, want)
    out = fresh_dir(WORK, "extract_shards")
    procs = [start(*EXTRACT, "--shard", f"{i}/2", "--out", out) for i in (1, 2)]
    assert [finish(p)[0] for p in procs] == [0, 0]
    assert_same_extract(out, ref, ["small", "medium", "large"])


def test_bad_shard_options_are_refused_with_one_line():
    for bad in ("0/2", "3/2", "2", "a/b"):
        p = run(*SWEEP, "--shard", bad, "--out", os.path.join(WORK, "never"), expect=1)
        assert p.stderr.startswith("volfeat: error: --shard " + bad), p.stderr
    p = run("extract", "--shard", "1/2", "--out", os.path.join(WORK, "never"), expect=1)
    assert "--shard needs --manifest" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(WORK, "never"))


def test_a_directory_is_one_cohort():
    out = fresh_dir(WORK, "two_cohorts")
    run(*SWEEP, "--shard", "1/2", "--out", out)
    other = [("mean" if a == "mean,max" else a) for a in SWEEP]  # --pools mean
    p = run(*other, "--shard", "2/2", "--out", out, expect=1)
    assert "other settings or volumes" in p.stderr, p.stderr


run_tests(dict(globals()))
