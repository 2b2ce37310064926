#!/usr/bin/env python3
"""Issue #19: a mask on the CT's grid stored in another axis order is reoriented losslessly.

The masks are written by nibabel (Nifti1Image.as_reoriented: data and affine moved together, an
implementation independent of volfeat's): flipped along each axis, i<->j and i<->k swapped, and every
axis permuted with flips. Each run must give the original pair's features and similarities bit for
bit, print one note and record the reorientation in run.json. A mask that is physically elsewhere is
still refused. Runs on the real pelvis CT when shared/data/pelvis_ct is there, else on the phantom.

usage: test_reorient.py VOLFEAT_BINARY WORKDIR SHARED_DIR
Prints one line per check and a closing 'N passed, M failed'; exits non-zero on any failure.
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import nibabel as nib
import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cli_runner, fresh_dir, normal_suite_only, run_tests  # noqa: E402

BIN, WORK, SHARED = sys.argv[1], sys.argv[2], sys.argv[3]
PELVIS = os.path.join(SHARED, "data", "pelvis_ct")
# Two early layers: enough network to make any misplaced label change the vectors, cheap on 2 cores.
# The stem: a misplaced mask voxel changes the region weights and so every pooled vector; deeper layers add only
# time (denseblock1,transition1 took 296 s under the sanitizers).
LAYERS = "conv0,pool0"
# nibabel orientation: row a = [axis of the written mask that CT axis a becomes, +1 or -1 (reversed)].
VARIANTS = {
    "flip_i": [[0, -1], [1, 1], [2, 1]],
    "flip_j": [[0, 1], [1, -1], [2, 1]],
    "flip_k": [[0, 1], [1, 1], [2, -1]],
    "swap_ij": [[1, 1], [0, 1], [2, 1]],
    "swap_ik": [[2, 1], [1, 1], [0, 1]],
    "permute_all_flipped": [[2, -1], [0, 1], [1, -1]],
}


run = cli_runner(BIN)


def fresh(name):
    return fresh_dir(WORK, name)


def inputs():
    """(ct, mask, labels): the pelvis pair, or the phantom written once by `volfeat phantom`."""
    if os.path.exists(os.path.join(PELVIS, "ct.nii.gz")):
        return os.path.join(PELVIS, "ct.nii.gz"), os.path.join(PELVIS, "femur1_hip2.nii.gz"), "femur=1,hip=2"
    d = os.path.join(WORK, "phantom")
    if not os.path.exists(os.path.join(d, "knee_labels.nii.gz")):
        run("phantom", "--out", d)
    return os.path.join(d, "knee_ct.nii.gz"), os.path.join(d, "knee_labels.nii.gz"), "femur=1,tibia=2"


CT, MASK, LABELS = inputs()


def extract(mask, out, expect=0):
    return run("extract", "--ct", CT, "--mask", mask, "--labels", LABELS, "--layers", LAYERS, "--out", out,
               expect=expect)


def npz_members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in sorted(z.namelist())}


_baseline = {}


def baseline():
    """The original pair's run, once."""
    if not _baseline:
        out = fresh("original")
        p = extract(MASK, out)
        _baseline.update(out=out, stderr=p.stderr)
    return _baseline


def write_variant(name, ornt):
    img = nib.load(MASK)
    moved = img.as_reoriented(np.array(ornt))
    path = os.path.join(WORK, f"mask_{name}.nii.gz")
    nib.save(moved, path)
    stored = np.asanyarray(nib.load(path).dataobj)
    original = np.asanyarray(img.dataobj)
    # the file really holds another array (else the test could not fail), and the same labels
    assert stored.shape != original.shape or not np.array_equal(stored, original), f"{name}: mask unchanged"
    assert np.array_equal(np.unique(stored, return_counts=True), np.unique(original, return_counts=True))
    return path, moved


