#!/usr/bin/env python3
"""Concurrent runs on one output directory (issue #18): sweep, extract, report and landmarks take
DIR/.volfeat.lock, so racing runs never lose, tear or duplicate a row or mix two runs' files.

usage: test_concurrent.py VOLFEAT_BINARY WORKDIR
Prints one line per check and a closing 'N passed, M failed'; exits non-zero on any failure.
"""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SANITIZED, csv_rows, fresh_dir, run_tests  # noqa: E402

BIN, WORK = sys.argv[1:3]
KEY = 7  # volume, scheme, mode, layer, pool, similarity, pair
LOCK = ".volfeat.lock"
HOST = socket.gethostname()
TIMEOUT_S = 600

# 2 modes x (1 null network + 1 scheme) = 4 units of 2 layers x 2 pools x 3 pairs = 12 rows each, on a
# 64x80x80 knee phantom, up to pool0: about 3 s a sweep, 1 s an extract, one thread each. Under the
# sanitizers a 32x40x40 one: the runs still overlap (each is slower there), and the suite pays for
# every voxel (this test took 171 s alone under the sanitizers at 64x80x80, 56 s at 32x40x40, Zen 3).
DIMS = "32,40,40" if SANITIZED else "64,80,80"
SMALL = os.path.join(WORK, "knee_" + DIMS.replace(",", "x"))
INPUTS = ["--ct", os.path.join(SMALL, "knee_ct.nii.gz"), "--mask", os.path.join(SMALL, "knee_labels.nii.gz"),
          "--labels", "femur=1,tibia=2", "--threads", "1", "--quiet"]
SWEEP = ["sweep", *INPUTS, "--schemes", "random", "--null-seeds", "1", "--layers", "conv0,pool0",
         "--pools", "mean,max", "--modes", "shared,mask-input"]
UNITS, ROWS = 4, 48
EXTRACT = ["extract", *INPUTS, "--layers", "conv0,pool0"]
EXTRACT_FILES = ["similarities.csv", "similarities_long.csv", "features.npz", "run.json", "region_report.csv",
                 "region_slices.png"]


def run(*args, expect=0):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == expect, f"exit {p.returncode} (expected {expect}) for {args}\nstderr: {p.stderr}"
    return p


def start(*args):
    return subprocess.Popen([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs):
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=TIMEOUT_S)
        out.append((p.returncode, stdout, stderr))
    return out


def start_paused_holder(args, out):
    """Starts a run on `out` and pauses it (SIGSTOP) once the lock names it: a stopped run still
    holds its directory, so any run started meanwhile finds it there, however loaded the machine.
    The caller sends SIGCONT."""
    path = os.path.join(out, LOCK)
    first = start(*args)

    def holder():
        try:
            return open(path).read()
        except FileNotFoundError:
            return ""

    deadline = time.time() + TIMEOUT_S
    while f"pid={first.pid}\n" not in holder():
        assert first.poll() is None, f"the first run ended (exit {first.returncode}) before its lock was seen"
        assert time.time() < deadline, "the first run never took the lock"
        time.sleep(0.002)
    os.kill(first.pid, signal.SIGSTOP)
    return first


def start_contended(argsets, out):
    """Starts one run per argument list on `out`, every run after the first sure to find the first
    holding the lock: the first is paused, the others are started and each is read up to its
    'waiting' line, then the first goes on. Runs merely started a fraction of a second apart raced
    the scheduler instead: on a loaded CI machine (stop 36, three extracts 0.05 s apart next to the
    notebooks test) the third made its lock attempt after the first had released and never waited.
    Returns the Popen objects and the stderr lines read so far, one per run."""
    first = start_paused_holder(argsets[0], out)
    procs, heads = [first], [""]
    try:
        for args in argsets[1:]:
            p = start(*args)
            procs.append(p)
            heads.append(p.stderr.readline())  # the waiting note comes first: the first run cannot finish
            assert f"for pid {first.pid} on {HOST}" in heads[-1], heads[-1]
    finally:
        os.kill(first.pid, signal.SIGCONT)
    return procs, heads


