"""volfeat.preprocess against `volfeat preprocess` on the same arguments: the same volume and report."""
import os

import numpy as np
import pandas as pd
import pytest

import volfeat
from conftest import THREADS, cli_error, run_cli

STAGES = dict(denoise="gaussian:2", contrast="clahe", normalize="window:400,2000")


@pytest.fixture(scope="module")
def cli_run(cli, pelvis, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cli_preprocess"))
    run_cli(cli, "preprocess", "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels", pelvis["labels"],
            *[a for k, v in STAGES.items() for a in ("--" + k, v)], "--threads", str(THREADS), "--quiet", "--out", out)
    return out


def test_volume_and_report_equal_the_cli(cli_run, pelvis, tmp_path):
    r = volfeat.preprocess(pelvis["ct"], mask=pelvis["mask"], labels={"femur": 1, "hip": 2}, threads=THREADS,
                           quiet=True, out=tmp_path / "api", **STAGES)
    assert r.out == str(tmp_path / "api") and os.path.isfile(tmp_path / "api" / "intensity.png")
    volume, spacing, affine = volfeat.read_nifti(os.path.join(cli_run, "preprocessed.nii.gz"))
    assert r.volume.dtype == np.float32 and r.volume.shape == volume.shape == (112, 101, 122)
    assert np.array_equal(r.volume, volume) and r.spacing == spacing and np.array_equal(r.affine, affine)
    assert 0 <= r.volume.min() < r.volume.max() <= 1, (r.volume.min(), r.volume.max())  # window:400,2000 -> [0, 1]
    report = pd.read_csv(os.path.join(cli_run, "intensity_report.csv"), keep_default_na=False, na_values=[""],
                         float_precision="round_trip", dtype={"stage": str, "region": str, "label": str})
    pd.testing.assert_frame_equal(r.report, report, check_exact=True)
    assert {"femur", "hip", "background"} <= set(report["region"]), set(report["region"])
    assert r.run["config"]["denoise"] == "gaussian:2" and r.run["config"]["contrast"] == "clahe", r.run["config"]
    # without denoise and contrast the same normalisation gives another volume
    plain = volfeat.preprocess(pelvis["ct"], normalize=STAGES["normalize"], threads=THREADS, quiet=True)
    assert plain.out is None and plain.volume.shape == volume.shape and not np.array_equal(plain.volume, volume)
    raw, _, _ = volfeat.read_nifti(pelvis["ct"])  # window L=400, W=2000: [-600, 1400] HU onto [0, 1]
    assert np.allclose(plain.volume, np.clip((raw.astype(np.float64) + 600) / 2000, 0, 1), rtol=0, atol=1e-6)


def test_bad_arguments_are_the_cli_errors(cli, pelvis, tmp_path):
    with pytest.raises(ValueError) as e:
        volfeat.preprocess(pelvis["ct"], denoise="sharpen:3", quiet=True)
    assert str(e.value) == cli_error(cli, "preprocess", "--ct", pelvis["ct"], "--denoise", "sharpen:3", "--quiet",
                                     "--out", str(tmp_path / "o"))
    with pytest.raises(FileNotFoundError):
        volfeat.preprocess(str(tmp_path / "absent.nii.gz"), quiet=True)
    with pytest.raises(ValueError, match="ct must be a path"):
        volfeat.preprocess(np.zeros((4, 4, 4), np.float32))
