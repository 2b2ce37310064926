#!/usr/bin/python3
"""bench/torch_forward.py, the PyTorch side of every side-by-side timing (compare_pytorch.py, time_extract.py),
runs initialised networks: every 3D conv of VGG and ResNet drawn as torchvision draws its 2D one, and each
family's tapped features finite and non-zero, through the script itself (mkldnn routing included).

From 2026-12-05 to 2026-12-07 its VGG and ResNet convs were left on uninitialised memory (tests/torch/
arch_reference.py's to_3d builds them with skip_init): VGG-19's features were NaN and PyTorch's times were
those of garbage (bench/README.md, session 44).

    test_torch_worker.py
"""
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(HERE, "..", "..", "bench")
sys.path.insert(0, BENCH)
sys.dont_write_bytecode = True

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import torch_forward  # noqa: E402
from compare_pytorch import default_taps  # noqa: E402

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


# kaiming_normal_(fan_out, relu): std sqrt(2 / (C_out * k^3)); the smallest conv (VGG's 3x3x3 stem on one
# channel) has 1728 weights, so the sample std is within a few percent of it.
for arch in ("vgg19", "resnet50"):
    net = torch_forward.build(plain=True, arch=arch)
    convs = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv3d)]
    worst, worst_name, nonzero_bias = 0.0, "", []
    for name, m in convs:
        w = m.weight.detach()
        fan_out = w.shape[0] * w[0, 0].numel()
        ratio = float(w.std()) / math.sqrt(2.0 / fan_out)
        off = abs(math.log(ratio)) if ratio > 0 and math.isfinite(ratio) else math.inf
        if off >= worst:
            worst, worst_name = off, name
        if m.bias is not None and not bool((m.bias == 0).all()):
            nonzero_bias.append(name)
    check(len(convs) > 10 and worst < math.log(1.2),
          f"{arch}: {len(convs)} convs, each weight std within 20 % of kaiming's fan-out std (worst factor "
          f"{math.exp(worst):.3f}, {worst_name})")
    check(not nonzero_bias, f"{arch}: every conv bias zero (not: {', '.join(nonzero_bias) or 'none'})")

for arch in ("densenet121", "vgg19", "resnet50"):
    taps = default_taps(arch)[1]  # what compare_pytorch.py gives the PyTorch worker
    out = subprocess.run([sys.executable, os.path.join(BENCH, "torch_forward.py"), "32", "32", "32", "--arch", arch,
                          "--threads", "2", "--reps", "1", "--warmup", "0", "--taps", taps],
                         capture_output=True, text=True, timeout=300)
    last = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
    c = last.get("checksum", float("nan"))
    check(out.returncode == 0 and math.isfinite(c) and c > 0,
          f"{arch}: torch_forward.py 32^3 exits 0 with a finite, positive checksum of its taps' means ({c}"
          f"{'; ' + out.stderr.strip().splitlines()[-1] if out.returncode and out.stderr.strip() else ''})")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
