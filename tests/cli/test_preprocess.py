#!/usr/bin/python3
"""Issue #15: `volfeat preprocess` and extract's --denoise/--contrast against scipy and scikit-image
on the real pelvis CT (112x101x122 (D,H,W), 3 mm).

usage: test_preprocess.py VOLFEAT_BINARY WORKDIR SHARED_DIR
Every filter runs through the CLI with --normalize none, so preprocessed.nii.gz holds the filtered HU,
which is compared with the reference on the same float32 volume in (D,H,W) order:
  gaussian:S   scipy.ndimage.gaussian_filter(sigma=S/spacing, mode='nearest', truncate=4.0), |err| <= 0.05 HU
  median:R     scipy.ndimage.median_filter(size=2R+1, mode='nearest'), exactly equal
  bilateral    a direct numpy implementation of the README's definition, on a crop, |err| <= 1e-3 HU
  equalize     skimage.exposure.equalize_hist(nbins=256) mapped onto [min, max], |err| <= 1e-3 HU
  clahe[:C]    skimage.exposure.equalize_adapthist on (x - min) / (max - min), mapped back, |err| <= 1e-3 HU
The last two are exact ports; 1e-3 HU is float32 output rounding over the CT's 4,589 HU range
(2^-24 x 4,589 = 2.7e-4 per rounding, two roundings). Exit 77 (skip) without scipy/skimage or the CT.
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

BIN, WORK, SHARED = sys.argv[1], sys.argv[2], sys.argv[3]
PELVIS = os.path.join(SHARED, "data", "pelvis_ct")
CT, MASK = os.path.join(PELVIS, "ct.nii.gz"), os.path.join(PELVIS, "femur1_hip2.nii.gz")
try:
    import nibabel as nib
    import numpy as np
    from scipy import ndimage
    from skimage import exposure
except ImportError as e:
    print(f"SKIP: {e} (scripts/install_deps.sh installs python3-scipy and python3-skimage)")
    sys.exit(77)
if not os.path.exists(CT):
    print(f"SKIP: {CT} missing")
    sys.exit(77)
os.makedirs(WORK, exist_ok=True)


run = cli_runner(BIN)


def fresh(name):
    return fresh_dir(WORK, name)


def dhw(path):
    """A NIfTI as float32 (D,H,W) = (k,j,i), and its spacing in that order."""
    img = nib.load(path)
    return np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0).copy(), np.array(img.header.get_zooms()[:3])[::-1]


CT_DHW, SPACING = dhw(CT)


def preprocess(name, *args, ct=CT):
    out = fresh(name)
    run("preprocess", "--ct", ct, "--normalize", "none", "--quiet", "--out", out, *args)
    for f in ["preprocessed.nii.gz", "intensity_report.csv", "intensity.png", "run.json"]:
        assert os.path.getsize(os.path.join(out, f)) > 0, f"{f} missing"
    vol, _ = dhw(os.path.join(out, "preprocessed.nii.gz"))
    return out, vol


def report(worst, limit, what):
    print(f"  {what}: max |volfeat - reference| = {worst:.3g} HU (limit {limit})")
    assert worst <= limit, f"{what}: {worst} > {limit}"


def test_gaussian_matches_scipy():
    _, got = preprocess("gaussian", "--denoise", "gaussian:2.5")
    ref = ndimage.gaussian_filter(CT_DHW, sigma=2.5 / SPACING, mode="nearest", truncate=4.0)
    report(float(np.abs(got - ref).max()), 0.05, "gaussian:2.5")


def test_median_matches_scipy_exactly():
    for r in (1, 2):
        _, got = preprocess(f"median{r}", "--denoise", f"median:{r}")
        ref = ndimage.median_filter(CT_DHW, size=2 * r + 1, mode="nearest")
        assert np.array_equal(got, ref), f"median:{r}: {np.count_nonzero(got != ref)} voxels differ"
        print(f"  median:{r}: all {got.size} voxels equal")


def bilateral_reference(x, spacing, sigma_mm, sigma_hu):
    r = [int(np.ceil(2 * sigma_mm / s)) for s in spacing]
    p = np.pad(x.astype(np.float64), [(ri, ri) for ri in r], mode="edge")
    num = np.zeros(x.shape)
    den = np.zeros(x.shape)
    for a in range(-r[0], r[0] + 1):
        for b in range(-r[1], r[1] + 1):
            for c in range(-r[2], r[2] + 1):
                q = p[r[0] + a:r[0] + a + x.shape[0], r[1] + b:r[1] + b + x.shape[1], r[2] + c:r[2] + c + x.shape[2]]
                ws = np.exp(-((a * spacing[0]) ** 2 + (b * spacing[1]) ** 2 + (c * spacing[2]) ** 2) / (2 * sigma_mm ** 2))
                w = ws * np.exp(-(q - x) ** 2 / (2 * sigma_hu ** 2))
                num += w * q
                den += w
    return num / den


def test_bilateral_matches_numpy_on_a_crop():
    img = nib.load(CT)
    crop = os.path.join(WORK, "ct_crop.nii.gz")
    nib.save(img.slicer[30:70, 25:65, 40:72], crop)  # (i,j,k) = (W,H,D): a 32x40x40 (D,H,W) crop through the hips
    x, spacing = dhw(crop)
    _, got = preprocess("bilateral", "--denoise", "bilateral:4,80", ct=crop)
    ref = bilateral_reference(x, spacing, 4.0, 80.0)
    report(float(np.abs(got - ref).max()), 1e-3, "bilateral:4,80 on a 32x40x40 crop")


def to_hu(t):
    lo, hi = float(CT_DHW.min()), float(CT_DHW.max())
    return lo + t.astype(np.float64) * (hi - lo)


def test_equalize_matches_skimage():
    _, got = preprocess("equalize", "--contrast", "equalize")
    ref = to_hu(exposure.equalize_hist(CT_DHW, nbins=256))
    report(float(np.abs(got - ref).max()), 1e-3, "equalize")


def test_clahe_matches_skimage():
    lo, hi = float(CT_DHW.min()), float(CT_DHW.max())
    x01 = (CT_DHW.astype(np.float64) - lo) / (hi - lo)
    for spec, clip in (("clahe", 0.01), ("clahe:0.03", 0.03)):
        _, got = preprocess(spec.replace(":", "_"), "--contrast", spec)
        ref = to_hu(exposure.equalize_adapthist(x01, clip_limit=clip, nbins=256))
        report(float(np.abs(got - ref).max()), 1e-3, spec)


def test_denoise_then_contrast_is_the_order():
    _, got = preprocess("median_clahe", "--denoise", "median:1", "--contrast", "clahe")
    m = ndimage.median_filter(CT_DHW, size=3, mode="nearest")
    lo, hi = float(m.min()), float(m.max())
    ref = lo + exposure.equalize_adapthist((m.astype(np.float64) - lo) / (hi - lo)) * (hi - lo)
    report(float(np.abs(got - ref).max()), 1e-3, "median:1 then clahe")


def numpy_rows(vol, mask, regions):
    rows = {"all": vol.ravel().astype(np.float64)}
    for name, label in regions:
        rows[name] = vol[mask == label].astype(np.float64)
    return rows


def check_report_rows(csv_rows, stage, values):
    got = {r["region"]: r for r in csv_rows if r["stage"] == stage}
    assert set(got) == set(values), (sorted(got), sorted(values))
    for name, v in values.items():
        r = got[name]
        assert int(r["voxels"]) == v.size
        want = {"mean": v.mean(), "std": v.std()}
        for p in (1, 5, 25, 50, 75, 95, 99):
            want[f"p{p}"] = np.percentile(v, p)
        for col, w in want.items():
            assert abs(float(r[col]) - w) <= 1e-6 * max(1.0, abs(w)), f"{stage} {name} {col}: {r[col]} vs {w}"
        bands = {"air": v < -900, "fat": (v >= -150) & (v < -50), "soft_tissue": (v >= -50) & (v <= 100), "bone": v > 300}
        for col, sel in bands.items():
            assert int(r[col]) == int(sel.sum()), f"{stage} {name} {col}: {r[col]} vs {sel.sum()}"
        assert int(r["other"]) == v.size - sum(int(s.sum()) for s in bands.values())


def test_report_matches_numpy_on_the_written_volume():
    out, after = preprocess("report", "--mask", MASK, "--labels", "femur=1,hip=2", "--denoise", "gaussian:2",
                            "--contrast", "clahe")
    mask, _ = dhw(MASK)
    regions = [("femur", 1), ("hip", 2), ("background", 0)]
    with open(os.path.join(out, "intensity_report.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["region"] for r in rows] == ["all", "femur", "hip", "background"] * 2
    check_report_rows(rows, "before", numpy_rows(CT_DHW, mask, regions))
    check_report_rows(rows, "after", numpy_rows(after, mask, regions))
    png = open(os.path.join(out, "intensity.png"), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    run_json = json.load(open(os.path.join(out, "run.json")))
    assert run_json["config"]["preprocessing"]["order"] == ["denoise", "contrast", "normalize"]
    assert run_json["timings_s"]["denoise"] > 0 and run_json["timings_s"]["contrast"] > 0


def load_npz(path):
    z = np.load(path)
    return {k: z[k] for k in z.files}


@normal_suite_only("the filters run above; extract itself in test_cli")
def test_extract_with_denoise_equals_a_run_on_preprocessed_nii():
    # preprocess with extract's default normalisation: the file is exactly the network's input
    pre = fresh("consistency_pre")
    run("preprocess", "--ct", CT, "--denoise", "median:1", "--contrast", "equalize", "--quiet", "--out", pre)
    common = ["--mask", MASK, "--labels", "femur=1,hip=2", "--layers", "denseblock1,transition1", "--quiet"]
    a, b = fresh("consistency_extract"), fresh("consistency_on_file")
    run("extract", "--ct", CT, "--denoise", "median:1", "--contrast", "equalize", "--out", a, *common)
    run("extract", "--ct", os.path.join(pre, "preprocessed.nii.gz"), "--normalize", "none", "--out", b, *common)
    fa, fb = load_npz(os.path.join(a, "features.npz")), load_npz(os.path.join(b, "features.npz"))
    assert sorted(fa) == sorted(fb) and len(fa) == 6
    worst = max(float(np.abs(fa[k] - fb[k]).max() / np.abs(fb[k]).max()) for k in fa)
    print(f"  extract --denoise median:1 --contrast equalize vs extract on preprocessed.nii.gz: max rel diff {worst:.3g}")
    assert worst <= 1e-6
    cfg = json.load(open(os.path.join(a, "run.json")))["config"]
    assert cfg["preprocessing"] == {"order": ["denoise", "contrast", "normalize"], "denoise": "median:1",
                                    "contrast": "equalize", "normalize": "window:400,2000"}
    assert cfg["denoise"] == "median:1" and cfg["contrast"] == "equalize"
    timings = json.load(open(os.path.join(a, "run.json")))["timings_s"]
    assert "denoise" in timings and "contrast" in timings
    # without the filters the features differ: the check above is not vacuous
    c = fresh("consistency_plain")
    run("extract", "--ct", CT, "--out", c, *common)
    fc = load_npz(os.path.join(c, "features.npz"))
    assert max(float(np.abs(fa[k] - fc[k]).max()) for k in fa) > 1e-3


def test_bad_options_fail_with_one_line_and_no_output():
    cases = [
        (["preprocess", "--ct", CT, "--denoise", "wiener:2"], r"--denoise 'wiener:2': unknown denoiser"),
        (["preprocess", "--ct", CT, "--denoise", "gaussian:-1"], r"--denoise 'gaussian:-1': -1 must be a finite number > 0"),
        (["preprocess", "--ct", CT, "--contrast", "clahe:3"], r"--contrast 'clahe:3': the clip limit must be in \[0, 1\]"),
        (["extract", "--ct", CT, "--mask", MASK, "--labels", "femur=1,hip=2", "--denoise", "median:0"],
         r"--denoise 'median:0': 0 must be a finite number > 0"),
    ]
    import re
    for args, regex in cases:
        out = fresh("bad_option")
        p = subprocess.run([BIN, *args, "--out", out], capture_output=True, text=True)
        errors = [l for l in p.stderr.splitlines() if l.startswith("volfeat: error: ")]
        assert p.returncode == 1, (args, p.returncode, p.stderr)
        assert len(errors) == 1 and re.search(regex, errors[0]), (args, p.stderr)
        assert not os.path.exists(out), f"{args}: created {out}"


run_tests(dict(globals()))
