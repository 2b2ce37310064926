#!/usr/bin/env python3
"""End-to-end checks of the volfeat program: extract on the built-in phantom, convert, phantom, info.

usage: test_cli.py VOLFEAT_BINARY WORKDIR TORCH_REF_DIR
Prints one line per check and a closing 'N passed, M failed'; exits non-zero on any failure.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cli_runner, fresh_dir, normal_suite_only, run_tests  # noqa: E402

BIN, WORK, TORCH = sys.argv[1], sys.argv[2], sys.argv[3]
OUTPUTS = ["similarities.csv", "similarities_long.csv", "features.npz", "run.json", "region_report.csv",
           "region_slices.png"]


run = cli_runner(BIN)


def fresh(name):
    return fresh_dir(WORK, name)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_extract_on_phantom_writes_every_output():
    out = fresh("phantom_extract")
    p = run("extract", "--layers", "denseblock1,transition1", "--out", out)
    check_progress_lines(p.stderr)
    for f in OUTPUTS:
        assert os.path.getsize(os.path.join(out, f)) > 0, f"{f} missing or empty"
    rows = read_csv(os.path.join(out, "similarities.csv"))
    assert rows[0] == ["pair", "denseblock1", "transition1"], rows[0]
    assert [r[0] for r in rows[1:]] == ["femur-tibia", "femur-background", "tibia-background"]
    for r in rows[1:]:
        for v in r[1:]:
            assert -1.0 <= float(v) <= 1.0 and len(v) > 10, f"value {v} not a full-precision cosine"
    run_json = json.load(open(os.path.join(out, "run.json")))
    assert run_json["forward_passes"] == 1
    assert run_json["weights"]["kind"] == "random" and run_json["weights"]["pretrained"] is False
    # the random network's generator is recorded, so numbers from before and after a change can be told apart
    assert run_json["weights"]["meta"]["generator"] == "splitmix64-ziggurat-1", run_json["weights"]["meta"]
    assert run_json["inputs"]["phantom"] is True
    assert [l["channels"] for l in run_json["layers"]] == [256, 128]
    names = zipfile.ZipFile(os.path.join(out, "features.npz")).namelist()
    assert "femur/features.denseblock1.npy" in names and len(names) == 6, names
    long_rows = read_csv(os.path.join(out, "similarities_long.csv"))
    assert len(long_rows) == 1 + 3 * 2 and long_rows[0][:6] == ["pair", "region_a", "region_b", "layer", "similarity", "value"]
    report = read_csv(os.path.join(out, "region_report.csv"))
    assert [r[0] for r in report[1:]] == ["femur", "tibia", "background"]
    assert sum(int(r[2]) for r in report[1:]) == 128 * 160 * 160
    assert open(os.path.join(out, "region_slices.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "random" in p.stdout and "femur-tibia" in p.stdout
    assert not [f for f in os.listdir(out) if ".tmp" in f], "temporary files left behind"


def test_mask_input_mode_runs_one_pass_per_region():
    # A small phantom: the check counts passes, and the built-in 128x160x160 one took 28 s under ASan here
    # (three stem passes; AMD EPYC Zen 3, session 19). test_pipeline_torch checks mask-input's values.
    ph = fresh("mask_input_phantom")
    run("phantom", "--dims", "32,48,48", "--out", ph)
    out = fresh("phantom_mask_input")
    run("extract", "--ct", os.path.join(ph, "knee_ct.nii.gz"), "--mask", os.path.join(ph, "knee_labels.nii.gz"),
        "--mode", "mask-input", "--layers", "conv0", "--quiet", "--out", out)
    assert json.load(open(os.path.join(out, "run.json")))["forward_passes"] == 3


def test_convert_then_extract_equals_inflate_on_load():
    src = os.path.join(TORCH, "dn121_2d.npz")
    if not os.path.exists(src):
        print(f"  SKIP: {src} missing (torch reference step did not run)")
        return
    w3 = os.path.join(WORK, "dn121_3d_centre.npz")
    p = run("convert", "--in", src, "--inflate", "centre", "--axis", "H", "--stem", "mean", "--out", w3)
    assert "seeded-init" in p.stdout and "centre" in p.stdout, p.stdout
    a, b = fresh("extract_2d"), fresh("extract_3d")
    common = ["--layers", "denseblock2", "--quiet", "--resample", "2"]
    run("extract", "--weights", src, "--inflate", "centre", "--axis", "H", "--stem", "mean", "--out", a, *common)
    run("extract", "--weights", w3, "--out", b, *common)
    sa, sb = (open(os.path.join(d, "similarities.csv")).read() for d in (a, b))
    assert sa == sb, f"converted weights give different similarities:\n{sa}\n{sb}"
    meta = json.load(open(os.path.join(b, "run.json")))["weights"]["meta"]
    assert (meta["scheme"], meta["axis"], meta["stem"]) == ("centre", "H", "mean")
    # converting a 3D file again is refused
    p = run("convert", "--in", w3, "--out", os.path.join(WORK, "again.npz"), expect=1)
    assert "already holds 3D conv weights" in p.stderr and w3 in p.stderr


def test_phantom_and_info():
    out = fresh("phantom_files")
    run("phantom", "--out", out)
    p = run("info", os.path.join(out, "knee_labels.nii.gz"))
    assert "128 x 160 x 160 voxels" in p.stdout, p.stdout
    assert "1 (" in p.stdout and "2 (" in p.stdout, p.stdout
    q = run("info", os.path.join(out, "knee_ct.nii.gz"))
    assert "float32" in q.stdout and "RAS" in q.stdout, q.stdout


@normal_suite_only("test_region_report_matches_numpy reads written NIfTIs through extract")
def test_extract_on_written_phantom_matches_built_in():
    files, a, b = fresh("phantom_files2"), fresh("builtin"), fresh("from_files")
    run("phantom", "--out", files)
    run("extract", "--layers", "pool0", "--quiet", "--out", a)
    run("extract", "--ct", os.path.join(files, "knee_ct.nii.gz"), "--mask", os.path.join(files, "knee_labels.nii.gz"),
        "--labels", "femur=1,tibia=2", "--layers", "pool0", "--quiet", "--out", b)
    assert open(os.path.join(a, "similarities.csv")).read() == open(os.path.join(b, "similarities.csv")).read()


def check_progress_lines(stderr):
    """Progress as plain lines (stderr is not a terminal here): their form, rising percentages per stage, each
    ETA non-negative. The run here starts at 7 %, so the 1 % line that once said 'ETA -1.0s' is test_progress's."""
    import re
    line_re = re.compile(r"volfeat: (.+?) +(\d+)% after (\d+\.\d)s(?:, ETA (\S+)s)?(?: (\S+))?$")
    seen = {}
    for line in stderr.splitlines():
        if "% after " not in line:
            continue
        m = line_re.match(line)
        assert m, f"progress line not in the expected form: {line!r}"
        stage, pct, eta = m.group(1), int(m.group(2)), m.group(4)
        assert 0 < pct < 100, line
        assert eta is None or float(eta) >= 0, line
        assert pct > seen.get(stage, 0), f"percentages do not rise in {stage!r}: {line!r}"
        seen[stage] = pct
    assert any(s.startswith("forward pass") for s in seen), f"no forward-pass progress in:\n{stderr}"


