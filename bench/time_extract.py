#!/usr/bin/python3
"""Wall time of the whole `volfeat extract` job on a scanner-sized CT, IO included.

usage: time_extract.py [--build build-perf] [--dims 216,512,512] [--reps 5] [--work DIR] [--threads 2]
                       [--precision float32|bf16|tf32] [--against-torch] [--weights 2D.npz] [--program volfeat-cuda]

Writes the built-in knee phantom at --dims as an int16 CT (as scanners store it) plus its uint8 label
map (`volfeat phantom --dims ... --ct-dtype int16`, once, into --work), then runs
`volfeat extract --ct ... --mask ... --labels femur=1,tibia=2 --preset block-outputs` (3 regions
with background, 3 layers, shared mode) --reps times under /usr/bin/time -v. Prints each run's wall
time, peak RSS and the stage timings from run.json, then the median and min-max wall time.

--against-torch: issue #17's "the whole extract is no slower than PyTorch's forward alone", measured in one
run. A long-lived PyTorch worker (bench/torch_forward.py, as bench/compare_pytorch.py starts it: DenseNet121-3D
at --dims, the same three taps, torch at its best) gets one warm-up forward; then each whole extract process
alternates with one warm PyTorch forward (extract, torch, torch, extract, ...), and the ratio printed is
PyTorch's median forward over the extract's median wall time (above 1: the whole job is faster).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build-perf"), help="CMake build dir with experiments/volfeat")
    ap.add_argument("--dims", default="216,512,512")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default="/tmp/volfeat_time_extract")
    ap.add_argument("--precision", default="float32", help="extract's --precision (bf16 needs AVX512-BF16, tf32 a GPU)")
    ap.add_argument("--program", default="volfeat", help="the CLI in BUILD/experiments: volfeat, or volfeat-cuda on a "
                    "GPU machine (where /usr/bin/time may be missing: then the wall time is Python's, no peak RSS)")
    ap.add_argument("--weights", default=None, help="extract's --weights (a torchvision 2D export, inflated by "
                    "extract's default, i3d-mean along D); default: volfeat's seeded random network")
    ap.add_argument("--against-torch", action="store_true",
                    help="alternate each extract with one warm PyTorch forward at the same dims and print the ratio")
    a = ap.parse_args()

    volfeat = os.path.join(a.build, "experiments", a.program)
    if not os.access(volfeat, os.X_OK):
        sys.exit(f"time_extract.py: {volfeat} not found: build it (cmake --build {a.build} --target volfeat_cli)")
    data = os.path.join(a.work, "knee_" + a.dims.replace(",", "x"))
    ct, mask = os.path.join(data, "knee_ct.nii.gz"), os.path.join(data, "knee_labels.nii.gz")
    if not (os.path.exists(ct) and os.path.exists(mask)):
        subprocess.run([volfeat, "phantom", "--dims", a.dims, "--ct-dtype", "int16", "--out", data], check=True)
    out = os.path.join(a.work, "out")
    cmd = [volfeat, "extract", "--ct", ct, "--mask", mask, "--labels", "femur=1,tibia=2", "--preset", "block-outputs",
           "--threads", str(a.threads), "--precision", a.precision, "--quiet", "--out", out]
    if a.weights:
        cmd += ["--weights", a.weights]
    print("$", " ".join(cmd), flush=True)
    torch = None
    if a.against_torch:
        sys.path.insert(0, HERE)
        from compare_pytorch import TORCH_ENV, Worker
        d, h, w = a.dims.split(",")
        torch = Worker("torch", ["/usr/bin/python3", os.path.join(HERE, "torch_forward.py"), d, h, w, "--serve",
                                 "--threads", str(a.threads), "--taps", "denseblock2,denseblock3,denseblock4"],
                       dict(os.environ, GLIBC_TUNABLES=TORCH_ENV, OMP_NUM_THREADS=str(a.threads)))
        torch.run()  # warm-up
    walls, torch_s = [], []

    def torch_forward():
        if torch:
            torch_s.append(torch.run()["seconds"])
            print(f"torch forward {torch_s[-1]:.3f} s", flush=True)

    timed = os.access("/usr/bin/time", os.X_OK)  # absent on the GPU machine: Python's wall time, no RSS
    for rep in range(a.reps):
        if rep % 2 == 1:
            torch_forward()
        t0 = time.perf_counter()
        p = subprocess.run((["/usr/bin/time", "-v"] if timed else []) + cmd, capture_output=True, text=True)
        wall, rss = time.perf_counter() - t0, float("nan")
        if p.returncode != 0:
            sys.exit(f"time_extract.py: extract failed (exit {p.returncode}):\n{p.stderr}")
        if timed:
            m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
            wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) / 2**20
        run = json.load(open(os.path.join(out, "run.json")))
        if run["precision"] != a.precision:
            sys.exit(f"time_extract.py: asked for {a.precision}, ran {run['precision']}: {run['precision_note']}")
        t = run["timings_s"]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "total")
        print(f"rep {rep}: wall {wall:.2f} s, peak RSS {rss:.2f} GiB ({stages})", flush=True)
        walls.append(wall)
        if rep % 2 == 0:
            torch_forward()
    print(f"extract {a.dims}, {a.precision}, {a.threads} threads, {a.reps} runs: median {statistics.median(walls):.2f} s, "
          f"min-max {min(walls):.2f}-{max(walls):.2f} s")
    if torch:
        torch.close()
        tm = statistics.median(torch_s)
        print(f"PyTorch forward alone (warm, {torch.hello.get('threads')} threads), {len(torch_s)} runs: median {tm:.3f} s, "
              f"min-max {min(torch_s):.3f}-{max(torch_s):.3f} s; PyTorch forward / whole extract: "
              f"{tm / statistics.median(walls):.2f}x")


if __name__ == "__main__":
    main()
