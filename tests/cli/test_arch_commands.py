#!/usr/bin/env python3
"""Every command with VGG and ResNet (issue #13: "every inflation scheme, stem rule, pooling, mode and command
works with each architecture"), on plain torchvision exports (tests/torch/arch_reference.py: vgg11_bn and
resnet18, no volfeat metadata) and a 32x48x48 phantom:

* sweep: all 10 inflation schemes x every pooling in shared mode, two schemes in mask-input mode, one CSV with
  exactly those rows, every value finite, cosines in [-1, 1]; the orientation networks really differ;
* extract: each stem rule (sum, mean, rgb with --normalize imagenet) runs and is recorded in run.json, and the
  extract rows equal the sweep's rows for the same settings;
* convert: convert then extract is bit-identical to inflating on load (features.npz and similarities.csv);
* report (the reports' presets with --layers naming ResNet's) and landmarks (two architectures in one grid).

usage: test_arch_commands.py VOLFEAT_BINARY WORKDIR ARCH_REF_DIR
"""
import json
import math
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cli_runner, csv_rows, fresh_dir, normal_suite_only, run_tests  # noqa: E402

BIN, WORK, REFS = sys.argv[1], sys.argv[2], sys.argv[3]
run = cli_runner(BIN)
ARCHS = {"vgg11_bn": "features.8", "resnet18": "layer2.1.conv2"}  # a conv each (no ReLU zeros), a few voxels wide
SCHEMES = ["acs", "centre", "i3d-mean", "orientation-D", "orientation-H", "orientation-W", "orientations-concat",
           "orientations-mean", "random", "shuffled"]
POOLS = ["mean", "max", "gem:3", "mean+std", "topk:0.1", "percentile:0.9", "attention:1"]
PAIRS = 3  # femur, tibia, background


def phantom():
    d = os.path.join(WORK, "phantom")
    if not os.path.exists(os.path.join(d, "knee_labels.nii.gz")):
        run("phantom", "--dims", "32,48,48", "--out", d)
    return ["--ct", os.path.join(d, "knee_ct.nii.gz"), "--mask", os.path.join(d, "knee_labels.nii.gz"), "--quiet"]


def weights(arch):
    return os.path.join(REFS, f"{arch}_2d.npz")


@normal_suite_only("test_arch_torch runs VGG and ResNet's forwards; test_sweep the sweep")
def test_sweep_every_scheme_mode_and_pooling():
    for arch, layer in ARCHS.items():
        # Every scheme in shared mode (one pass each; three for the orientation schemes), two in mask-input mode
        # (a pass per region): the same DIR, so sweep.csv holds both products.
        out = fresh_dir(WORK, f"sweep_{arch}")
        run("sweep", *phantom(), "--weights", weights(arch), "--layers", layer, "--schemes", ",".join(SCHEMES),
            "--modes", "shared", "--pools", ",".join(POOLS), "--out", out)
        run("sweep", *phantom(), "--weights", weights(arch), "--layers", layer, "--schemes", "i3d-mean,random",
            "--modes", "mask-input", "--pools", ",".join(POOLS), "--out", out)
        header, rows = csv_rows(os.path.join(out, "sweep.csv"))
        col = {name: i for i, name in enumerate(header)}
        assert len(rows) == (len(SCHEMES) + 2) * len(POOLS) * PAIRS, (arch, len(rows))
        assert {r[col["scheme"]] for r in rows} == set(SCHEMES)
        assert {r[col["mode"]] for r in rows} == {"shared", "mask-input"}
        for r in rows:
            v = float(r[col["value"]])
            assert math.isfinite(v) and -1 - 1e-6 <= v <= 1 + 1e-6, (arch, r)
        # the three orientations are three different networks
        by = {(r[col["scheme"]], r[col["mode"]], r[col["pool"]], r[col["pair"]]): float(r[col["value"]]) for r in rows}
        pair = rows[0][col["pair"]]
        vals = [by[(s, "shared", "mean", pair)] for s in ("orientation-D", "orientation-H", "orientation-W")]
        assert len(set(vals)) == 3, (arch, vals)