def finish_contended(procs, heads):
    return [(code, stdout, head + stderr) for (code, stdout, stderr), head in zip(finish(procs), heads)]


rows = csv_rows


def fresh(name):
    return fresh_dir(WORK, name)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("volfeat: error: ")]


def leftovers(d):
    """Temporaries and locks a finished run must not leave behind."""
    return [n for n in os.listdir(d) if n.startswith(LOCK) or ".tmp-" in n]


_reference = {}


def reference_sweep():
    if "sweep" not in _reference:
        out = fresh("reference_sweep")
        run(*SWEEP, "--out", out)
        _reference["sweep"] = rows(os.path.join(out, "sweep.csv"))
    return _reference["sweep"]


def reference_extract(seed):
    if seed not in _reference:
        out = fresh(f"reference_extract_seed{seed}")
        run(*EXTRACT, "--seed", str(seed), "--out", out)
        _reference[seed] = {n: open(os.path.join(out, n), "rb").read() for n in EXTRACT_FILES if n != "run.json"}
    return _reference[seed]


def assert_sweep_complete(out):
    """Every reference row exactly once, with the reference's value."""
    _, want = reference_sweep()
    header, got = rows(os.path.join(out, "sweep.csv"))
    keys = [tuple(r[:KEY]) for r in got]
    dupes = len(keys) - len(set(keys))
    assert dupes == 0, f"{dupes} duplicated rows of {len(keys)}"
    assert len(got) == ROWS and set(keys) == {tuple(r[:KEY]) for r in want}, f"{len(got)} rows, want {ROWS}"
    ref = {tuple(r[:KEY]): r[9] for r in want}
    for r in got:
        assert r[9] == ref[tuple(r[:KEY])], (r, ref[tuple(r[:KEY])])
    assert leftovers(out) == [], leftovers(out)


def plant_lock(d, pid, host, age_s=0.0, extra=""):
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, LOCK)
    with open(path, "w") as f:
        f.write(f"volfeat output-directory lock\npid={pid}\nhost={host}\n{extra}"
                f"started=2020-01-01T00:00:00Z\ncommand=volfeat sweep --planted-by-test\n")
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))
    return path


def dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_two_and_three_concurrent_sweeps_write_every_row_once():
    reference_sweep()
    for n in (2, 3):
        out = fresh(f"sweep_x{n}")
        # the repro (runs a fraction of a second apart), with the overlap made certain
        results = finish_contended(*start_contended([[*SWEEP, "--wait-lock", "300", "--out", out]] * n, out))
        for code, stdout, stderr in results:
            assert code == 0, f"exit {code}: {stderr}"
        # one run computed every unit; the others waited for it, then found everything done
        computed = sorted(int(s.split("(")[1].split(" computed")[0]) for _, s, _ in results)
        assert computed == [0] * (n - 1) + [UNITS], [s for _, s, _ in results]
        assert sum("waiting up to 300 s for pid" in e for _, _, e in results) == n - 1, [e for *_, e in results]
        assert all(f"{ROWS} rows in" in s for _, s, _ in results), [s for _, s, _ in results]
        assert_sweep_complete(out)


def test_concurrent_sweeps_without_wait_refuse_with_one_line_naming_the_holder():
    reference_sweep()
    out = fresh("sweep_refused")
    # paused while it holds the lock, the first cannot end before the others on a loaded machine
    first = start_paused_holder([*SWEEP, "--out", out], out)
    try:
        results = finish([start(*SWEEP, "--out", out) for _ in range(2)])
    finally:
        os.kill(first.pid, signal.SIGCONT)
    code, stdout, stderr = finish([first])[0]
    assert code == 0, stderr
    for code, stdout, stderr in results:
        assert code == 1, f"exit {code}: {stdout}{stderr}"
        errors = error_lines(stderr)
        assert len(errors) == 1 and len(stderr.splitlines()) == 1, stderr
        e = errors[0]
        assert f"{out}/{LOCK}: the output directory is in use by another volfeat run" in e, e
        assert f"pid {first.pid} on {HOST}" in e and "command: " in e and "sweep" in e and "--wait-lock" in e, e
    assert_sweep_complete(out)


