"""volfeat.report against `volfeat report` on the same arguments: the same tables and features."""
import json
import os

import numpy as np
import pandas as pd
import pytest

import volfeat
from conftest import THREADS, cli_error, read_npz, run_cli

PRESET = "last-3rd-5th"  # report B: mask-input, the last, 3rd-last and 5th-last convs


def test_report_equals_the_cli(cli, pelvis, tmp_path):
    out = str(tmp_path / "cli")
    run_cli(cli, "report", "--preset", PRESET, "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels",
            pelvis["labels"], "--threads", str(THREADS), "--quiet", "--out", out)
    r = volfeat.report(PRESET, ct=pelvis["ct"], mask=pelvis["mask"], labels={"femur": 1, "hip": 2}, threads=THREADS,
                       quiet=True)
    assert r.out is None
    ref = pd.read_csv(os.path.join(out, "similarities.csv"), index_col="pair", float_precision="round_trip")
    assert r.similarities.shape == (3, 3) and list(r.similarities.index) == ["femur-hip", "femur-background",
                                                                                 "hip-background"]
    pd.testing.assert_frame_equal(r.similarities, ref, check_exact=True)
    features = read_npz(os.path.join(out, "features.npz"))
    assert len(features) == 9 and len(r.features) == 9
    for key, v in features.items():
        assert np.array_equal(r.features[tuple(key.split("/", 1))], v), key
    cli_run = json.load(open(os.path.join(out, "run.json")))
    assert r.run["config"] == cli_run["config"], (r.run["config"], cli_run["config"])
    assert r.run["config"]["mode"] == "mask-input" and r.run["forward_passes"] == 3, r.run
    # the preset's own table, as published (another CT, other weights), beside ours
    preset = json.loads(volfeat._volfeat.report_preset(PRESET))
    assert r.title == preset["title"] and list(r.published.columns) == ["last", "3rd-last", "5th-last"]
    assert r.published.loc["tibia-femur"].tolist() == preset["published"]["rows"]["tibia-femur"]


def test_bad_preset_is_the_cli_error(cli, tmp_path):
    with pytest.raises(ValueError) as e:
        volfeat.report("no-such-report", quiet=True)
    assert str(e.value) == cli_error(cli, "report", "--preset", "no-such-report", "--quiet", "--out",
                                     str(tmp_path / "o"))
    assert "known: block-outputs, denseblock4-tail, last-3rd-5th" in str(e.value), str(e.value)