@normal_suite_only("reads the skipped sweep check's output")
def test_extract_every_stem_and_equal_to_the_sweep():
    for arch, layer in ARCHS.items():
        sweep = os.path.join(WORK, f"sweep_{arch}")
        header, rows = csv_rows(os.path.join(sweep, "sweep.csv"))
        col = {name: i for i, name in enumerate(header)}
        for stem, extra in (("sum", []), ("mean", []), ("rgb", ["--normalize", "imagenet"])):
            out = fresh_dir(WORK, f"extract_{arch}_{stem}")
            run("extract", *phantom(), "--weights", weights(arch), "--layers", layer, "--stem", stem,
                "--pool", "max", "--mode", "mask-input", *extra, "--out", out)
            cfg = json.load(open(os.path.join(out, "run.json")))["config"]
            assert cfg["inflate"]["stem"] == stem and cfg["arch"] == arch, cfg
            lh, sims = csv_rows(os.path.join(out, "similarities_long.csv"))
            lc = {name: i for i, name in enumerate(lh)}
            assert sims and all(math.isfinite(float(r[lc["value"]])) for r in sims), (lh, sims)
            if stem == "sum":  # the sweep ran with the default stem
                want = sorted((r[col["pair"]], r[col["value"]]) for r in rows if r[col["scheme"]] == "i3d-mean"
                              and r[col["mode"]] == "mask-input" and r[col["pool"]] == "max")
                got = sorted((r[lc["pair"]], r[lc["value"]]) for r in sims)
                assert [p for p, _ in got] == [p for p, _ in want], (got, want)
                for (_, a), (_, b) in zip(got, want):
                    assert abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b))), (arch, got, want)


def test_convert_then_extract_equals_inflate_on_load():
    for arch, layer in ARCHS.items():
        w3 = os.path.join(fresh_dir(WORK, f"convert_{arch}"), "w3.npz")
        os.makedirs(os.path.dirname(w3))
        run("convert", "--in", weights(arch), "--inflate", "acs", "--stem", "mean", "--out", w3)
        a, b = fresh_dir(WORK, f"onload_{arch}"), fresh_dir(WORK, f"converted_{arch}")
        run("extract", *phantom(), "--weights", weights(arch), "--inflate", "acs", "--stem", "mean", "--layers", layer,
            "--out", a)
        run("extract", *phantom(), "--weights", w3, "--layers", layer, "--out", b)
        for f in ("similarities.csv", "features.npz"):
            assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), (arch, f)


def test_report_and_landmarks_with_both_families():
    out = fresh_dir(WORK, "report_resnet18")
    # The reports' presets name DenseNet layers; with another architecture --layers replaces them.
    run("report", *phantom(), "--weights", weights("resnet18"), "--preset", "block-outputs", "--layers",
        "layer1,layer2,layer3,layer4", "--out", out)
    header, rows = csv_rows(os.path.join(out, "similarities.csv"))
    assert header[1:] == ["layer1", "layer2", "layer3", "layer4"] and len(rows) == PAIRS, (header, rows)
    lm = fresh_dir(WORK, "landmarks")
    run("landmarks", "--arch", "vgg11_bn,resnet18", "--schemes", "random,i3d-mean", "--layers", "shallow",
        "--patch", "12", "--radius", "4", "--stride", "3", "--max-landmarks", "4", "--quiet", "--out", lm)
    header, rows = csv_rows(os.path.join(lm, "landmarks_summary.csv"))
    col = {name: i for i, name in enumerate(header)}
    assert {(r[col["arch"]], r[col["scheme"]]) for r in rows} == {
        (a, s) for a in ("vgg11_bn", "resnet18") for s in ("random", "i3d-mean")}, rows


def main():
    os.makedirs(WORK, exist_ok=True)
    run_tests(globals())


if __name__ == "__main__":
    main()
