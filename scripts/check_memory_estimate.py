#!/usr/bin/python3
"""Compare the memory guard's estimate with the measured peak: check_memory_estimate.py VOLFEAT [WORKDIR].

Runs `volfeat extract` on synthetic CTs of several sizes and configurations under /usr/bin/time -v and
prints, per run, the estimate (`volfeat: memory: estimated peak ...`, nn/memory_estimate.hpp +
pipeline/memory_guard.hpp) next to the maximum resident set size. The estimate is meant to be an
upper-ish bound: rerun this after changing how the forward pass allocates (nn/plan.hpp: the executor and
simulate_forward() read the same plan) until every ratio is >= 1 and not far above it.
VOLFEAT_MEM_SIZES=64x64x64,96x96x96 limits the sizes.
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import nibabel as nib

SIZES = [(64, 64, 64), (96, 96, 96), (128, 128, 112), (160, 160, 128), (192, 192, 160), (256, 256, 224)]
CONFIGS = [
    ("shared, denseblock4-tail", []),
    ("shared, --layers conv0", ["--layers", "conv0"]),
    ("shared, denseblock1 norm1 tap", ["--layers", "denseblock1.denselayer3.norm1,denseblock4"]),
    ("mask-input, denseblock4-tail", ["--mode", "mask-input"]),
    ("shared, imagenet (3 ch)", ["--normalize", "imagenet", "--stem", "rgb"]),
    ("shared, vgg19 paper-vgg", ["--arch", "vgg19"]),
    ("shared, vgg11_bn every conv", ["--arch", "vgg11_bn", "--preset", "last-3rd-5th"]),
    ("shared, resnet50 paper-resnet", ["--arch", "resnet50"]),
    ("shared, resnet18 layer2.0.bn1 tap", ["--arch", "resnet18", "--layers", "layer2.0.bn1,layer4"]),
]
if os.environ.get("VOLFEAT_MEM_SIZES"):
    SIZES = [tuple(int(v) for v in s.split("x")) for s in os.environ["VOLFEAT_MEM_SIZES"].split(",")]


def volume(shape, path_ct, path_mask):
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    c = [n / 2 for n in shape]
    r = min(shape) / 5
    a = (i - c[0] + r) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2 < r * r
    b = (i - c[0] - r) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2 < r * r
    ct = np.full(shape, -1000, np.int16)
    ct[a], ct[b] = 700, 300
    mask = np.zeros(shape, np.uint8)
    mask[a], mask[b] = 1, 2
    nib.save(nib.Nifti1Image(ct, np.eye(4), dtype=np.int16), path_ct)
    nib.save(nib.Nifti1Image(mask, np.eye(4), dtype=np.uint8), path_mask)


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    binary = os.path.abspath(argv[1])
    work = argv[2] if len(argv) == 3 else tempfile.mkdtemp(prefix="volfeat-mem-")
    os.makedirs(work, exist_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS", "2")
    print(f"| input (i,j,k) | configuration | estimate MiB | measured max RSS MiB | estimate / measured |")
    print(f"|---|---|---|---|---|")
    worst = None
    for shape in SIZES:
        ct, mask = os.path.join(work, "ct.nii.gz"), os.path.join(work, "mask.nii.gz")
        volume(shape, ct, mask)
        for name, extra in CONFIGS:
            cmd = ["/usr/bin/time", "-v", binary, "extract", "--ct", ct, "--mask", mask, "--labels", "a=1,b=2",
                   "--threads", threads, "--out", os.path.join(work, "out")] + extra
            p = subprocess.run(cmd, capture_output=True, text=True)
            est = re.search(r"memory: estimated peak ([\d.]+) (MiB|GiB)", p.stderr)
            rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
            if p.returncode != 0 or not est or not rss:
                print(f"| {'x'.join(map(str, shape))} | {name} | run failed: {p.stderr.strip().splitlines()[-1:]} |||")
                continue
            e = float(est.group(1)) * (1024 if est.group(2) == "GiB" else 1)
            m = int(rss.group(1)) / 1024
            ratio = e / m
            worst = ratio if worst is None else min(worst, ratio)
            print(f"| {'x'.join(map(str, shape))} | {name} | {e:.0f} | {m:.0f} | {ratio:.2f} |", flush=True)
    print(f"\nlowest estimate/measured ratio: {worst:.2f}" if worst else "\nno successful run")
    return 0 if worst and worst >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
