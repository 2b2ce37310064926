#!/usr/bin/env python3
"""Cohorts under mpirun (issue #16): 3 loopback ranks give the single run's rows exactly (sweep and
extract --manifest); after kill -9 of one rank, or of the whole job, rerunning the same command
finishes with no lost or duplicated row; a bad volume makes the job exit 3 with failures.csv.

usage: test_cohort_mpi.py VOLFEAT_BINARY WORKDIR MPIEXEC [sanitize]
Exits 77 (skipped) with its reason under the sanitizers: LeakSanitizer reports OpenMPI's own
never-freed allocations at exit, so every rank would fail.
"""
import glob
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cli_runner, csv_rows, fresh_dir, run_tests  # noqa: E402
from cohort_fixtures import (assert_same_extract, assert_same_sweep, extract_args, make_cohort,  # noqa: E402
                             sweep_args)

BIN, WORK, MPIEXEC = sys.argv[1:4]
if len(sys.argv) > 4 and sys.argv[4] == "sanitize":
    print("SKIP: MPI tests do not run under VOLFEAT_SANITIZE: LeakSanitizer reports OpenMPI's own "
          "never-freed allocations at exit (a 5-line MPI_Init/MPI_Finalize program built with -fsanitize=address "
          "fails the same way), so every rank would fail; test_cohort runs the cohort code there without MPI")
    sys.exit(77)
os.makedirs(WORK, exist_ok=True)
run = cli_runner(BIN)
MANIFEST = make_cohort(BIN, WORK)
BAD_MANIFEST = make_cohort(BIN, WORK, bad=True)
SWEEP = sweep_args(MANIFEST)
TIMEOUT_S = 600
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_btl="self,vader", OMPI_MCA_btl_vader_single_copy_mechanism="none",
           OMPI_MCA_rmaps_base_oversubscribe="1")
MPI = [MPIEXEC, "--oversubscribe", "-np", "3", BIN]

_reference = {}


def reference(kind):
    if kind not in _reference:
        out = fresh_dir(WORK, "reference_" + kind)
        if kind == "sweep":
            run(*SWEEP, "--threads", "1", "--out", out)
        else:
            run(*extract_args(MANIFEST), "--threads", "1", "--out", out)
        _reference[kind] = out
    return _reference[kind]


