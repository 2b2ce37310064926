"""volfeat.landmarks against `volfeat landmarks` on the same arguments: the same tables, row for row."""
import os

import numpy as np
import pandas as pd
import pytest

import volfeat
from conftest import THREADS, cli_error, run_cli

# A small grid on the built-in phantom: two schemes x two layers x two patch sizes, three landmarks.
GRID = dict(schemes=["random", "i3d-mean"], layers=["conv0", "pool0"], patch=[8, 12], radius=2, stride=2,
            max_landmarks=3)


def cli_args(grid):
    args = []
    for key, value in grid.items():
        args += ["--" + key.replace("_", "-"), ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return args


TEXT = ["arch", "scheme", "layer", "module", "landmark", "region", "kind", "note"]


def read(out, name):
    return pd.read_csv(os.path.join(out, name), keep_default_na=False, na_values=[""], float_precision="round_trip",
                       dtype={c: str for c in TEXT})


@pytest.fixture(scope="module")
def cli_run(cli, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cli_landmarks"))
    run_cli(cli, "landmarks", *cli_args(GRID), "--threads", str(THREADS), "--quiet", "--out", out)
    return out


def test_tables_equal_the_cli(cli_run, tmp_path):
    r = volfeat.landmarks(**GRID, threads=THREADS, quiet=True, out=tmp_path / "api")
    assert r.out == str(tmp_path / "api") and os.path.isfile(tmp_path / "api" / "landmarks_summary.csv")
    rows = read(cli_run, "landmarks.csv")
    assert len(rows) == 2 * 2 * 2 * 3 and len(r.rows) == len(rows), (len(rows), len(r.rows))
    pd.testing.assert_frame_equal(r.rows, rows, check_exact=True)
    summary = read(cli_run, "landmarks_summary.csv")
    timing = ["seconds_scheme_patch"]  # wall time of each configuration: the one column two runs do not share
    assert len(summary) == 8 and set(summary["scheme"]) == {"random", "i3d-mean"}
    pd.testing.assert_frame_equal(r.summary.drop(columns=timing), summary.drop(columns=timing), check_exact=True)
    assert np.isfinite(r.summary["t"]).all() and ((r.summary["p"] > 0) & (r.summary["p"] <= 1)).all()
    run = r.run
    cli_json = pd.read_json(os.path.join(cli_run, "landmarks_run.json"), typ="series")
    for key in ["landmarks", "forward_passes", "layers", "patches", "transform", "weights", "schemes"]:
        assert run[key] == cli_json[key], key
    assert run["command"].startswith("volfeat.landmarks(schemes=['random', 'i3d-mean']"), run["command"]


def test_without_out_a_temporary_directory_and_bad_arguments(cli, tmp_path):
    r = volfeat.landmarks(schemes="random", layers="conv0", patch=8, radius=2, stride=2, max_landmarks=2,
                          threads=THREADS, quiet=True)
    assert r.out is None and len(r.rows) == 2 and list(r.summary["patch"]) == [8], r.summary
    assert "volfeat.LandmarksResult: 2 landmarks, 1 configurations" in repr(r)
    with pytest.raises(ValueError) as e:
        volfeat.landmarks(schemes="no-such-scheme", quiet=True)
    assert str(e.value) == cli_error(cli, "landmarks", "--schemes", "no-such-scheme", "--quiet", "--out",
                                     str(tmp_path / "o"))
    assert "no-such-scheme" in str(e.value)
    with pytest.raises(ValueError, match="ct must be a path"):
        volfeat.landmarks(ct=np.zeros((8, 8, 8)), mask=np.zeros((8, 8, 8), np.int32))
    with pytest.raises(TypeError, match="unexpected keyword argument 'pools'"):
        volfeat.landmarks(pools=["mean"])
