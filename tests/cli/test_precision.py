#!/usr/bin/env python3
"""--precision bf16 through the program (issue #17): its features within 1e-2 (relative to the layer's
largest value) and its cosines within 1e-3 of float32, on the phantom (DenseNet-121, ResNet-50, VGG-19,
every block of each; DenseNet-121 also from inflated 2D weights, its stem depth-factored) and on the pelvis
CT; run.json says what ran and on which kernels (AMX tiles where the CPU has them, else AVX512-BF16; the
tile GEMM's code also runs here on its software model, VOLFEAT_BF16_KERNELS=amx-emulated). Where bf16
cannot run (no
AVX512-BF16, or VOLFEAT_CPU_ISA=avx2) the run goes on in float32 with one note, and gives float32's
features bit for bit. An unknown precision is one error line.

usage: test_precision.py VOLFEAT_BINARY WORKDIR SHARED_DIR
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import csv_rows, fresh_dir, run_tests  # noqa: E402

BIN, WORK, SHARED = sys.argv[1], sys.argv[2], sys.argv[3]
PELVIS = os.path.join(SHARED, "data", "pelvis_ct")
FEATURE_BOUND, COSINE_BOUND = 1e-2, 1e-3


def has_bf16():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"} <= flags
    return False


BF16 = has_bf16()


def has_amx():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return {"amx_tile", "amx_bf16"} <= set(line.split(":", 1)[1].split())
    return False


# What run.json's precision_kernels may say for bf16 here: on a CPU with AMX, the tiles, or AVX512-BF16 with
# the reason where Linux did not grant the tile data (an old kernel, a small signal stack).
KERNELS = (("bf16 kernels: AMX tiles", "bf16 kernels: AVX512-BF16 (vdpbf16ps); no AMX: the kernel did not grant")
           if has_amx() else ("bf16 kernels: AVX512-BF16",))


def run(*args, isa=None, kernels=None, expect=0):
    env = dict(os.environ)
    env.pop("VOLFEAT_CPU_ISA", None)
    env.pop("VOLFEAT_BF16_KERNELS", None)
    if isa:
        env["VOLFEAT_CPU_ISA"] = isa
    if kernels:
        env["VOLFEAT_BF16_KERNELS"] = kernels
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=env)
    assert p.returncode == expect, f"exit {p.returncode} (expected {expect}) for {args}\nstderr: {p.stderr}"
    return p


def extract(name, precision, *args, isa=None, kernels=None):
    out = fresh_dir(WORK, f"{name}_{precision}" + (f"_{isa}" if isa else "") + (f"_{kernels}" if kernels else ""))
    p = run("extract", "--out", out, "--precision", precision, "--quiet", *args, isa=isa, kernels=kernels)
    with open(os.path.join(out, "run.json")) as f:
        meta = json.load(f)
    feats = np.load(os.path.join(out, "features.npz"))
    header, rows = csv_rows(os.path.join(out, "similarities.csv"))
    cos = np.array([[float(v) for v in r[1:]] for r in rows])
    return p, meta, {k: feats[k] for k in feats.files}, cos


def compare(name, *args, kernels=None, want_kernels=None):
    """bf16 against float32 on the same run: worst feature error per layer and worst cosine difference."""
    _, m32, f32, c32 = extract(name, "float32", *args)
    _, m16, f16, c16 = extract(name, "bf16", *args, kernels=kernels)
    assert m32["precision"] == "float32" and m16["precision"] == "bf16", (m32["precision"], m16["precision"])
    assert m16["precision_note"] == "", m16["precision_note"]
    assert m32["precision_kernels"] is None, m32["precision_kernels"]
    assert m16["precision_kernels"].startswith(want_kernels or KERNELS), m16["precision_kernels"]
    assert sorted(f32) == sorted(f16)
    by_layer = {}
    for k in f32:
        layer = k.split("/", 1)[1]
        # relative to the layer's largest value over the regions (a region's small entries are not the scale)
        err = np.abs(f16[k] - f32[k]).max()
        scale = max(np.abs(f32[j]).max() for j in f32 if j.split("/", 1)[1] == layer)
        by_layer[layer] = max(by_layer.get(layer, 0.0), err / scale)
    worst_cos = float(np.abs(c16 - c32).max())
    print(f"  {name}: bf16 vs float32, worst feature error {max(by_layer.values()):.2e} "
          f"({max(by_layer, key=by_layer.get)}), worst cosine difference {worst_cos:.2e}")
    for layer, e in by_layer.items():  # every conv runs bf16, the gray stems (one input channel) too
        assert 0 < e <= FEATURE_BOUND, f"{name} {layer}: bf16 error {e:.3e} (bound {FEATURE_BOUND})"
    assert worst_cos <= COSINE_BOUND, f"{name}: cosine difference {worst_cos:.3e} (bound {COSINE_BOUND})"


def skip_without_bf16():
    if not BF16:
        print("  skipped: this CPU lacks AVX512-BF16 (/proc/cpuinfo), so bf16 runs as float32 here")
        return True
    return False


WHY_NORMAL_ONLY = ("whole networks in both precisions (138 s of the sanitized suite); under ASan test_bf16 drives "
                   "the bf16 kernels and convs")


def test_phantom_densenet_every_block():
    if skip_without_bf16():
        return
    compare("densenet121", "--arch", "densenet121", "--layers",
            "features.conv0,denseblock1,transition1,denseblock2,transition2,denseblock3,transition3,denseblock4")


test_phantom_densenet_every_block.normal_suite_only = WHY_NORMAL_ONLY


def test_phantom_densenet_untapped_blocks_in_bf16():
    """Taps past denseblock2 only: the blocks no tap sees (1 and 2) are held in bf16 (README.md, "Precision:
    bf16", Plan::bf16_buffer), so the taps carry their rounding as well."""
    if skip_without_bf16():
        return
    compare("densenet121_deep_taps", "--arch", "densenet121", "--layers", "transition2,denseblock3,denseblock4")
    # extract's default preset, denseblock4-tail: blocks 1-3 in bf16
    compare("densenet121_default_preset", "--arch", "densenet121")


test_phantom_densenet_untapped_blocks_in_bf16.normal_suite_only = WHY_NORMAL_ONLY


def test_phantom_densenet_inflated_weights():
    """torchvision's seeded 2D DenseNet-121 (weights/export_torchvision.py) inflated by extract's default,
    i3d-mean along D, as users run their weights: the stem is then depth-factored (README.md, "Depth-factored
    convs"), its rows summed along depth and rounded to bf16 once."""
    if skip_without_bf16():
        return
    npz = os.path.join(WORK, "densenet121_2d_seed0.npz")
    if not os.path.exists(npz):
        export = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "weights", "export_torchvision.py")
        subprocess.run([sys.executable, export, "--arch", "densenet121", "--seed", "0", "--out", npz], check=True,
                       capture_output=True)
    compare("densenet121_inflated", "--weights", npz, "--layers",
            "features.conv0,denseblock1,transition1,denseblock2,transition2,denseblock3,transition3,denseblock4")


