#!/usr/bin/python3
"""volfeat vs PyTorch-at-its-best, side by side, on the same shapes and thread count in one run.

    /usr/bin/python3 bench/compare_pytorch.py --build build-perf [--sizes 128x128x128,108x256x256,216x512x512]
                                              [--reps 5] [--threads 2] [--markdown]

Per size, two long-lived workers are started, each under /usr/bin/time -v (for its peak RSS):
bench/volfeat_forward (from the build dir) and bench/torch_forward.py (torch.set_num_threads(T), every Conv3d
through torch.mkldnn_convolution, GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2^36).
Both build DenseNet121-3D with random weights, make the same-shaped seeded input and pool three taps
(denseblock2, denseblock3, denseblock4) to channel means while the pass runs. Each worker gets one warm-up
forward, then --reps timed forwards, strictly alternating (volfeat, torch, torch, volfeat, ...) so both see the
same background load. Printed per size: median, min-max, GFLOP/s (analytic conv FLOPs of the standard network),
peak RSS, and ratio = torch median / volfeat median.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_ENV = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def densenet121_gflop(d, h, w):
    """2*MACs of every conv of DenseNet121-3D features on a (d, h, w) input (torch's order, no shortcuts)."""
    def out(n, k, s, p):
        return (n + 2 * p - k) // s + 1
    flops = 0.0
    g = [out(n, 7, 2, 3) for n in (d, h, w)]
    vox = g[0] * g[1] * g[2]
    flops += 2 * vox * 64 * 1 * 343
    g = [out(n, 3, 2, 1) for n in g]
    ch = 64
    for b, layers in enumerate((6, 12, 24, 16)):
        vox = g[0] * g[1] * g[2]
        for _ in range(layers):
            flops += 2 * vox * 128 * ch            # conv1 1x1x1
            flops += 2 * vox * 32 * 128 * 27       # conv2 3x3x3
            ch += 32
        if b < 3:
            flops += 2 * vox * (ch // 2) * ch      # transition conv 1x1x1 (before its pool)
            ch //= 2
            g = [n // 2 for n in g]
    return flops / 1e9


class Worker:
    def __init__(self, name, argv, env=None):
        self.name = name
        # Peak RSS from GNU time where it is installed (the GPU machine's image has none: RSS is then nan).
        self.timefile = None
        if os.access("/usr/bin/time", os.X_OK):
            self.timefile = tempfile.NamedTemporaryFile(prefix="vf_time_", suffix=".txt", delete=False).name
            argv = ["/usr/bin/time", "-v", "-o", self.timefile] + argv
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.hello = self._read()

    def _read(self):
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} worker exited early (exit code {self.p.wait()})")
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)

    def run(self):
        self.p.stdin.write("run\n")
        self.p.stdin.flush()
        return self._read()

    def close(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        self.p.stdin.close()
        rest = self.p.stdout.read()
        self.p.wait()
        text = ""
        if self.timefile:
            text = open(self.timefile).read()
            os.unlink(self.timefile)
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        self.peak_rss_gb = int(m.group(1)) / 1024 / 1024 if m else float("nan")
        return rest


def default_taps(arch):
    """(volfeat's taps, PyTorch's module names for the same outputs): the family's shallow/mid/deep."""
    family = "densenet" if arch.startswith("densenet") else "vgg" if arch.startswith("vgg") else "resnet"
    vgg_relus = {"vgg19": "features.8,features.22,features.35", "vgg19_bn": "features.12,features.32,features.51"}
    return {"densenet": ("denseblock2,denseblock3,denseblock4",) * 2,
            "vgg": ("conv2_2,conv4_2,conv5_4", vgg_relus.get(arch, "")),
            "resnet": ("layer1,layer3,layer4",) * 2}[family]


def fmt_t(ts):
    return statistics.median(ts), min(ts), max(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build-perf"), help="CMake build dir with bench/volfeat_forward")
    ap.add_argument("--sizes", default="128x128x128,108x256x256,216x512x512")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", default="densenet121", help="any --arch of volfeat (vgg19, resnet50, ...)")
    ap.add_argument("--taps", default=None, help="default: the family's shallow/mid/deep (DenseNet: denseblock2,3,4; "
                    "VGG-19: the paper's conv2_2, conv4_2, conv5_4; ResNet: layer1, layer3, layer4)")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table")
    ap.add_argument("--winograd-ab", action="store_true",
                    help="also run volfeat with VOLFEAT_WINOGRAD=0 (direct convs only) as a third worker in the same "
                         "alternation, and print the Winograd speed-up (direct median / volfeat median)")
    ap.add_argument("--bf16-ab", action="store_true",
                    help="also run volfeat with --precision bf16 (needs AVX512-BF16) in the same alternation, and "
                         "print its speed-up over PyTorch float32 and over volfeat float32")
    ap.add_argument("--stream-ab", metavar="DIR", default=None,
                    help="also run volfeat with --stream-weights DIR (weights streamed from a file there, one step's "
                         "held at a time) in the same alternation, and print its time, peak RSS and ratios")
    ap.add_argument("--weights", default=None,
                    help="volfeat runs these torchvision 2D weights (.npz), inflated as extract's default (i3d-mean "
                         "along D: depth-factored direct convs); PyTorch keeps random ones (its speed does not "
                         "depend on the values)")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="the interpreter with torch for the PyTorch worker (default: Debian's /usr/bin/python3)")
    a = ap.parse_args()

    exe = os.path.join(a.build, "bench", "volfeat_forward")
    if not os.path.exists(exe):
        sys.exit(f"{exe} not found: cmake --build {a.build} --target volfeat_forward")
    vtaps, ttaps = (a.taps, a.taps) if a.taps else default_taps(a.arch)
    rows = []
    for size in a.sizes.split(","):
        d, h, w = (int(v) for v in size.lower().split("x"))
        gflop = densenet121_gflop(d, h, w)
        venv = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OMP_PROC_BIND="close", OMP_PLACES="cores")
        tenv = dict(os.environ, GLIBC_TUNABLES=TORCH_ENV, OMP_NUM_THREADS=str(a.threads))
        wargs = ["--weights", a.weights] if a.weights else []
        vf = Worker("volfeat", [exe, str(d), str(h), str(w), "--serve", "--threads", str(a.threads), "--taps", vtaps,
                                "--arch", a.arch] + wargs, venv)
        th = Worker("torch", [a.python, os.path.join(HERE, "torch_forward.py"), str(d), str(h), str(w),
                              "--serve", "--threads", str(a.threads), "--taps", ttaps, "--arch", a.arch], tenv)
        vd = None
        if a.winograd_ab:
            vd = Worker("volfeat-direct", [exe, str(d), str(h), str(w), "--serve", "--threads", str(a.threads), "--taps",
                                           vtaps, "--arch", a.arch] + wargs, dict(venv, VOLFEAT_WINOGRAD="0"))
        vb = None
        if a.bf16_ab:
            vb = Worker("volfeat-bf16", [exe, str(d), str(h), str(w), "--serve", "--threads", str(a.threads), "--taps",
                                         vtaps, "--arch", a.arch, "--precision", "bf16"] + wargs, venv)
        vs = None
        if a.stream_ab:
            vs = Worker("volfeat-streamed", [exe, str(d), str(h), str(w), "--serve", "--threads", str(a.threads), "--taps",
                                             vtaps, "--arch", a.arch, "--stream-weights", a.stream_ab] + wargs, venv)
        gflop = vf.hello.get("gflop", gflop)
        tv, tt, td, tb, ts = [], [], [], [], []
        last = {}  # each worker's last checksum (the sum of its taps' channel means)
        for i in range(a.warmup + a.reps):
            order = [vf, th] + ([vd] if vd else []) + ([vb] if vb else []) + ([vs] if vs else [])
            if i % 2 == 1:
                order.reverse()
            for wk in order:
                r = wk.run()
                last[wk.name] = r.get("checksum")
                if i >= a.warmup:
                    (tv if wk is vf else tt if wk is th else td if wk is vd else tb if wk is vb else ts).append(r["seconds"])
            print(f"  {size} rep {i - a.warmup if i >= a.warmup else 'warm-up'}: volfeat "
                  f"{(tv or [float('nan')])[-1]:.3f} s, torch {(tt or [float('nan')])[-1]:.3f} s", file=sys.stderr, flush=True)
        # Speed can depend on the values (denormals take microcode assists on Intel): until 2026-12-07
        # torch_forward.py ran VGG and ResNet on uninitialised weights, with NaN features. A worker whose features
        # are not finite is named beside its row rather than left behind a ratio.
        for name, c in last.items():
            if c is not None and not math.isfinite(c):
                print(f"  note: {name}'s tapped features at {size} are not finite (checksum {c}): its weights or its "
                      "arithmetic are broken, and its time is no fair comparison", file=sys.stderr, flush=True)
        vf.close()
        th.close()
        vm, vlo, vhi = fmt_t(tv)
        tm, tlo, thi = fmt_t(tt)
        rows.append(dict(size=size, gflop=gflop, v=(vm, vlo, vhi), t=(tm, tlo, thi), vrss=vf.peak_rss_gb,
                         trss=th.peak_rss_gb, ratio=tm / vm, threads=th.hello.get("threads")))
        if vd:
            vd.close()
            rows[-1].update(d=fmt_t(td), drss=vd.peak_rss_gb)
        if vb:
            vb.close()
            rows[-1].update(b=fmt_t(tb), brss=vb.peak_rss_gb)
        if vs:
            vs.close()
            rows[-1].update(s=fmt_t(ts), srss=vs.peak_rss_gb)

    hdr = (f"{'input':>14} {'GFLOP':>7} | {'volfeat median [min-max] s':>28} {'GFLOP/s':>7} {'RSS GB':>6} | "
           f"{'torch median [min-max] s':>28} {'GFLOP/s':>7} {'RSS GB':>6} | ratio")
    print(f"{a.arch}: {a.reps} reps after {a.warmup} warm-up, {a.threads} threads, alternating")
    print(hdr)
    for r in rows:
        v, t = r["v"], r["t"]
        print(f"{r['size']:>14} {r['gflop']:7.1f} | {v[0]:8.3f} [{v[1]:.3f}-{v[2]:.3f}]{'':>8} {r['gflop'] / v[0]:7.1f} "
              f"{r['vrss']:6.2f} | {t[0]:8.3f} [{t[1]:.3f}-{t[2]:.3f}]{'':>8} {r['gflop'] / t[0]:7.1f} {r['trss']:6.2f} | "
              f"{r['ratio']:.2f}x")
        if "d" in r:
            dd = r["d"]
            print(f"{'':>14} {'':>7} | direct convs (VOLFEAT_WINOGRAD=0): {dd[0]:.3f} [{dd[1]:.3f}-{dd[2]:.3f}] s, "
                  f"{r['gflop'] / dd[0]:.1f} GFLOP/s, RSS {r['drss']:.2f} GB; Winograd speed-up {dd[0] / v[0]:.2f}x, "
                  f"direct vs torch {t[0] / dd[0]:.2f}x")
        if "b" in r:
            bb = r["b"]
            print(f"{'':>14} {'':>7} | bf16 (--precision bf16): {bb[0]:.3f} [{bb[1]:.3f}-{bb[2]:.3f}] s, "
                  f"{r['gflop'] / bb[0]:.1f} GFLOP/s, RSS {r['brss']:.2f} GB; vs torch float32 {t[0] / bb[0]:.2f}x, "
                  f"vs volfeat float32 {v[0] / bb[0]:.2f}x")
        if "s" in r:
            ss = r["s"]
            print(f"{'':>14} {'':>7} | streamed weights (--stream-weights): {ss[0]:.3f} [{ss[1]:.3f}-{ss[2]:.3f}] s, "
                  f"RSS {r['srss']:.2f} GB ({r['srss'] / r['trss']:.2f} of torch's); vs torch {t[0] / ss[0]:.2f}x, "
                  f"vs volfeat in memory {v[0] / ss[0]:.2f}x")
    if a.markdown:
        print()
        print("| input | GFLOP | volfeat median s | volfeat min–max s | volfeat GFLOP/s | volfeat peak RSS GB | "
              "PyTorch median s | PyTorch min–max s | PyTorch GFLOP/s | PyTorch peak RSS GB | speed-up |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            v, t = r["v"], r["t"]
            print(f"| {r['size'].replace('x', '×')} | {r['gflop']:.1f} | {v[0]:.3f} | {v[1]:.3f}–{v[2]:.3f} | "
                  f"{r['gflop'] / v[0]:.0f} | {r['vrss']:.2f} | {t[0]:.3f} | {t[1]:.3f}–{t[2]:.3f} | "
                  f"{r['gflop'] / t[0]:.0f} | {r['trss']:.2f} | {r['ratio']:.2f}× |")


if __name__ == "__main__":
    main()
