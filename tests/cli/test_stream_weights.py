#!/usr/bin/env python3
"""--stream-weights DIR through the program: the packed weights live in an unlinked file in DIR and the
process holds one step's at a time. Features and similarities equal the in-memory run's bit for bit
(extract with ResNet-50 and DenseNet-121, sweep, landmarks); run.json and landmarks_run.json name the
directory; no file is left in it. A directory that is missing, not a directory, or in memory (tmpfs) is
one error line naming it, exit 1, and no run.json.

usage: test_stream_weights.py VOLFEAT_BINARY WORKDIR
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import csv_rows, fresh_dir, run_tests  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
STREAM = os.path.join(WORK, "stream_dir")  # on the build's disk, not /tmp (which may be a tmpfs)


def run(*args, expect=0):
    p = subprocess.run([BIN, *args], capture_output=True, text=True)
    assert p.returncode == expect, f"exit {p.returncode} (expected {expect}) for {args}\nstderr: {p.stderr}"
    return p


def extract(name, *args):
    out = fresh_dir(WORK, name)
    run("extract", "--out", out, "--quiet", *args)
    with open(os.path.join(out, "run.json")) as f:
        meta = json.load(f)
    feats = np.load(os.path.join(out, "features.npz"))
    return meta, {k: feats[k] for k in feats.files}, csv_rows(os.path.join(out, "similarities.csv"))


def same_run(name, *args):
    os.makedirs(STREAM, exist_ok=True)
    m0, f0, s0 = extract(f"{name}_memory", *args)
    m1, f1, s1 = extract(f"{name}_streamed", "--stream-weights", STREAM, *args)
    assert m0["stream_weights"] is None and m1["stream_weights"] == STREAM, (m0["stream_weights"], m1["stream_weights"])
    assert sorted(f0) == sorted(f1) and f0
    for k in f0:
        assert np.array_equal(f0[k], f1[k]), f"{name} {k}: streamed features differ"
    assert s0 == s1, f"{name}: similarities differ"
    assert os.listdir(STREAM) == [], os.listdir(STREAM)  # the file was unlinked from the start


WHY_NORMAL_ONLY = ("whole networks twice each; under ASan test_streamed_weights drives the streamed convs, every "
                   "fused step, over two passes")


def test_extract_resnet50_equals_in_memory():
    same_run("resnet50", "--arch", "resnet50", "--layers", "conv1,layer1,layer2,layer3,layer4")


test_extract_resnet50_equals_in_memory.normal_suite_only = WHY_NORMAL_ONLY


def test_extract_densenet121_equals_in_memory():
    same_run("densenet121", "--arch", "densenet121", "--preset", "block-outputs")


test_extract_densenet121_equals_in_memory.normal_suite_only = WHY_NORMAL_ONLY


def test_sweep_and_landmarks():
    os.makedirs(STREAM, exist_ok=True)
    rows = {}
    for name, extra in (("memory", []), ("streamed", ["--stream-weights", STREAM])):
        out = fresh_dir(WORK, f"sweep_{name}")
        run("sweep", "--schemes", "random", "--layers", "denseblock1,transition1", "--pools", "mean", "--modes",
            "shared", "--similarities", "cosine", "--quiet", "--out", out, *extra)
        header, body = csv_rows(os.path.join(out, "sweep.csv"))
        timed = {header.index("forward_seconds"), header.index("finished_at")}  # when and how long: not results
        rows[name] = [[v for i, v in enumerate(r) if i not in timed] for r in body]
    assert rows["memory"] == rows["streamed"] and len(rows["memory"]) == 6, rows
    lm = {}
    for name, extra in (("memory", []), ("streamed", ["--stream-weights", STREAM])):
        out = fresh_dir(WORK, f"landmarks_{name}")
        run("landmarks", "--schemes", "random", "--layers", "conv0", "--patch", "8", "--radius", "2", "--quiet",
            "--out", out, *extra)
        with open(os.path.join(out, "landmarks_run.json")) as f:
            lm[name] = json.load(f)
        lm[name + "_csv"] = sorted(n for n in os.listdir(out) if n.endswith(".csv"))
        lm[name + "_rows"] = []
        for n in lm[name + "_csv"]:
            header, body = csv_rows(os.path.join(out, n))
            timed = {i for i, h in enumerate(header) if h.startswith("seconds")}  # how long: not a result
            lm[name + "_rows"].append([[v for i, v in enumerate(r) if i not in timed] for r in body])
    assert lm["memory"]["stream_weights"] is None and lm["streamed"]["stream_weights"] == STREAM
    assert lm["memory_csv"] == lm["streamed_csv"] and lm["memory_csv"]
    assert lm["memory_rows"] == lm["streamed_rows"]


test_sweep_and_landmarks.normal_suite_only = WHY_NORMAL_ONLY


def refused(directory, why):
    out = fresh_dir(WORK, "refused")
    p = run("extract", "--out", out, "--stream-weights", directory, expect=1)
    want = f"volfeat: error: --stream-weights {directory}: {why}"
    assert p.stderr.startswith(want) and p.stderr.count("\n") == 1, p.stderr
    assert not os.path.exists(os.path.join(out, "run.json"))


def test_bad_directories_are_one_error_line():
    refused(os.path.join(WORK, "no_such_dir"), "No such file or directory")
    a_file = os.path.join(WORK, "a_file")
    with open(a_file, "w") as f:
        f.write("x")
    refused(a_file, "not a directory")
    with open("/proc/mounts") as f:
        tmpfs = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in f)
    if not tmpfs:
        print("  skipped (tmpfs part): /dev/shm is not a tmpfs here")
        return
    refused("/dev/shm", "a tmpfs/ramfs directory is memory")


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    run_tests(globals())