test_phantom_densenet_inflated_weights.normal_suite_only = WHY_NORMAL_ONLY


def test_phantom_resnet50_and_vgg19():
    if skip_without_bf16():
        return
    compare("resnet50", "--arch", "resnet50", "--layers", "conv1,layer1,layer2,layer3,layer4")
    compare("vgg19", "--arch", "vgg19", "--preset", "paper-vgg")


test_phantom_resnet50_and_vgg19.normal_suite_only = WHY_NORMAL_ONLY


def test_pelvis_ct():
    if skip_without_bf16():
        return
    compare("pelvis", "--ct", os.path.join(PELVIS, "ct.nii.gz"), "--mask", os.path.join(PELVIS, "femur1_hip2.nii.gz"),
            "--labels", "femur=1,hip=2", "--preset", "block-outputs")
    # and with blocks 1-3 in bf16 (denseblock4 tapped alone)
    compare("pelvis_deep_tap", "--ct", os.path.join(PELVIS, "ct.nii.gz"), "--mask",
            os.path.join(PELVIS, "femur1_hip2.nii.gz"), "--labels", "femur=1,hip=2", "--layers", "denseblock4")


test_pelvis_ct.normal_suite_only = WHY_NORMAL_ONLY


def test_amx_tile_gemm_emulated_through_the_program():
    """VOLFEAT_BF16_KERNELS=amx-emulated: the AMX tile GEMM's blocking on its software model (any CPU with
    AVX512-BF16), DenseNet-121's first block and ResNet-50's first stage, within the same bounds."""
    if skip_without_bf16():
        return
    want = "bf16 kernels: AMX tiles emulated in software"
    compare("densenet121_amx_emulated", "--arch", "densenet121", "--layers", "features.conv0,denseblock1,transition1",
            kernels="amx-emulated", want_kernels=want)
    compare("resnet50_amx_emulated", "--arch", "resnet50", "--layers", "conv1,layer1", kernels="amx-emulated",
            want_kernels=want)


test_amx_tile_gemm_emulated_through_the_program.normal_suite_only = WHY_NORMAL_ONLY