def test_two_and_three_concurrent_extracts_leave_one_complete_run():
    for n in (2, 3):
        seeds = list(range(1, n + 1))
        for s in seeds:
            reference_extract(s)
        out = fresh(f"extract_x{n}")
        # different seeds: a mix of two runs' files would show
        argsets = [[*EXTRACT, "--seed", str(s), "--wait-lock", "300", "--out", out] for s in seeds]
        results = finish_contended(*start_contended(argsets, out))
        for code, _, stderr in results:
            assert code == 0, f"exit {code}: {stderr}"
        assert sum("waiting up to 300 s for pid" in e for _, _, e in results) == n - 1, [e for *_, e in results]
        # the directory holds one whole run: run.json names its seed, every other file is that seed's
        cfg = json.load(open(os.path.join(out, "run.json")))
        seed = cfg["config"]["seed"]
        assert seed in seeds, seed
        for name, want in reference_extract(seed).items():
            assert open(os.path.join(out, name), "rb").read() == want, f"{name} is not seed {seed}'s"
        assert sorted(os.listdir(out)) == sorted(EXTRACT_FILES), os.listdir(out)


def test_sweep_killed_mid_way_lets_the_waiting_run_finish_and_restarts():
    _, want = reference_sweep()
    out = fresh("sweep_killed")
    path = os.path.join(out, "sweep.csv")
    victim = start(*SWEEP, "--out", out)
    deadline = time.time() + 300
    while time.time() < deadline:  # one unit in (12 rows), not all
        if os.path.exists(path) and sum(1 for _ in open(path)) > 1 + 12:
            break
        time.sleep(0.02)
    waiter = start(*SWEEP, "--wait-lock", "300", "--out", out)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    _, partial = rows(path)
    assert 12 <= len(partial) < ROWS, f"killed after {len(partial)} of {ROWS} rows; kill came too late"
    code, stdout, stderr = finish([waiter])[0]
    assert code == 0, stderr
    # The waiter may look while the killed victim is still a zombie (this test reaps it in victim.wait(),
    # racing the waiter's first poll): both findings are right, and which one comes depends on that race.
    assert any(f"took over a stale lock (pid {victim.pid} {how} on this host" in stderr
               for how in ("is gone", "has exited")), stderr
    computed = int(stdout.split("(")[1].split(" computed")[0])
    assert 0 < computed < UNITS, stdout  # it resumed the killed run's work rather than redoing it
    assert_sweep_complete(out)
    # and the killed run, restarted, finds everything done
    p = run(*SWEEP, "--out", out)
    assert f"(0 computed, {UNITS} already done), {ROWS} rows" in p.stdout, p.stdout
    assert_sweep_complete(out)


def test_planted_stale_locks_are_taken_over_and_said_so():
    reference_sweep()
    done = os.path.join(WORK, "reference_sweep", "sweep.csv")
    cases = [
        ("dead_pid", dict(pid=dead_pid(), host=HOST), "is gone on this host"),
        ("recycled_pid", dict(pid=os.getpid(), host=HOST, extra="pid_start=1\n"), "now belongs to another process"),
        ("old_foreign", dict(pid=4242, host="another-host.example", age_s=3600), "no heartbeat for"),
    ]
    for name, lock, why in cases:
        out = fresh(f"stale_{name}")
        plant_lock(out, **lock)
        shutil.copy(done, out)  # a finished sweep: the run gets past the lock, has nothing to compute
        p = run(*SWEEP, "--out", out)
        notes = [line for line in p.stderr.splitlines() if "took over a stale lock" in line]
        assert len(notes) == 1 and why in notes[0] and "--planted-by-test" in notes[0], (name, p.stderr)
        assert f"(0 computed, {UNITS} already done), {ROWS} rows" in p.stdout, p.stdout
        assert_sweep_complete(out)


