"""Cohorts from Python: volfeat.sweep / volfeat.extract with manifest= and shard=, volfeat.merge, and
VolumesFailed for a cohort with a bad volume, each against the CLI's single-process run of the same
manifest (tests/cli/test_cohort.py covers the CLI's own cohorts: races, kills, MPI)."""
import os

import numpy as np
import pandas as pd
import pytest

import volfeat
from conftest import run_cli

SIZES = {"small": "24,32,32", "medium": "32,40,40"}
SWEEP = dict(schemes="random", null_seeds=1, layers="conv0,pool0", pools="mean", modes="shared",
             similarities="cosine", threads=1, quiet=True)
VOLATILE = ["forward_seconds", "finished_at"]


@pytest.fixture(scope="module")
def cohort(cli, tmp_path_factory):
    """Two phantoms and two manifests: good, and good plus a volume that is not a NIfTI file."""
    work = tmp_path_factory.mktemp("cohort")
    rows = []
    for i, (name, dims) in enumerate(SIZES.items()):
        d = work / name
        run_cli(cli, "phantom", "--dims", dims, "--seed", str(i), "--out", str(d))
        rows.append(f'{name},{d}/knee_ct.nii.gz,{d}/knee_labels.nii.gz,"femur=1,tibia=2"')
    broken = work / "broken_ct.nii.gz"
    broken.write_text("this is not a NIfTI file\n")
    good, bad = work / "manifest.csv", work / "manifest_bad.csv"
    good.write_text("\n".join(["id,ct,mask,labels"] + rows) + "\n")
    bad.write_text("\n".join(["id,ct,mask,labels", rows[0], f'broken,{broken},{work}/small/knee_labels.nii.gz,'
                              '"femur=1,tibia=2"', rows[1]]) + "\n")
    return {"work": work, "good": str(good), "bad": str(bad)}


def _cli_sweep(cli, manifest, out, expect=0):
    p = run_cli(cli, "sweep", "--manifest", manifest, "--schemes", "random", "--null-seeds", "1", "--layers",
                "conv0,pool0", "--pools", "mean", "--modes", "shared", "--similarities", "cosine", "--threads", "1",
                "--quiet", "--out", str(out), check=False)
    assert p.returncode == expect, p.stderr
    return pd.read_csv(out / "sweep.csv", keep_default_na=False, na_values=[""], float_precision="round_trip",
                       dtype={"pool": str})


def _same_rows(got, want):
    a, b = got.drop(columns=VOLATILE), want.drop(columns=VOLATILE)
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b) and len(a) > 0
    assert [tuple(r) for r in a.astype(str).to_numpy()] == [tuple(r) for r in b.astype(str).to_numpy()]


def test_sweep_shards_return_the_single_runs_table(cli, cohort):
    ref = _cli_sweep(cli, cohort["good"], cohort["work"] / "sweep_cli")
    out = cohort["work"] / "sweep_shards"
    first = volfeat.sweep(manifest=cohort["good"], shard="1/2", out=out, **SWEEP)
    second = volfeat.sweep(manifest=cohort["good"], shard="2/2", out=out, **SWEEP)
    assert first is None, "shard 1/2 cannot have the whole cohort"  # shard 2's units were not done yet
    _same_rows(second, ref)
    _same_rows(volfeat.merge(out), ref)  # merging again by hand gives the same table
    # rerunning a finished shard computes nothing and returns the merged table
    _same_rows(volfeat.sweep(manifest=cohort["good"], shard="1/2", out=out, **SWEEP), ref)


def test_a_bad_volume_raises_volumes_failed_with_the_others_rows(cli, cohort):
    ref = _cli_sweep(cli, cohort["bad"], cohort["work"] / "sweep_bad_cli", expect=3)
    with pytest.raises(volfeat.VolumesFailed) as e:
        volfeat.sweep(manifest=cohort["bad"], out=cohort["work"] / "sweep_bad", **SWEEP)
    assert set(e.value.failures["volume"]) == {"broken"}, e.value.failures
    assert e.value.failures["message"].str.contains("broken_ct.nii.gz").all()
    assert "broken" not in set(e.value.result["volume"])
    _same_rows(e.value.result, ref)


def test_extract_over_a_manifest_returns_the_cohort_tables(cli, cohort):
    ref = cohort["work"] / "extract_cli"
    run_cli(cli, "extract", "--manifest", cohort["good"], "--layers", "conv0,pool0", "--threads", "1", "--quiet",
            "--out", str(ref))
    out = cohort["work"] / "extract_shards"
    common = dict(manifest=cohort["good"], layers="conv0,pool0", threads=1, quiet=True, out=out)
    assert volfeat.extract(shard="1/2", **common) is None
    tables = volfeat.extract(shard="2/2", **common)
    assert isinstance(tables, volfeat.CohortTables) and tables.volumes == ["medium", "small"]
    want = pd.read_csv(ref / "features_long.csv", float_precision="round_trip")
    assert len(tables.features) == len(want) > 0
    assert np.array_equal(tables.features["value"].to_numpy(), want["value"].to_numpy())
    sims = pd.read_csv(ref / "similarities_across_volumes.csv", float_precision="round_trip")
    assert np.array_equal(tables.similarities["cosine"].to_numpy(), sims["cosine"].to_numpy())
    for v in SIZES:  # each volume's directory is the CLI's
        assert (out / v / "similarities.csv").read_text() == (ref / v / "similarities.csv").read_text()


def test_cohort_options_need_a_directory_and_no_single_volume(cohort):
    with pytest.raises(ValueError, match="need out=DIR"):
        volfeat.sweep(manifest=cohort["good"], shard="1/2", **SWEEP)
    with pytest.raises(ValueError, match="need out=DIR"):
        volfeat.extract(manifest=cohort["good"], layers="conv0")
    with pytest.raises(ValueError, match="reads its volumes from the manifest"):
        volfeat.extract(ct="a.nii.gz", mask="b.nii.gz", manifest=cohort["good"], out=cohort["work"] / "never")
    with pytest.raises(ValueError, match="--shard 3/2"):
        volfeat.sweep(manifest=cohort["good"], shard="3/2", out=cohort["work"] / "never", **SWEEP)


def test_threads_apply_to_their_call_only(cohort):
    # the sweeps above ran with threads=1; an estimate afterwards sees the process's own thread count
    import subprocess, sys
    code = ("import os, volfeat\n"
            "def peak():\n"
            "    try:\n"
            "        volfeat.extract(max_memory='1M', quiet=True)\n"
            "    except MemoryError as e:\n"
            "        return str(e)\n"
            "a = peak()\n"
            f"volfeat.sweep(manifest={cohort['good']!r}, out={str(cohort['work'] / 'threads')!r}, schemes='random',"
            " layers='conv0', similarities='cosine', threads=1, quiet=True)\n"
            "assert peak() == a, (a, peak())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ,
                       OMP_NUM_THREADS="2"))
    assert p.returncode == 0, p.stderr
