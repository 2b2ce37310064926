#!/usr/bin/env python3
"""volfeat-cuda vs PyTorch+cuDNN at its best, side by side on one GPU in one run (issue #12's benchmark).

    python3 bench/compare_pytorch_cuda.py --build build-cuda [--sizes 128x128x128,108x256x256,216x512x512]
                                          [--reps 5] [--warmup 2] [--markdown] [--json OUT.json]

Run it on the GPU machine with the python3 that holds torch (there: bash .gpu/run.sh 'python3 bench/...').
Per size:
  - volfeat: bench/volfeat_cuda_forward from the build (one process per size: seeded DenseNet121-3D, seeded
    input, taps denseblock2/3/4 pooled to channel means on the device); median of --reps forwards after
    --warmup, each timed from the host input to the pooled taps on the host after cudaDeviceSynchronize;
    peak GPU memory polled with cudaMemGetInfo, less the context.
  - PyTorch: the same I3D-inflated DenseNet121 (tests/torch/densenet_reference.py), eval, no_grad, channels
    first (PyTorch's fastest for 3D convs here), cudnn.benchmark=True, the same hooks pooling the same taps,
    in three modes: fp32 strict (allow_tf32=False), TF32 (allow_tf32=True), bf16 autocast. Median of --reps
    CUDA-synchronised forwards after --warmup (plus cudnn.benchmark's own search). Peak memory:
    torch.cuda.max_memory_reserved (the caching allocator's high-water mark).
Ratios are PyTorch median / volfeat median: above 1 means volfeat is faster.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "torch"))
sys.dont_write_bytecode = True


def torch_times(shape, mode, reps, warmup, taps):
    import torch
    import densenet_reference as dr
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
    torch.manual_seed(0)
    net = dr.DenseNet3d("densenet121", "D", 1).eval().cuda()
    pooled = []
    for name, m in net.named_modules():
        if name.split(".")[-1] in taps:
            m.register_forward_hook(lambda _m, _i, o: pooled.append(o.float().mean(dim=(2, 3, 4))))
    g = torch.Generator().manual_seed(1)
    x_host = torch.randn((1, 1) + tuple(shape), generator=g)
    torch.cuda.reset_peak_memory_stats()

    def once():
        pooled.clear()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
            net(x_host.cuda(non_blocking=False))
            [p.cpu() for p in pooled]
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(warmup + 1):
        once()
    t = sorted(once() for _ in range(reps))
    peak = torch.cuda.max_memory_reserved() / 2**30
    del net
    torch.cuda.empty_cache()
    return {"median": statistics.median(t), "min": t[0], "max": t[-1], "peak_gpu_gib": peak}


def volfeat_times(build, shape, reps, warmup, precision):
    exe = os.path.join(build, "bench", "volfeat_cuda_forward")
    argv = [exe] + [str(s) for s in shape] + ["--reps", str(reps), "--warmup", str(warmup), "--precision", precision]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{exe} failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build-cuda")
    ap.add_argument("--sizes", default="128x128x128,108x256x256,216x512x512")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--modes", default="fp32,tf32,bf16", help="PyTorch modes")
    ap.add_argument("--precisions", default="float32,tf32", help="volfeat's --precision values")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.reps < 5:
        ap.error("--reps: at least 5 (medians of 5 or more synchronised forwards)")
    import torch
    gpu = torch.cuda.get_device_name(0)
    taps = {"denseblock2", "denseblock3", "denseblock4"}
    rows = []
    for s in a.sizes.split(","):
        shape = tuple(int(v) for v in s.lower().split("x"))
        row = {"shape": shape}
        for prec in a.precisions.split(","):
            row["volfeat_" + prec] = volfeat_times(a.build, shape, a.reps, a.warmup, prec)
        for mode in a.modes.split(","):
            row["torch_" + mode] = torch_times(shape, mode, a.reps, a.warmup, taps)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{gpu}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}; medians of {a.reps} "
          f"after {a.warmup} warm-up; ratio = PyTorch / volfeat")
    modes, precs = a.modes.split(","), a.precisions.split(",")
    print("| input | " + " | ".join(f"torch {m} s" for m in modes) + " | " +
          " | ".join(f"volfeat {p} s" for p in precs) + " | torch " + "/".join(modes) + " peak GiB | volfeat " +
          "/".join(precs) + " peak GiB |")
    print("|" + "---|" * (2 + len(modes) + len(precs) + 1))
    for r in rows:
        t = " | ".join(f"{r['torch_' + m]['median']:.4f}" for m in modes)
        v = " | ".join(f"{r['volfeat_' + p]['median']:.4f}" for p in precs)
        tp = "/".join(f"{r['torch_' + m]['peak_gpu_gib']:.2f}" for m in modes)
        vp = "/".join(f"{r['volfeat_' + p]['peak_gpu_gib']:.2f}" for p in precs)
        print(f"| {'×'.join(map(str, r['shape']))} | {t} | {v} | {tp} | {vp} |")
    print("\nratios (PyTorch median / volfeat median):")
    for r in rows:
        print("  " + "×".join(map(str, r["shape"])) + ": " + ", ".join(
            f"torch {m} / volfeat {p} = {r['torch_' + m]['median'] / r['volfeat_' + p]['median']:.2f}×"
            for p in precs for m in modes))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"gpu": gpu, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