def test_region_report_matches_numpy():
    import nibabel as nib
    import numpy as np
    files, out = fresh("phantom_files3"), fresh("report")
    run("phantom", "--out", files)
    ct_path, mask_path = os.path.join(files, "knee_ct.nii.gz"), os.path.join(files, "knee_labels.nii.gz")
    run("extract", "--ct", ct_path, "--mask", mask_path, "--labels", "femur=1,tibia=2", "--layers", "conv0", "--quiet",
        "--out", out)
    ct = np.asarray(nib.load(ct_path).dataobj, dtype=np.float64)
    mask = np.asarray(nib.load(mask_path).dataobj)
    rows = read_csv(os.path.join(out, "region_report.csv"))
    assert rows[0][2:] == ["voxels", "volume_mm3", "fraction_of_volume", "hu_mean", "hu_std", "hu_p5", "hu_p50", "hu_p95"]
    for name, label in [("femur", 1), ("tibia", 2), ("background", 0)]:
        row = next(r for r in rows[1:] if r[0] == name)
        hu = ct[mask == label]
        assert int(row[2]) == hu.size, (name, row[2], hu.size)
        want = [hu.mean(), hu.std(), *np.percentile(hu, [5, 50, 95])]
        got = [float(x) for x in row[5:10]]
        for g, w in zip(got, want):
            assert abs(g - w) <= 1e-7 * max(1.0, abs(w)), (name, got, want)


def test_phantom_dims_and_int16_sample_the_same_anatomy():
    import nibabel as nib
    import numpy as np
    a, b = fresh("phantom_64_f32"), fresh("phantom_64_i16")
    run("phantom", "--dims", "64,80,80", "--out", a)
    run("phantom", "--dims", "64,80,80", "--ct-dtype", "int16", "--out", b)
    p = run("info", os.path.join(b, "knee_ct.nii.gz"))
    assert "64 x 80 x 80 voxels, 2 x 2 x 2 mm" in p.stdout and "int16" in p.stdout, p.stdout
    f32 = np.asarray(nib.load(os.path.join(a, "knee_ct.nii.gz")).dataobj)
    i16 = nib.load(os.path.join(b, "knee_ct.nii.gz"))
    assert i16.get_data_dtype() == np.int16
    rounded = np.sign(f32) * np.floor(np.abs(f32.astype(np.float64)) + 0.5)  # half away from zero, as lround
    assert np.array_equal(np.asarray(i16.dataobj), rounded), "int16 CT is not the rounded float32 CT"
    # The same bones in mm: each label's volume within 6% of the default 1 mm phantom's.
    half = np.asarray(nib.load(os.path.join(a, "knee_labels.nii.gz")).dataobj)
    full_dir = fresh("phantom_default_dims")
    run("phantom", "--out", full_dir)
    full = np.asarray(nib.load(os.path.join(full_dir, "knee_labels.nii.gz")).dataobj)
    for label in (1, 2):
        v_half, v_full = 8.0 * np.count_nonzero(half == label), 1.0 * np.count_nonzero(full == label)
        assert abs(v_half - v_full) <= 0.06 * v_full, (label, v_half, v_full)
    run("phantom", "--dims", "0,80,80", "--out", fresh("phantom_bad_dims"), expect=1)


