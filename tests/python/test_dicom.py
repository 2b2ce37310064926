"""DICOM series from Python: read_ct, list_series, and extract(ct=DIR, series=) as `volfeat extract --ct DIR`.

The series are tests/fixtures/make_dicom_fixtures.py's (the pelvis CT written slice by slice by pydicom: shuffled
file names, RescaleSlope/Intercept, an oblique one and its lossless JPEG 2000 copy; the dicom_fx fixture, whose
directory ctest passes as VOLFEAT_DICOM_DATA). What must hold: the voxels are the NIfTI's, exactly; extract on a
directory gives the NIfTI's features bit for bit and the CLI's on the same directory; a directory of two series
needs series=, whose error is the CLI's line; a broken series is a ValueError naming the directory.
"""
import json
import os
import shutil

import numpy as np
import pytest

import volfeat
from conftest import THREADS, cli_error, read_npz, run_cli

LAYERS = ["conv0", "pool0"]  # the stem sees every voxel: any misplaced or mis-scaled one changes the vectors


@pytest.fixture(scope="module")
def dicom():
    if not volfeat.dicom_support:
        pytest.skip("this volfeat was built without GDCM (VOLFEAT_WITH_DICOM=OFF): no DICOM directories")
    d = os.environ.get("VOLFEAT_DICOM_DATA", "")
    if not d:
        pytest.skip("$VOLFEAT_DICOM_DATA is not set (run these tests through ctest)")
    if not os.path.isfile(os.path.join(d, "expected.txt")):
        pytest.skip(f"{d}/expected.txt is absent: the dicom_fixtures step did not run (no pydicom or no pelvis CT)")
    uids = {}
    for line in open(os.path.join(d, "expected.txt")):
        name, uid = line.split()[:2]
        uids[name] = uid
    return {"dir": d, "uids": uids}


@pytest.fixture(scope="module")
def two_series(dicom, tmp_path_factory):
    """The axial and the oblique series in one directory."""
    d = str(tmp_path_factory.mktemp("two_series"))
    for name in ["axial", "oblique"]:
        src = os.path.join(dicom["dir"], name)
        for f in os.listdir(src):
            shutil.copy(os.path.join(src, f), os.path.join(d, name + "_" + f))
    return d


def test_read_ct_of_a_series_is_its_nifti_voxel_for_voxel(dicom, pelvis):
    ct, spacing, affine = volfeat.read_ct(os.path.join(dicom["dir"], "axial"))
    ref, ref_spacing, ref_affine = volfeat.read_nifti(pelvis["ct"])
    assert ct.dtype == np.float32 and ct.shape == ref.shape == (112, 101, 122), (ct.dtype, ct.shape)
    assert np.array_equal(ct, ref), f"{np.count_nonzero(ct != ref)} voxels differ"
    assert np.allclose(spacing, ref_spacing, rtol=1e-6), (spacing, ref_spacing)
    assert np.allclose(affine, ref_affine, atol=1e-4), (affine, ref_affine)
    # the oblique series (uint16, another intercept) and its JPEG 2000 copy against the oblique NIfTI
    oref, _, oaffine = volfeat.read_ct(os.path.join(dicom["dir"], "ct_oblique.nii.gz"))
    for name in ["oblique", "oblique_j2k"]:
        o, _, a = volfeat.read_ct(os.path.join(dicom["dir"], name))
        assert np.array_equal(o, oref), f"{name}: {np.count_nonzero(o != oref)} voxels differ"
        assert np.allclose(a, oaffine, atol=1e-4), (name, a, oaffine)
    assert not np.allclose(oaffine[:3, :3], np.diag(np.diag(oaffine[:3, :3]))), "the oblique affine is not oblique"


def test_read_ct_of_a_nifti_is_read_nifti(pelvis):
    a, s, f = volfeat.read_ct(pelvis["ct"])
    b, t, g = volfeat.read_nifti(pelvis["ct"])
    assert np.array_equal(a, b) and s == t and np.array_equal(f, g)


def test_extract_on_a_directory_equals_the_nifti_and_the_cli(dicom, pelvis, cli, tmp_path):
    common = dict(mask=pelvis["mask"], labels=pelvis["labels"], layers=LAYERS, threads=THREADS, quiet=True)
    from_dir = volfeat.extract(ct=os.path.join(dicom["dir"], "axial"), out=str(tmp_path / "api"), **common)
    from_nifti = volfeat.extract(ct=pelvis["ct"], **common)
    out = str(tmp_path / "cli")
    run_cli(cli, "extract", "--ct", os.path.join(dicom["dir"], "axial"), "--mask", pelvis["mask"], "--labels",
            pelvis["labels"], "--layers", ",".join(LAYERS), "--threads", str(THREADS), "--quiet", "--out", out)
    ref = read_npz(os.path.join(out, "features.npz"))
    assert len(ref) == 3 * len(LAYERS) and len(from_dir.features) == len(ref)
    for key, v in ref.items():
        region, layer = key.split("/", 1)
        assert np.array_equal(from_dir.features[(region, layer)], v), f"{key}: the API's differs from the CLI's"
        assert np.array_equal(from_nifti.features[(region, layer)], v), f"{key}: the NIfTI's differs from the series'"
    # run.json: the directory as the CT's path, and its series' hash (that of its files in slice order), the CLI's
    cli_ct = json.load(open(os.path.join(out, "run.json")))["inputs"]["ct"]
    api_ct = from_dir.run["inputs"]["ct"]
    assert api_ct == cli_ct and cli_ct["path"] == os.path.join(dicom["dir"], "axial"), (api_ct, cli_ct)
    assert cli_ct["sha256"] != from_nifti.run["inputs"]["ct"]["sha256"]


