#!/usr/bin/python3
"""PyTorch "at its best" on the same job as bench/volfeat_forward: the I3D-inflated DenseNet121 features
(torchvision's modules converted to 3D by tests/torch/densenet_reference.py, torchvision's random init),
fp32, batch 1, eval, no_grad, each wanted tap pooled to a channel mean by a forward hook.

"At its best" = torch.set_num_threads(T) + every Conv3d through torch.mkldnn_convolution (torch 1.13 sends
batch-1 3D convs with small C*D*H to a slow BLAS fallback otherwise) + GLIBC_TUNABLES (set by the caller:
glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736).

    torch_forward.py D H W [--threads T] [--taps a,b,c] [--serve] [--reps N] [--warmup N] [--plain]

--serve: reads "run" lines on stdin, answers {"seconds": s} per forward (as volfeat_forward --serve).
--plain: PyTorch as installed (no mkldnn routing; threads left at the build's default unless --threads).
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn as nn

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "tests", "torch"))
sys.dont_write_bytecode = True
import densenet_reference as dr  # noqa: E402
import arch_reference as ar  # noqa: E402


def mkldnn_conv3d_forward(self, x):
    return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups)


def build(plain, arch="densenet121"):
    torch.manual_seed(0)
    if arch.startswith("densenet"):
        net = dr.DenseNet3d(arch, "D", 1).eval()
    else:
        net = ar.to_3d(ar.Features(dr.xt.construct_model(arch), arch)).eval()
        # to_3d builds its convs with skip_init (the tests load a state over them), so they hold whatever the
        # allocator left there. From 2026-12-05 (22a6695) to 2026-12-07 PyTorch was timed on that: VGG-19's
        # features were NaN at 32x64x64 and 128^3 (its first conv's outputs at most 1e-13, its second's 6e23),
        # and on an Intel Ice Lake one alternation ran VGG-19 at 128^3 in 155 s a pass against 13 s in the next
        # (tiny values are likely denormals, which take microcode assists on Intel; not measured). torchvision's
        # own init for VGG's and ResNet's convs, in 3D:
        for m in net.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    if not plain:
        for m in net.modules():
            if isinstance(m, nn.Conv3d):
                m.forward = mkldnn_conv3d_forward.__get__(m, nn.Conv3d)
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs=3, type=int)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--taps", default="denseblock2,denseblock3,denseblock4",
                    help="module names (DenseNet: without features.; others: torchvision's full names)")
    ap.add_argument("--arch", default="densenet121")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    net = build(a.plain, a.arch)
    checksum = [0.0]
    dense = a.arch.startswith("densenet")
    names = {n: m for n, m in (net.features if dense else net).named_modules() if n}
    for t in filter(None, a.taps.split(",")):
        t = t[len("features."):] if dense and t.startswith("features.") else t
        names[t].register_forward_hook(lambda _m, _i, out: checksum.__setitem__(
            0, checksum[0] + float(out.mean(dim=(0, 2, 3, 4)).double().sum())))
    g = torch.Generator().manual_seed(1)
    x = torch.randn((1, 1) + tuple(a.shape), generator=g)

    def once():
        t0 = time.perf_counter()
        with torch.no_grad():
            net(x)
        return time.perf_counter() - t0

    if a.serve:
        print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            line = line.strip()
            if line == "run":
                print(json.dumps({"seconds": once(), "checksum": checksum[0]}), flush=True)
            elif line == "quit":
                break
    else:
        for _ in range(a.warmup):
            once()
        ts = []
        for i in range(a.reps):
            ts.append(once())
            print(json.dumps({"rep": i, "seconds": ts[-1]}), flush=True)
        s = sorted(ts)
        print(json.dumps({"median": s[len(s) // 2], "min": s[0], "max": s[-1]}))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"peak_rss_mb": rss, "checksum": checksum[0], "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
