"""Bad inputs raise one Python exception of the right type carrying the CLI's message."""
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

import volfeat
from conftest import cli_error


def test_missing_files_are_file_not_found(cli, pelvis, weights, tmp_path):
    missing = str(tmp_path / "absent_ct.nii.gz")
    with pytest.raises(FileNotFoundError) as e:
        volfeat.extract(ct=missing, mask=pelvis["mask"], labels=pelvis["labels"], quiet=True)
    assert str(e.value) == cli_error(cli, "extract", "--ct", missing, "--mask", pelvis["mask"], "--labels",
                                     pelvis["labels"], "--quiet", "--out", str(tmp_path / "o1"))
    assert str(e.value) == f"{missing}: no such file"
    absent_w = str(tmp_path / "absent.npz")
    with pytest.raises(FileNotFoundError) as e:
        volfeat.Network(absent_w)
    assert absent_w in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        volfeat.extract(ct=pelvis["ct"], mask=pelvis["mask"], labels=pelvis["labels"], weights=absent_w, quiet=True)
    assert str(e.value) == cli_error(cli, "extract", "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels",
                                     pelvis["labels"], "--weights", absent_w, "--quiet", "--out", str(tmp_path / "o2"))
    with pytest.raises(FileNotFoundError):
        volfeat.read_nifti(missing)


def test_truncated_nifti_is_value_error(cli, pelvis, tmp_path):
    with open(pelvis["ct"], "rb") as f:
        whole = f.read()
    truncated = str(tmp_path / "truncated.nii.gz")
    with open(truncated, "wb") as f:
        f.write(whole[: len(whole) // 2])
    with pytest.raises(ValueError) as e:
        volfeat.extract(ct=truncated, mask=pelvis["mask"], labels=pelvis["labels"], quiet=True)
    assert str(e.value) == cli_error(cli, "extract", "--ct", truncated, "--mask", pelvis["mask"], "--labels",
                                     pelvis["labels"], "--quiet", "--out", str(tmp_path / "o"))
    assert str(e.value).startswith(truncated + ": ")
    with pytest.raises(ValueError):
        volfeat.read_nifti(truncated)
    # a whole gzip stream that holds half a NIfTI file
    half = str(tmp_path / "half.nii.gz")
    with open(half, "wb") as f:
        f.write(gzip.compress(gzip.decompress(whole)[:100000]))
    with pytest.raises(ValueError, match="half.nii.gz"):
        volfeat.read_nifti(half)


def test_corrupt_npz_is_value_error(cli, pelvis, tmp_path):
    bad = str(tmp_path / "not_a_zip.npz")
    with open(bad, "wb") as f:
        f.write(b"this is not a zip file, it is a text file named .npz\n" * 4)
    with pytest.raises(ValueError) as e:
        volfeat.Network(bad)
    assert str(e.value).startswith(bad + ": ")
    with pytest.raises(ValueError) as e2:
        volfeat.extract(ct=pelvis["ct"], mask=pelvis["mask"], labels=pelvis["labels"], weights=bad, quiet=True)
    assert str(e2.value) == cli_error(cli, "extract", "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels",
                                      pelvis["labels"], "--weights", bad, "--quiet", "--out", str(tmp_path / "o"))


def test_unknown_layer_and_bad_options_are_value_errors(cli, tmp_path):
    with pytest.raises(ValueError) as e:
        volfeat.extract(layers=["denseblock9"], quiet=True)
    assert str(e.value) == cli_error(cli, "extract", "--layers", "denseblock9", "--quiet", "--out", str(tmp_path / "o"))
    assert "denseblock9" in str(e.value)
    net = volfeat.Network(arch="densenet121", quiet=True)
    with pytest.raises(ValueError, match="unknown layer 'denselbock1'"):
        net.forward(np.zeros((32, 32, 32), np.float32), ["denselbock1"])
    with pytest.raises(ValueError, match="too small"):
        net.forward(np.zeros((8, 32, 32), np.float32), ["denseblock4"])
    with pytest.raises(ValueError, match="mode"):
        volfeat.extract(mode="both", quiet=True)
    with pytest.raises(ValueError, match="unknown inflation scheme"):
        volfeat.Network(arch="densenet121", inflate="bogus")
    with pytest.raises(TypeError, match="unexpected keyword argument 'layer'"):
        volfeat.extract(layer="denseblock1")


def test_bad_arrays(tmp_path):
    ct = np.zeros((32, 32, 32), np.float32)
    mask = np.zeros((32, 32, 32), np.int16)
    mask[8:20, 8:20, 8:20] = 1
    with pytest.raises(ValueError, match="shapes differ"):
        volfeat.extract(ct=ct, mask=mask[:, :, :31], labels={"a": 1}, quiet=True)
    half = mask.astype(np.float32)
    half[0, 0, 3] = 0.5
    with pytest.raises(ValueError, match=r"voxel \(d,h,w\)=\(0,0,3\) is 0.5, not an integer"):
        volfeat.extract(ct=ct, mask=half, labels={"a": 1}, quiet=True)
    nan = ct.copy()
    nan[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        volfeat.extract(ct=nan, mask=mask, labels={"a": 1}, layers="denseblock1", quiet=True)
    r = volfeat.extract(ct=nan, mask=mask, labels={"a": 1}, layers="denseblock1", nan_to=-1000, quiet=True)
    assert np.isfinite(r.similarities.to_numpy()).all()
    with pytest.raises(ValueError, match="region a=7 is not in the mask"):
        volfeat.extract(ct=ct, mask=mask, labels={"a": 7}, quiet=True)
    with pytest.raises(ValueError, match="together"):
        volfeat.extract(ct=ct, labels={"a": 1})


def test_memory_guard_is_memory_error(cli, pelvis, tmp_path):
    with pytest.raises(MemoryError) as e:
        volfeat.extract(ct=pelvis["ct"], mask=pelvis["mask"], labels=pelvis["labels"], max_memory="20M", quiet=True)
    assert str(e.value) == cli_error(cli, "extract", "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels",
                                     pelvis["labels"], "--max-memory", "20M", "--quiet", "--out", str(tmp_path / "o"))
    assert "exceeds --max-memory" in str(e.value)
    # an absurd volume from arrays: refused before the forward pass
    ct = np.zeros((192, 192, 192), np.int16)
    mask = np.zeros((192, 192, 192), np.uint8)
    mask[80:120, 80:120, 80:120] = 1
    with pytest.raises(MemoryError, match=r"estimated peak memory .* exceeds --max-memory 300.0 MiB"):
        volfeat.extract(ct=ct, mask=mask, labels={"bone": 1}, max_memory="300M", quiet=True)


def test_a_bad_volfeat_huge_pages_is_an_import_error():
    env = dict(os.environ, VOLFEAT_HUGE_PAGES="maybe")
    p = subprocess.run([sys.executable, "-c", "import volfeat"], env=env, capture_output=True, text=True)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines()[-1] == "ImportError: volfeat: VOLFEAT_HUGE_PAGES=maybe: expected auto (the default), on or off", p.stderr
    env["VOLFEAT_HUGE_PAGES"] = "off"
    p = subprocess.run([sys.executable, "-c", "import volfeat; print(volfeat.cpu_isa)"], env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == volfeat.cpu_isa, p.stderr