def test_two_series_need_series_which_picks_one(dicom, two_series, pelvis, cli, tmp_path):
    uids = dicom["uids"]
    found = volfeat.list_series(two_series)
    assert sorted(s["uid"] for s in found) == sorted([uids["axial"], uids["oblique"]]), found
    assert all(s["modality"] == "CT" and s["files"] == 112 for s in found), found
    common = dict(mask=pelvis["mask"], labels=pelvis["labels"], layers=LAYERS, threads=THREADS, quiet=True)
    with pytest.raises(ValueError) as e:
        volfeat.extract(ct=two_series, **common)
    assert str(e.value) == cli_error(cli, "extract", "--ct", two_series, "--mask", pelvis["mask"], "--labels",
                                     pelvis["labels"], "--layers", ",".join(LAYERS), "--quiet", "--out",
                                     str(tmp_path / "refused"))
    assert "holds 2 series" in str(e.value) and uids["axial"] in str(e.value), str(e.value)
    with pytest.raises(ValueError, match="holds 2 series"):
        volfeat.read_ct(two_series)
    picked, _, _ = volfeat.read_ct(two_series, series=uids["axial"])
    axial, _, _ = volfeat.read_ct(os.path.join(dicom["dir"], "axial"))
    assert np.array_equal(picked, axial)
    r = volfeat.extract(ct=two_series, series=uids["axial"], **common)
    ref = volfeat.extract(ct=os.path.join(dicom["dir"], "axial"), **common)
    for key, v in ref.features.items():
        assert np.array_equal(r.features[key], v), key


def test_bad_series_are_value_errors_naming_the_directory(dicom, pelvis, cli, tmp_path):
    broken = tmp_path / "broken_series"
    broken.mkdir()
    src = os.path.join(dicom["dir"], "axial")
    for f in sorted(os.listdir(src))[:5]:
        shutil.copy(os.path.join(src, f), broken / f)
    first = sorted(os.listdir(broken))[0]
    with open(broken / first, "r+b") as f:  # one slice cut short inside its pixel data
        f.truncate(os.path.getsize(broken / first) - 1000)
    with pytest.raises(ValueError) as e:
        volfeat.read_ct(str(broken))
    assert str(broken) in str(e.value), str(e.value)
    with pytest.raises(ValueError) as e:
        volfeat.extract(ct=str(broken), mask=pelvis["mask"], labels=pelvis["labels"], quiet=True)
    assert str(e.value) == cli_error(cli, "extract", "--ct", str(broken), "--mask", pelvis["mask"], "--labels",
                                     pelvis["labels"], "--quiet", "--out", str(tmp_path / "o"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert volfeat.list_series(str(empty)) == []
    with pytest.raises(ValueError) as e:
        volfeat.read_ct(str(empty))
    assert str(e.value) == f"{empty}: no DICOM files in the directory", str(e.value)
    with pytest.raises(ValueError, match="NIfTI file, not a DICOM directory"):
        volfeat.read_ct(pelvis["ct"], series=dicom["uids"]["axial"])
    with pytest.raises(ValueError, match="arrays have none"):
        ct, spacing, _ = volfeat.read_nifti(pelvis["ct"])
        labels, _, _ = volfeat.read_nifti(pelvis["mask"], labels=True)
        volfeat.extract(ct=ct, mask=labels, spacing=spacing, series=dicom["uids"]["axial"], quiet=True)


def test_preprocess_on_a_directory_equals_the_nifti(dicom, two_series, pelvis):
    stages = dict(denoise="median:1", contrast="equalize", threads=THREADS, quiet=True)
    a = volfeat.preprocess(os.path.join(dicom["dir"], "axial"), mask=pelvis["mask"], labels=pelvis["labels"], **stages)
    b = volfeat.preprocess(pelvis["ct"], mask=pelvis["mask"], labels=pelvis["labels"], **stages)
    c = volfeat.preprocess(two_series, series=dicom["uids"]["axial"], mask=pelvis["mask"], labels=pelvis["labels"],
                           **stages)
    assert np.array_equal(a.volume, b.volume) and np.array_equal(c.volume, b.volume)
    assert a.report.equals(b.report) and c.report.equals(b.report)
    assert a.run["inputs"]["ct"]["sha256"] == c.run["inputs"]["ct"]["sha256"] != b.run["inputs"]["ct"]["sha256"]