def mpirun(*args, expect=0):
    p = subprocess.run([*MPI, *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=ENV)
    assert p.returncode == expect, f"exit {p.returncode} (expected {expect})\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def start_mpirun(*args):
    # a session of its own: "the whole job" is its process group
    return subprocess.Popen([*MPI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)


def wait_for_parts(out, proc, count):
    deadline = time.time() + TIMEOUT_S
    while time.time() < deadline and proc.poll() is None:
        if len(glob.glob(os.path.join(out, "cohort", "parts", "*.csv"))) >= count:
            return
        time.sleep(0.02)


def ranks_of(proc):
    """The pids of the volfeat ranks mpirun started (its children, or theirs)."""
    children = []  # quick: mpirun's own children, read in one go
    for task in glob.glob(f"/proc/{proc.pid}/task/*/children"):
        try:
            with open(task) as f:
                children += [int(p) for p in f.read().split()]
        except OSError:
            pass
    if len(children) == 3:
        return children
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(stat[:-4] + "cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if int(fields[3]) == proc.pid and b"sweep" in cmd:  # field 6 of stat: the session
            out.append(int(stat.split("/")[2]))
    return [p for p in out if p != proc.pid]


def wait_gone(pids):
    """Until the killed ranks have exited (a zombie counts as exited: the claims' staleness test says so too)."""
    deadline = time.time() + 30
    while time.time() < deadline:
        alive = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        alive.append(pid)
            except OSError:
                pass
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"ranks {pids} still running 30 s after the kill")


def test_three_ranks_write_the_single_runs_rows():
    out = fresh_dir(WORK, "mpi_sweep")
    p = mpirun(*SWEEP, "--out", out)
    assert "3 ranks: 12 computed, 0 already done, 0 failed" in p.stdout, p.stdout
    assert p.stdout.count("units in the cohort") == 1, p.stdout  # rank 0 reports, once
    assert_same_sweep(out, reference("sweep"))
    p = mpirun(*SWEEP, "--out", out)
    assert "0 computed, 12 already done" in p.stdout, p.stdout
    assert_same_sweep(out, reference("sweep"))


def kill_mid_sweep(name, parts, kill):
    """Starts the 3-rank sweep into WORK/name, calls kill(job, ranks) once `parts` units are written, and waits
    until every rank is gone. Returns (out, job)."""
    out = fresh_dir(WORK, name)
    job = start_mpirun(*SWEEP, "--out", out)
    wait_for_parts(out, job, parts)
    # Freeze the job at once: a unit takes ~0.1 s here, and finding the ranks in /proc while they run took
    # long enough on 2 busy vCPUs for every unit to finish first (CI, 2026-12-01), so the kill found no claims.
    os.killpg(job.pid, signal.SIGSTOP)
    ranks = ranks_of(job)
    assert len(ranks) == 3, f"found ranks {ranks}"
    for pid in ranks:  # mpirun puts each rank in a process group of its own
        os.kill(pid, signal.SIGSTOP)
    written = len(glob.glob(os.path.join(out, "cohort", "parts", "*.csv")))
    assert written < 12, f"all {written} units were written before the job was stopped; the kill would come too late"
    kill(job, ranks)
    for pid in [job.pid, *ranks]:  # the ones not killed go on (SIGKILL needs no SIGCONT)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    job.communicate(timeout=TIMEOUT_S)
    wait_gone(ranks)
    return out, job


def test_one_rank_killed_then_the_same_command_finishes_the_rows():
    out, job = kill_mid_sweep("mpi_rank_killed", 2, lambda job, ranks: os.kill(ranks[-1], signal.SIGKILL))
    assert job.returncode != 0, "the job did not notice its killed rank"
    assert not os.path.exists(os.path.join(out, "sweep.csv")), "a killed job must not leave a complete-looking table"
    p = mpirun(*SWEEP, "--out", out)
    assert "0 left to other runs" in p.stdout, p.stdout
    assert_same_sweep(out, reference("sweep"))


def test_the_whole_job_killed_then_the_same_command_finishes_the_rows():
    def kill_all(job, ranks):  # mpirun puts each rank in a process group of its own: kill those too
        for pid in ranks:
            os.kill(pid, signal.SIGKILL)
        os.killpg(job.pid, signal.SIGKILL)

    out, job = kill_mid_sweep("mpi_job_killed", 1, kill_all)
    assert job.returncode == -signal.SIGKILL, "mpirun finished before the kill; the kill came too late"
    # some claims are left by the dead ranks: the rerun takes them over as stale
    p = mpirun(*SWEEP, "--out", out)
    assert "12 already done" not in p.stdout and "0 left to other runs" in p.stdout, p.stdout
    assert_same_sweep(out, reference("sweep"))


def test_extract_over_three_ranks_writes_the_single_runs_tables():
    out = fresh_dir(WORK, "mpi_extract")
    mpirun(*extract_args(MANIFEST), "--out", out)
    assert_same_extract(out, reference("extract"), ["small", "medium", "large"])


def test_a_bad_volume_makes_the_job_exit_3_and_the_others_finish():
    out = fresh_dir(WORK, "mpi_bad")
    p = mpirun(*sweep_args(BAD_MANIFEST), "--out", out, expect=3)
    _, failures = csv_rows(os.path.join(out, "failures.csv"))
    assert sorted({f[0] for f in failures}) == ["broken"] and len(failures) == 4, failures
    _, rows = csv_rows(os.path.join(out, "sweep.csv"))
    want = csv_rows(os.path.join(reference("sweep"), "sweep.csv"))[1]
    assert sorted(tuple(r[:7]) for r in rows) == sorted(tuple(r[:7]) for r in want)
    assert "4 failed" in p.stdout, p.stdout


run_tests(dict(globals()))
