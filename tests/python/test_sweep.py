"""volfeat.sweep against `volfeat sweep` on the same inputs."""
import os

import numpy as np
import pandas as pd

import volfeat
from conftest import THREADS, run_cli

KEY = ["volume", "scheme", "mode", "layer", "pool", "similarity", "pair"]


def test_sweep_equals_cli(cli, pelvis, weights, tmp_path):
    common = dict(labels={"femur": 1, "hip": 2}, weights=weights, layers=["conv0", "denseblock1"],
                  schemes=["random", "i3d-mean"], pools=["mean", "max"], modes=["shared"],
                  similarities=["cosine", "cka"], null_seeds=1, seed=0, threads=THREADS, quiet=True)
    out = tmp_path / "api"
    df = volfeat.sweep(ct=pelvis["ct"], mask=pelvis["mask"], out=out, **common)
    cli_out = str(tmp_path / "cli")
    run_cli(cli, "sweep", "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels", "femur=1,hip=2",
            "--weights", weights, "--layers", "conv0,denseblock1", "--schemes", "random,i3d-mean",
            "--pools", "mean,max", "--modes", "shared", "--similarities", "cosine,cka", "--null-seeds", "1",
            "--seed", "0", "--threads", str(THREADS), "--quiet", "--out", cli_out)
    ref = pd.read_csv(os.path.join(cli_out, "sweep.csv"), keep_default_na=False, na_values=[""], dtype={"pool": str},
                      float_precision="round_trip")
    # 3 units (null + 2 schemes) x 2 layers x (2 pools x cosine + cka) x 3 pairs
    assert len(df) == len(ref) == 3 * 2 * 3 * 3
    assert os.path.isfile(out / "sweep.csv") and os.path.isfile(out / "sweep.json")
    a, b = df.set_index(KEY).sort_index(), ref.set_index(KEY).sort_index()
    assert list(a.index) == list(b.index)
    assert np.array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    assert (a["weights_kind"] == b["weights_kind"]).all()
    assert set(df["scheme"]) == {"null-random:1001", "random", "i3d-mean"}
    # resumes: the same call again computes nothing and returns the same table
    again = volfeat.sweep(ct=pelvis["ct"], mask=pelvis["mask"], out=out, **common)
    assert again.equals(df)


def test_sweep_without_out_uses_a_temporary_directory(pelvis):
    df = volfeat.sweep(ct=pelvis["ct"], mask=pelvis["mask"], labels="femur=1,hip=2", layers="conv0",
                       schemes="random", similarities="cosine", threads=THREADS, quiet=True, crop_to_labels=3)
    assert len(df) == 3 and df["value"].between(-1, 1).all()