def check_variant(name):
    ornt = VARIANTS[name]
    path, moved = write_variant(name, ornt)
    base = baseline()
    out = fresh(name)
    p = extract(path, out)
    for f in ["similarities.csv", "region_report.csv"]:
        a = open(os.path.join(base["out"], f), "rb").read()
        b = open(os.path.join(out, f), "rb").read()
        assert a == b, f"{name}: {f} differs from the original pair's"
    a, b = npz_members(os.path.join(base["out"], "features.npz")), npz_members(os.path.join(out, "features.npz"))
    assert len(a) == 3 * len(LAYERS.split(",")), sorted(a)
    assert a == b, f"{name}: features.npz differs: {[k for k in a if a[k] != b.get(k)]}"

    want_from = "".join(nib.aff2axcodes(moved.affine))
    want_to = "".join(nib.aff2axcodes(nib.load(CT).affine))
    want_axes = [("-" if f < 0 else "") + "ijk"[ax] for ax, f in ornt]
    rec = json.load(open(os.path.join(out, "run.json")))["inputs"]["mask_reorientation"]
    assert rec == {"from": want_from, "to": want_to, "ct_axes_from_mask_axes": want_axes,
                   "permutation": [ax for ax, _ in ornt], "flip": [f < 0 for _, f in ornt]}, rec
    note = (f"volfeat: {path}: mask reoriented {want_from} -> {want_to} to the CT's grid "
            f"(lossless: CT (i,j,k) = mask ({','.join(want_axes)}))")
    lines = [l for l in p.stderr.splitlines() if "reoriented" in l]
    assert lines == [note], f"{name}: expected the one note\n  {note}\ngot {lines}"


def test_original_pair_records_no_reorientation():
    base = baseline()
    rec = json.load(open(os.path.join(base["out"], "run.json")))["inputs"]
    assert "mask_reorientation" in rec and rec["mask_reorientation"] is None, rec
    assert "reoriented" not in base["stderr"], base["stderr"]


@normal_suite_only("test_permute_all_flipped drives the same remap; test_reorient checks all 48 permutations")
def test_flip_i():
    check_variant("flip_i")


@normal_suite_only("test_permute_all_flipped drives the same remap; test_reorient checks all 48 permutations")
def test_flip_j():
    check_variant("flip_j")


@normal_suite_only("test_permute_all_flipped drives the same remap; test_reorient checks all 48 permutations")
def test_flip_k():
    check_variant("flip_k")


@normal_suite_only("test_permute_all_flipped drives the same remap; test_reorient checks all 48 permutations")
def test_swap_ij():
    check_variant("swap_ij")


@normal_suite_only("test_permute_all_flipped drives the same remap; test_reorient checks all 48 permutations")
def test_swap_ik():
    check_variant("swap_ik")


def test_permute_all_flipped():
    check_variant("permute_all_flipped")


def test_mirrored_mask_is_refused():
    """The classic hand-made 'flip': data reversed along i and the column negated, the origin left where it
    was. That mask covers other voxels of the world (a mirror image), so it must not be accepted."""
    img = nib.load(MASK)
    data = np.asanyarray(img.dataobj)[::-1].copy()
    aff = img.affine.copy()
    aff[:, 0] = -aff[:, 0]
    path = os.path.join(WORK, "mask_mirrored.nii.gz")
    nib.save(nib.Nifti1Image(data, aff, img.header), path)
    out = fresh("mirrored")
    p = extract(path, out, expect=1)
    errors = [l for l in p.stderr.splitlines() if l.startswith("volfeat: error:")]
    assert len(errors) == 1, p.stderr
    for part in ["grid mismatch (orientation or voxel axes differ)", CT, path, "only a reordering or reversal"]:
        assert part in errors[0], f"'{part}' not in: {errors[0]}"
    assert not os.path.exists(out) or not os.listdir(out), os.listdir(out)


def test_landmarks_reorients_too():
    """landmarks reads the mask itself: the same reorientation, recorded in landmarks_run.json, same landmarks."""
    path, _ = write_variant("permute_all_flipped", VARIANTS["permute_all_flipped"])
    outs = {}
    for name, mask in [("original", MASK), ("reoriented", path)]:
        out = fresh("landmarks_" + name)
        run("landmarks", "--ct", CT, "--mask", mask, "--labels", LABELS, "--schemes", "i3d-mean", "--layers",
            "conv0", "--patch", "12", "--max-landmarks", "2", "--radius", "6", "--stride", "3", "--out", out)
        outs[name] = out
    rec = json.load(open(os.path.join(outs["reoriented"], "landmarks_run.json")))["mask_reorientation"]
    assert rec["ct_axes_from_mask_axes"] == ["-k", "i", "-j"], rec
    assert json.load(open(os.path.join(outs["original"], "landmarks_run.json")))["mask_reorientation"] is None
    a = open(os.path.join(outs["original"], "landmarks.csv"), "rb").read()
    b = open(os.path.join(outs["reoriented"], "landmarks.csv"), "rb").read()
    assert a == b and len(a) > 0, "landmarks.csv differs"


if __name__ == "__main__":
    os.makedirs(WORK, exist_ok=True)
    run_tests(dict(globals()))
