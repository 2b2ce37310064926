#!/usr/bin/env python3
"""Issue #15: `--ct DIR` (a DICOM series) in every command gives what the NIfTI of the same voxels gives.

The series come from tests/fixtures/make_dicom_fixtures.py (the pelvis CT written slice by slice by pydicom,
shuffled names, slope/intercept, an oblique one and its JPEG 2000 copy). Checks: extract on a DICOM directory
writes the NIfTI pair's features.npz and similarities.csv byte for byte; a DICOM series against a mask that nibabel
wrote in the flipped row order gives the NIfTI pair's features too (mask reorientation); a directory of two series
needs --series, which picks one; info, report-style sweep manifests, landmarks and preprocess read directories.

usage: test_dicom.py VOLFEAT_BINARY FIXTURE_DIR WORKDIR SHARED_DIR
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

BIN, FX, WORK, SHARED = (os.path.abspath(a) for a in sys.argv[1:5])
PELVIS = os.path.join(SHARED, "data", "pelvis_ct")
CT, MASK, LABELS = os.path.join(PELVIS, "ct.nii.gz"), os.path.join(PELVIS, "femur1_hip2.nii.gz"), "femur=1,hip=2"
LAYERS = "conv0,pool0"  # the stem sees every voxel: any misplaced or mis-scaled one changes the vectors


run = cli_runner(BIN)


def fresh(name):
    return fresh_dir(WORK, name)


def extract(ct, mask, name, *extra, expect=0):
    out = fresh(name)
    p = run("extract", "--ct", ct, "--mask", mask, "--labels", LABELS, "--layers", LAYERS, "--out", out, *extra,
            expect=expect)
    return out, p


def npz_members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in sorted(z.namelist())}


def same_outputs(a, b, what):
    fa, fb = npz_members(os.path.join(a, "features.npz")), npz_members(os.path.join(b, "features.npz"))
    assert len(fa) == 3 * len(LAYERS.split(",")), sorted(fa)
    assert fa == fb, f"{what}: features.npz differs: {[k for k in fa if fa[k] != fb.get(k)]}"
    f = "similarities.csv"
    assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f"{what}: {f} differs"
    # region_report.csv: voxel counts and HU statistics exactly; volumes in mm^3 to 1e-6 relative, because an
    # oblique NIfTI states its spacing in pixdim (3 mm) while the DICOM spacing is the length of the float32
    # affine's columns the series was made from (3 mm - 3e-8).
    ra, rb = list(csv.reader(open(os.path.join(a, "region_report.csv")))), list(csv.reader(open(os.path.join(b, "region_report.csv"))))
    assert len(ra) == len(rb) and ra[0] == rb[0], (ra, rb)
    vol = [i for i, c in enumerate(ra[0]) if "mm" in c]
    assert vol, ra[0]
    for x, y in zip(ra[1:], rb[1:]):
        for i, (u, v) in enumerate(zip(x, y)):
            if i in vol:
                assert abs(float(u) - float(v)) <= 1e-6 * abs(float(u)), f"{what}: region_report {ra[0][i]} {u} vs {v}"
            else:
                assert u == v, f"{what}: region_report {ra[0][i]} {u} vs {v}"


_runs = {}


def nifti_run(name, ct, mask):
    if name not in _runs:
        _runs[name] = extract(ct, mask, name)[0]
    return _runs[name]


def test_oblique_jpeg2000_series_equals_its_nifti():
    ref = nifti_run("nifti_oblique", os.path.join(FX, "ct_oblique.nii.gz"), os.path.join(FX, "mask_oblique.nii.gz"))
    out, p = extract(os.path.join(FX, "oblique_j2k"), os.path.join(FX, "mask_oblique.nii.gz"), "dicom_oblique_j2k")
    same_outputs(ref, out, "oblique_j2k")
    assert "DICOM series" in p.stderr and "112 slices; JPEG 2000 Lossless" in p.stderr, p.stderr
    ct = json.load(open(os.path.join(out, "run.json")))["inputs"]["ct"]
    assert ct["path"] == os.path.join(FX, "oblique_j2k") and len(ct["sha256"]) == 64, ct


@normal_suite_only("test_oblique_jpeg2000_series_equals_its_nifti reads a series; test_cli_reorient the mask remap")
def test_axial_series_with_flipped_row_mask_equals_the_nifti_pair():
    ref = nifti_run("nifti_axial", CT, MASK)
    out, p = extract(os.path.join(FX, "axial"), os.path.join(FX, "mask_flipped_rows.nii.gz"), "dicom_axial_flipped")
    same_outputs(ref, out, "axial + flipped-row mask")
    rec = json.load(open(os.path.join(out, "run.json")))["inputs"]["mask_reorientation"]
    assert rec and rec["flip"] == [False, True, False] and rec["permutation"] == [0, 1, 2], rec
    assert "mask reoriented" in p.stderr, p.stderr


@normal_suite_only("a second read of the same series")
def test_series_hash_is_stable_across_runs_and_names():
    a = fresh("renamed_series")
    src = os.path.join(FX, "axial")
    os.makedirs(a)
    for n, f in enumerate(sorted(os.listdir(src))):
        shutil.copy(os.path.join(src, f), os.path.join(a, f"IM{n:04d}"))
    out, _ = extract(a, MASK, "dicom_renamed")
    first = os.path.join(WORK, "dicom_axial_flipped", "run.json")
    if not os.path.exists(first):
        test_axial_series_with_flipped_row_mask_equals_the_nifti_pair()
    h1 = json.load(open(first))["inputs"]["ct"]["sha256"]
    h2 = json.load(open(os.path.join(out, "run.json")))["inputs"]["ct"]["sha256"]
    assert h1 == h2, (h1, h2)
    same_outputs(nifti_run("nifti_axial", CT, MASK), out, "renamed series")


_two_series_made = []


def two_series_dir():
    """Both fixture series in one directory, made afresh once per run: the fixture step writes new UIDs
    each time, so a directory left by an earlier run would hold other series."""
    d = os.path.join(WORK, "two_series")
    if not _two_series_made:
        d = fresh("two_series")
        os.makedirs(d)
        _two_series_made.append(d)
        for name in ["axial", "oblique"]:
            for f in os.listdir(os.path.join(FX, name)):
                shutil.copy(os.path.join(FX, name, f), os.path.join(d, name + "_" + f))
    uids = dict(line.split()[:2] for line in open(os.path.join(FX, "expected.txt")))
    return d, uids


def test_two_series_need_series_and_it_picks_one():
    d, uids = two_series_dir()
    out, p = extract(d, MASK, "two_series_refused", expect=1)
    errors = [l for l in p.stderr.splitlines() if l.startswith("volfeat: error:")]
    assert len(errors) == 1, p.stderr
    for part in [d, "holds 2 series; pick one with --series UID", uids["axial"], "'pelvis axial', CT, 112 files",
                 uids["oblique"], "'pelvis oblique', CT, 112 files"]:
        assert part in errors[0], f"'{part}' not in {errors[0]}"
    assert not os.path.exists(out) or not os.listdir(out), os.listdir(out)
    out, _ = extract(d, MASK, "two_series_axial", "--series", uids["axial"])
    same_outputs(nifti_run("nifti_axial", CT, MASK), out, "--series axial")


def test_info_on_directories():
    p = run("info", os.path.join(FX, "oblique_rle"))
    assert "DICOM series" in p.stdout and "RLE Lossless" in p.stdout and "112 x 101 x 122 voxels" in p.stdout, p.stdout
    assert "values     -1207 .. 3382 HU" in p.stdout, p.stdout
    d, uids = two_series_dir()
    p = run("info", d)
    assert "2 DICOM series" in p.stdout and uids["axial"] in p.stdout and uids["oblique"] in p.stdout, p.stdout
    p = run("info", d, "--series", uids["oblique"])
    assert "pelvis oblique" in p.stdout and "112 slices" in p.stdout, p.stdout


def loaded_libraries(*args, env=None):
    """The shared objects the dynamic loader opened for `volfeat ARGS` (LD_DEBUG=files), and the run."""
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env={**os.environ, "LD_DEBUG": "files", **(env or {})})
    return [line.split("file=", 1)[1].split()[0] for line in p.stderr.splitlines() if "file=" in line], p


def test_gdcm_is_loaded_only_for_a_directory():
    # GDCM lives in libvolfeat_dicom.so, opened on the first DICOM read (io/dicom_module.hpp): a NIfTI run
    # never loads it (its dictionaries cost every process 35 ms at start-up), a directory does.
    libs, p = loaded_libraries("info", CT)
    assert p.returncode == 0 and "grid" in p.stdout, p.stderr[-2000:]
    assert not [l for l in libs if "gdcm" in l or "volfeat_dicom" in l], libs
    libs, p = loaded_libraries("info", os.path.join(FX, "axial"))
    assert p.returncode == 0 and "DICOM series" in p.stdout, p.stderr[-2000:]
    assert [l for l in libs if "libvolfeat_dicom" in l] and [l for l in libs if "libgdcmMSFF" in l], libs


def test_a_missing_dicom_module_is_one_clear_line():
    d = os.path.join(FX, "axial")
    out = fresh("missing_module")
    p = subprocess.run([BIN, "extract", "--ct", d, "--mask", MASK, "--labels", LABELS, "--layers", LAYERS, "--out", out],
                       capture_output=True, text=True, env={**os.environ, "VOLFEAT_DICOM_MODULE_PATH": "/nonexistent/libvolfeat_dicom.so"})
    assert p.returncode != 0, p.stdout
    errors = [l for l in p.stderr.splitlines() if "error" in l.lower()]
    assert len(errors) == 1, p.stderr
    for part in (d, "DICOM reader could not be loaded", "/nonexistent/libvolfeat_dicom.so"):
        assert part in errors[0], f"'{part}' not in {errors[0]}"
    assert not os.path.exists(os.path.join(out, "run.json")), os.listdir(out)


@normal_suite_only("the same series reader as test_oblique_jpeg2000_series_equals_its_nifti")
def test_sweep_manifest_ct_column_takes_a_directory():
    d, uids = two_series_dir()
    out = fresh("sweep_manifest")
    os.makedirs(out)
    manifest = os.path.join(out, "manifest.csv")
    with open(manifest, "w") as f:
        f.write("ct,mask,labels,id,series\n")
        f.write(f"{os.path.join(FX, 'axial')},{MASK},\"{LABELS}\",dicom,\n")
        f.write(f"{d},{MASK},\"{LABELS}\",picked,{uids['axial']}\n")
        f.write(f"{CT},{MASK},\"{LABELS}\",nifti,\n")
    run("sweep", "--manifest", manifest, "--schemes", "random", "--layers", "conv0", "--pools", "mean", "--modes",
        "shared", "--similarities", "cosine", "--out", os.path.join(out, "run"))
    rows = list(csv.DictReader(open(os.path.join(out, "run", "sweep.csv"))))
    values = {}
    for r in rows:
        values.setdefault(r["volume"] if "volume" in r else r["id"], []).append(
            {k: v for k, v in r.items() if k not in ("volume", "id", "ct", "forward_seconds", "finished_at")})
    assert set(values) == {"dicom", "picked", "nifti"}, set(values)
    assert values["dicom"] == values["nifti"] == values["picked"], values


def test_landmarks_reads_a_directory():
    outs = {}
    for name, ct in [("nifti", CT), ("dicom", os.path.join(FX, "axial"))]:
        out = fresh("landmarks_" + name)
        run("landmarks", "--ct", ct, "--mask", MASK, "--labels", LABELS, "--schemes", "i3d-mean", "--layers", "conv0",
            "--patch", "12", "--max-landmarks", "2", "--radius", "6", "--stride", "3", "--out", out)
        outs[name] = open(os.path.join(out, "landmarks.csv")).read()
    assert outs["nifti"] == outs["dicom"] and outs["nifti"], "landmarks.csv differs between the NIfTI and DICOM CT"


def test_preprocess_reads_a_directory():
    """preprocess --ct DIR: the NIfTI's report and preprocessed voxels; run.json hashes the series; --series picks."""
    import nibabel as nib
    import numpy as np
    outs = {}
    d, uids = two_series_dir()
    for name, ct, extra in [("nifti", CT, []), ("dicom", os.path.join(FX, "axial"), []),
                            ("picked", d, ["--series", uids["axial"]])]:
        out = fresh("preprocess_" + name)
        run("preprocess", "--ct", ct, *extra, "--mask", MASK, "--labels", LABELS, "--denoise", "gaussian:2",
            "--contrast", "clahe", "--quiet", "--out", out)
        outs[name] = out
    report = {k: open(os.path.join(o, "intensity_report.csv")).read() for k, o in outs.items()}
    assert report["nifti"] == report["dicom"] == report["picked"] and report["nifti"], "intensity_report.csv differs"
    images = {k: nib.load(os.path.join(o, "preprocessed.nii.gz")) for k, o in outs.items()}
    for k in ["dicom", "picked"]:
        assert np.array_equal(np.asarray(images[k].dataobj), np.asarray(images["nifti"].dataobj)), k
        assert np.allclose(images[k].affine, images["nifti"].affine, atol=1e-4), (k, images[k].affine)
    ct_in = {k: json.load(open(os.path.join(o, "run.json")))["inputs"]["ct"] for k, o in outs.items()}
    assert ct_in["dicom"]["path"] == os.path.join(FX, "axial") and ct_in["picked"]["path"] == d, ct_in
    assert ct_in["dicom"]["sha256"] == ct_in["picked"]["sha256"] != ct_in["nifti"]["sha256"], ct_in
    q = run("preprocess", "--ct", d, "--quiet", "--out", fresh("preprocess_refused"), expect=1)
    assert "holds 2 series; pick one with --series UID" in q.stderr, q.stderr


if __name__ == "__main__":
    if not os.path.exists(os.path.join(FX, "expected.txt")):
        print(f"skipping: {FX} holds no DICOM fixtures (make_dicom_fixtures.py skipped)")
        sys.exit(77)
    p = subprocess.run([BIN, "info", os.path.join(FX, "axial")], capture_output=True, text=True)
    if "without DICOM support" in p.stderr:
        print("skipping: this volfeat was built without DICOM support")
        sys.exit(77)
    os.makedirs(WORK, exist_ok=True)
    run_tests(dict(globals()))