def test_unknown_layer_lists_close_matches_and_writes_nothing():
    out = fresh("bad_layer")
    p = run("extract", "--layers", "denseblok4.denselayer16.conv2", "--quiet", "--out", out, expect=1)
    assert "unknown layer 'denseblok4.denselayer16.conv2'" in p.stderr, p.stderr
    assert "denseblock4.denselayer16.conv2" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not os.path.exists(os.path.join(out, "run.json"))


def test_huge_pages_off_changes_no_number_and_a_bad_value_is_one_line():
    """VOLFEAT_HUGE_PAGES (core/host_blocks.hpp) decides which pages memory comes in, never a value."""
    features = {}
    for value in ("on", "off"):
        out = fresh("huge_pages_" + value)
        run("extract", "--layers", "denseblock1,transition1", "--quiet", "--out", out, env={"VOLFEAT_HUGE_PAGES": value})
        with zipfile.ZipFile(os.path.join(out, "features.npz")) as z:
            features[value] = {n: z.read(n) for n in z.namelist()}
        rj = json.load(open(os.path.join(out, "run.json")))
        assert rj["huge_pages"] is (value == "on") and rj["huge_pages_mode"] == value
        assert "huge_pages_reason" not in rj
    assert len(features["on"]) == 6 and features["on"] == features["off"], "features differ with VOLFEAT_HUGE_PAGES=off"
    # auto (the default): off exactly where the machine reports free pages to a hypervisor, and run.json says why
    out = fresh("huge_pages_auto")
    run("extract", "--layers", "denseblock1", "--quiet", "--out", out, env={"VOLFEAT_HUGE_PAGES": "auto"})
    rj = json.load(open(os.path.join(out, "run.json")))
    assert rj["huge_pages_mode"] == "auto", rj
    assert rj["huge_pages"] is ("fresh huge pages fault in on the host" not in rj["huge_pages_reason"]), rj
    out = fresh("huge_pages_bad")
    p = run("extract", "--quiet", "--out", out, expect=1, env={"VOLFEAT_HUGE_PAGES": "maybe"})
    assert p.stderr == "volfeat: error: VOLFEAT_HUGE_PAGES=maybe: expected auto (the default), on or off\n", p.stderr
    assert not os.path.exists(out), "a refused run left its output directory"


@normal_suite_only("test_arch_torch runs VGG and ResNet's forwards under the sanitizers")
def test_vgg_and_resnet_extract_with_their_presets():
    # Small phantoms keep VGG-19's full-resolution convs cheap; each family's default preset and named layers.
    ph = fresh("small_phantom")
    run("phantom", "--dims", "32,48,48", "--out", ph)
    common = ["--ct", os.path.join(ph, "knee_ct.nii.gz"), "--mask", os.path.join(ph, "knee_labels.nii.gz"), "--quiet"]
    for arch, preset_cols, named in (("vgg19", ["conv2_2", "conv4_2", "conv5_4"], ("features.34", "features.34")),
                                     ("resnet18", ["layer1", "layer3", "layer4"], ("layer3.1.conv2", "layer3.1.conv2"))):
        out = fresh(arch + "_extract")
        run("extract", "--arch", arch, *common, "--out", out)
        rows = read_csv(os.path.join(out, "similarities.csv"))
        run_json = json.load(open(os.path.join(out, "run.json")))
        assert run_json["config"]["arch"] == arch and run_json["config"]["preset"].startswith("paper-"), run_json["config"]
        want = [{"conv2_2": "features.8", "conv4_2": "features.22", "conv5_4": "features.35"}.get(c, c) for c in preset_cols]
        assert rows[0][1:] == want, rows[0]
        out2 = fresh(arch + "_named")
        run("extract", "--arch", arch, *common, "--layers", named[0], "--out", out2)
        assert read_csv(os.path.join(out2, "similarities.csv"))[0][1:] == [named[1]]
    # The default DenseNet preset names no VGG layer: a clear error, nothing written.
    out = fresh("vgg_wrong_layer")
    p = run("extract", "--arch", "vgg11", *common, "--layers", "denseblock2", "--out", out, expect=1)
    assert "unknown layer 'denseblock2'" in p.stderr and "vgg11" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(out, "run.json"))


def main():
    os.makedirs(WORK, exist_ok=True)
    run_tests(globals())


if __name__ == "__main__":
    main()