def test_bad_bf16_kernels_is_one_error_line():
    """An unknown VOLFEAT_BF16_KERNELS, or amx on a CPU without it, is refused before any work."""
    if skip_without_bf16():
        return
    out = fresh_dir(WORK, "bad_kernels")
    p = run("extract", "--out", out, "--precision", "bf16", "--quiet", kernels="tiles", expect=1)
    assert p.stderr == ("volfeat: error: VOLFEAT_BF16_KERNELS=tiles is not one of amx, avx512bf16, amx-emulated "
                        "(or unset/auto for the best here)\n"), p.stderr
    assert not os.path.exists(os.path.join(out, "run.json"))
    if not has_amx():
        p = run("extract", "--out", out, "--precision", "bf16", "--quiet", kernels="amx", expect=1)
        assert p.stderr.startswith("volfeat: error: VOLFEAT_BF16_KERNELS=amx but this CPU lacks AMX tiles"), p.stderr
        assert not os.path.exists(os.path.join(out, "run.json"))


def test_without_bf16_float32_with_a_note():
    """VOLFEAT_CPU_ISA=avx2 has no bf16 kernels on any CPU: the run goes on in float32 and says so (that the
    CPU lacks AVX512-BF16, where it does: the first reason)."""
    p, m, f, c = extract("fallback", "bf16", isa="avx2")
    _, m32, f32, c32 = extract("fallback", "float32", isa="avx2")
    assert m["precision"] == "float32", m["precision"]
    reason = "VOLFEAT_CPU_ISA=avx2 chose kernels without bf16" if BF16 else "this CPU lacks AVX512-BF16"
    assert m["precision_note"] == f"--precision bf16: {reason}; running float32", m["precision_note"]
    assert m32["precision_note"] == ""
    for k in f32:
        assert np.array_equal(f[k], f32[k]), k
    assert np.array_equal(c, c32)
    # on stderr, with --quiet too: not progress, the run differs from what was asked
    assert p.stderr == f"volfeat: --precision bf16: {reason}; running float32\n", p.stderr


test_without_bf16_float32_with_a_note.normal_suite_only = WHY_NORMAL_ONLY


def test_sweep_and_landmarks_record_the_precision():
    """The same option on the other commands: sweep.json's settings name what was asked (a resumed sweep
    must match it), landmarks_run.json what ran; sweep's values differ from float32's where bf16 runs, and
    are float32's bit for bit where it cannot."""
    want = "bf16" if BF16 else "float32"
    outs = {}
    for precision in ("float32", "bf16"):
        out = fresh_dir(WORK, f"sweep_{precision}")
        run("sweep", "--schemes", "random", "--layers", "denseblock1", "--pools", "mean", "--modes", "shared",
            "--similarities", "cosine", "--quiet", "--precision", precision, "--out", out)
        with open(os.path.join(out, "sweep.json")) as f:
            assert json.load(f)["precision"] == precision
        header, rows = csv_rows(os.path.join(out, "sweep.csv"))
        outs[precision] = [row[header.index("value")] for row in rows]  # not the timings, not finished_at
    assert len(outs["float32"]) == len(outs["bf16"]) == 3
    assert (outs["float32"] != outs["bf16"]) == BF16, outs
    lm = fresh_dir(WORK, "landmarks_bf16")
    p = run("landmarks", "--schemes", "random", "--layers", "conv0", "--patch", "8", "--radius", "2", "--quiet",
            "--precision", "bf16", "--out", lm)
    with open(os.path.join(lm, "landmarks_run.json")) as f:
        meta = json.load(f)
    assert meta["precision"] == want and (meta["precision_note"] == "") == BF16, meta
    assert (meta["precision_kernels"] or "").startswith(KERNELS if BF16 else ""), meta
    assert ("running float32" in p.stderr) != BF16, p.stderr


test_sweep_and_landmarks_record_the_precision.normal_suite_only = WHY_NORMAL_ONLY


def test_unknown_precision_is_one_error_line():
    out = fresh_dir(WORK, "unknown")
    p = run("extract", "--out", out, "--precision", "fp16", expect=1)
    assert p.stderr == "volfeat: error: --precision fp16: expected float32 (the default), bf16 or tf32\n", p.stderr
    assert not os.path.exists(os.path.join(out, "run.json"))


def test_tf32_is_refused_on_the_cpu():
    """Refused by the device, which extract makes before any work: one line, nothing written."""
    out = fresh_dir(WORK, "tf32")
    p = run("extract", "--out", out, "--precision", "tf32", expect=1)
    assert p.stderr == ("volfeat: error: --precision tf32: TF32 is the GPU's tensor-core format (volfeat-cuda); "
                        "the cpu backend runs float32 or bf16\n"), p.stderr
    for name in ("run.json", "region_report.csv", "region_slices.png"):
        assert not os.path.exists(os.path.join(out, name)), name


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    run_tests(globals())