def test_live_locks_are_respected_and_a_refused_run_writes_nothing():
    cases = [
        ("alive_here", dict(pid=os.getpid(), host=HOST, age_s=3600)),  # alive on this host: never stale by age
        ("fresh_foreign", dict(pid=4242, host="another-host.example", age_s=10)),
    ]
    for name, lock in cases:
        commands = {
            "sweep": SWEEP,
            "extract": EXTRACT,
            "report": ["report", "--preset", "block-outputs", *INPUTS],
            "landmarks": ["landmarks", "--schemes", "random", "--layers", "conv0", "--patch", "8", "--radius", "2",
                          "--threads", "1", "--quiet"],
        }
        for command, args in commands.items():
            out = fresh(f"live_{name}_{command}")
            path = plant_lock(out, **lock)
            record = open(path).read()
            p = run(*args, "--out", out, expect=1)
            errors = error_lines(p.stderr)
            assert len(errors) == 1 and "in use by another volfeat run" in errors[0], (command, p.stderr)
            assert f"pid {lock['pid']} on {lock['host']}" in errors[0], errors[0]
            assert os.listdir(out) == [LOCK] and open(path).read() == record, (command, os.listdir(out))
        # waiting gives up after --wait-lock seconds, with the same kind of line
        out = fresh(f"live_{name}_wait")
        plant_lock(out, **lock)
        t0 = time.time()
        p = run(*SWEEP, "--wait-lock", "1", "--out", out, expect=1)
        assert time.time() - t0 >= 1.0
        errors = error_lines(p.stderr)
        assert len(errors) == 1 and "still locked after waiting 1 s" in errors[0], p.stderr


def test_a_failed_run_leaves_no_lock_and_no_directory():
    out = fresh("failed_run")
    p = run("extract", "--ct", os.path.join(WORK, "missing.nii.gz"), "--mask", os.path.join(WORK, "missing.nii.gz"),
            "--out", out, expect=1)
    assert len(error_lines(p.stderr)) == 1, p.stderr
    assert not os.path.exists(out), os.listdir(out)


def test_a_duplicate_row_found_on_resume_is_reported_and_removed():
    _, want = reference_sweep()
    out = fresh("sweep_duplicates")
    os.makedirs(out)
    src = os.path.join(WORK, "reference_sweep", "sweep.csv")
    lines = open(src).read().splitlines(keepends=True)
    # what two unlocked runs left: three rows written twice, one of them with another value
    dup = lines[5].split(",")
    dup[9] = "0.5"
    with open(os.path.join(out, "sweep.csv"), "w") as f:
        f.writelines(lines[:20] + [lines[3], ",".join(dup), lines[17]] + lines[20:])
    p = run(*SWEEP, "--out", out)
    notes = [line for line in p.stderr.splitlines() if "duplicate" in line]
    assert len(notes) == 1 and "sweep.csv: removed 3 duplicate row(s)" in notes[0], p.stderr
    assert "kept the first of each" in notes[0], notes[0]
    assert f"(0 computed, {UNITS} already done), {ROWS} rows" in p.stdout, p.stdout
    assert open(os.path.join(out, "sweep.csv")).read() == open(src).read()
    assert_sweep_complete(out)
    p = run(*SWEEP, "--out", out)
    assert "duplicate" not in p.stderr, p.stderr


def main():
    os.makedirs(WORK, exist_ok=True)
    run("phantom", "--dims", DIMS, "--out", SMALL)
    run_tests(globals())


if __name__ == "__main__":
    main()
