"""volfeat.extract against `volfeat extract` on the same inputs: bit-equal features and similarities."""
import json
import os

import numpy as np
import pandas as pd
import pytest

import volfeat
from conftest import THREADS, in_memory_fs, read_npz, run_cli

LAYERS = ["denseblock1", "transition1", "denseblock2"]


@pytest.fixture(scope="module")
def cli_run(cli, pelvis, weights, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cli_extract"))
    run_cli(cli, "extract", "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels", pelvis["labels"],
            "--weights", weights, "--inflate", "i3d-mean", "--layers", ",".join(LAYERS), "--mode", "shared",
            "--pool", "mean", "--normalize", "window:400,2000", "--threads", str(THREADS), "--quiet", "--out", out)
    return out


@pytest.fixture(scope="module")
def api_run(pelvis, weights, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("api_extract"))
    r = volfeat.extract(ct=pelvis["ct"], mask=pelvis["mask"], labels={"femur": 1, "hip": 2}, weights=weights,
                        inflate="i3d-mean", layers=LAYERS, mode="shared", pool="mean", normalize="window:400,2000",
                        threads=THREADS, quiet=True, out=out)
    return r, out


def test_features_bit_equal_to_cli(cli_run, api_run):
    r, _ = api_run
    ref = read_npz(os.path.join(cli_run, "features.npz"))
    assert len(ref) == 3 * len(LAYERS)  # femur, hip, background x layers
    assert set(r.features) == {tuple(k.split("/", 1)) for k in ref}
    for key, v in ref.items():
        region, layer = key.split("/", 1)
        got = r.features[(region, layer)]
        assert got.dtype == np.float64 and got.shape == v.shape and v.size > 0
        assert np.array_equal(got, v), f"{key}: max |diff| {np.max(np.abs(got - v))}"
    # the short layer names of the similarity table work as keys too
    assert np.array_equal(r.features[("femur", "denseblock2")], ref["femur/features.denseblock2"])


def test_similarities_equal_cli_csv(cli_run, api_run):
    r, _ = api_run
    ref = pd.read_csv(os.path.join(cli_run, "similarities.csv"), index_col="pair", float_precision="round_trip")
    assert list(r.similarities.index) == ["femur-hip", "femur-background", "hip-background"]
    assert list(r.similarities.columns) == LAYERS == list(ref.columns)
    assert np.array_equal(r.similarities.to_numpy(), ref.to_numpy())
    assert ((r.similarities > -1) & (r.similarities < 1)).all().all()


def test_out_dir_matches_cli_files(cli_run, api_run):
    r, out = api_run
    for name in ["similarities.csv", "features.npz", "region_report.csv", "region_slices.png", "run.json"]:
        assert os.path.isfile(os.path.join(out, name)), name
    for name in ["similarities.csv", "region_report.csv"]:
        with open(os.path.join(out, name)) as a, open(os.path.join(cli_run, name)) as b:
            assert a.read() == b.read(), name
    # similarities_long.csv differs only in nothing: same inputs, same paths
    with open(os.path.join(out, "similarities_long.csv")) as a, open(os.path.join(cli_run, "similarities_long.csv")) as b:
        assert a.read() == b.read()
    with open(os.path.join(out, "run.json")) as f:
        written = json.load(f)
    with open(os.path.join(cli_run, "run.json")) as f:
        cli_json = json.load(f)
    for key in ["config", "weights", "inputs", "regions", "layers", "pairs", "forward_passes", "unlisted_labels"]:
        assert written[key] == cli_json[key] == r.run[key], key
    assert r.run["command"].startswith("volfeat.extract(ct=")
    assert r.run["forward_passes"] == 1 and r.run["weights"]["kind"] == "seeded-init"
    rep = pd.read_csv(os.path.join(cli_run, "region_report.csv"), keep_default_na=False, dtype={"region": str})
    assert list(r.region_report["region"]) == list(rep["region"])
    assert np.array_equal(r.region_report["voxels"].to_numpy(), rep["voxels"].to_numpy())


def test_arrays_in_equal_files_in(pelvis, weights, api_run):
    """The same CT and mask as numpy arrays (CT as int16, mask as uint8) give the files' features exactly."""
    r_files, _ = api_run
    ct, spacing, affine = volfeat.read_nifti(pelvis["ct"])
    mask, mspacing, _ = volfeat.read_nifti(pelvis["mask"], labels=True)
    assert ct.shape == mask.shape == (112, 101, 122) and ct.dtype == np.float32 and mask.dtype == np.int32
    assert spacing == mspacing == pytest.approx((3.0, 3.0, 3.0))
    assert affine.shape == (4, 4) and affine[3, 3] == 1
    assert set(np.unique(mask)) == {0, 1, 2}
    assert np.array_equal(ct, np.round(ct))  # integral HU: int16 holds it exactly
    r = volfeat.extract(ct=ct.astype(np.int16), mask=mask.astype(np.uint8), spacing=spacing,
                        labels={"femur": 1, "hip": 2}, weights=weights, inflate="i3d-mean", layers=LAYERS,
                        threads=THREADS, quiet=True)
    assert set(r.features) == set(r_files.features)
    for key, v in r_files.features.items():
        assert np.array_equal(r.features[key], v), key
    assert np.array_equal(r.similarities.to_numpy(), r_files.similarities.to_numpy())
    assert r.run["inputs"]["ct"]["path"] == "ct: numpy array (112,101,122) int16"
    assert r.run["inputs"]["grid_after_preprocessing"]["spacing_dhw_mm"] == [3.0, 3.0, 3.0]


def test_array_mask_input_mode_and_max_pool_on_crop(pelvis, weights, cli, tmp_path):
    """mask-input mode, max pooling, crop and a Fortran-ordered float64 CT: API == CLI on the same voxels."""
    ct, spacing, affine = volfeat.read_nifti(pelvis["ct"])
    mask, _, _ = volfeat.read_nifti(pelvis["mask"], labels=True)
    opts = dict(labels={"femur": 1, "hip": 2}, weights=weights, layers=["denseblock1", "transition1"],
                mode="mask-input", pool="max", crop_to_labels=6.0, threads=THREADS, quiet=True)
    r = volfeat.extract(ct=np.asfortranarray(ct.astype(np.float64)), mask=mask.astype(np.float32), affine=affine,
                        **opts)
    out = str(tmp_path / "cli")
    run_cli(cli, "extract", "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels", "femur=1,hip=2",
            "--weights", weights, "--layers", "denseblock1,transition1", "--mode", "mask-input", "--pool", "max",
            "--crop-to-labels", "6", "--threads", str(THREADS), "--quiet", "--out", out)
    ref = read_npz(os.path.join(out, "features.npz"))
    assert r.run["forward_passes"] == 3
    for key, v in ref.items():
        assert np.array_equal(r.features[tuple(key.split("/", 1))], v), key


def test_phantom_default_and_progress_on_stderr(capfd):
    """No ct: the built-in phantom with the seeded random network; progress on stderr unless quiet."""
    r = volfeat.extract(layers="denseblock1", resample=4, threads=THREADS)
    err = capfd.readouterr().err
    assert "volfeat: no --ct given: running on the built-in synthetic knee phantom" in err
    assert "forward pass" in err
    assert list(r.similarities.index) == ["femur-tibia", "femur-background", "tibia-background"]
    assert r.run["weights"]["kind"] == "random" and r.run["inputs"]["phantom"] is True
    volfeat.extract(layers="denseblock1", resample=4, threads=THREADS, quiet=True)
    assert capfd.readouterr().err == ""


def test_precision_keyword_is_the_cli_option():
    """precision= is --precision: run["precision"] says what ran (bf16 where the CPU has AVX512-BF16), the
    features move by less than 1e-2 of the layer's scale, and an unknown value is the CLI's error line."""
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    bf16 = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"} <= set(flags)
    r32 = volfeat.extract(layers="denseblock1", resample=4, threads=THREADS, quiet=True)
    r16 = volfeat.extract(layers="denseblock1", resample=4, threads=THREADS, quiet=True, precision="bf16")
    assert r32.run["precision"] == "float32"
    assert r16.run["precision"] == ("bf16" if bf16 else "float32")
    assert (r16.run["precision_note"] == "") == bf16
    assert r32.run["precision_kernels"] is None
    assert (r16.run["precision_kernels"] or "").startswith("bf16 kernels: " if bf16 else ""), r16.run
    scale = max(np.abs(v).max() for v in r32.features.values())
    err = max(np.abs(r16.features[k] - r32.features[k]).max() for k in r32.features)
    assert (0 < err <= 1e-2 * scale) if bf16 else err == 0, err / scale
    with pytest.raises(ValueError, match="--precision fp16: expected float32"):
        volfeat.extract(layers="denseblock1", resample=4, quiet=True, precision="fp16")


def test_stream_weights_keyword_is_the_cli_option(tmp_path):
    """stream_weights= is --stream-weights: the same features bit for bit, run["stream_weights"] names the
    directory (None without it)."""
    if in_memory_fs(tmp_path):
        pytest.skip(f"{tmp_path} is on a tmpfs, where streaming is refused (test_network.py checks the error)")
    r0 = volfeat.extract(layers="denseblock1", resample=4, threads=THREADS, quiet=True)
    r1 = volfeat.extract(layers="denseblock1", resample=4, threads=THREADS, quiet=True, stream_weights=tmp_path)
    assert r0.run["stream_weights"] is None and r1.run["stream_weights"] == str(tmp_path)
    assert sorted(r0.features) == sorted(r1.features)
    for k in r0.features:
        assert np.array_equal(r0.features[k], r1.features[k]), k


@pytest.mark.parametrize("command", ["extract", "sweep", "landmarks", "preprocess", "report"])
def test_every_cli_option_is_a_keyword(cli, command):
    """The keywords are the CLI's options, all of them: each option `volfeat COMMAND --help` lists is a keyword of
    volfeat.COMMAND() and each keyword an option (a sweep's --mode and --pool excepted: the CLI refuses them in a
    sweep, which takes --modes and --pools)."""
    import re
    text = run_cli(cli, command, "--help").stdout
    options = {m.group(1).replace("-", "_") for m in re.finditer(r"^\s+(?:-\w,\s*)?--([a-z][a-z0-9-]*)", text, re.M)}
    options.discard("help")
    assert {"ct", "mask", "threads", "quiet"} <= options, text
    table = dict({"extract": volfeat._EXTRACT, "sweep": volfeat._SWEEP, "landmarks": volfeat._LANDMARKS,
                  "preprocess": volfeat._PREPROCESS, "report": volfeat._REPORT}[command])
    if command == "sweep":
        options -= {"mode", "pool"}
    assert sorted(options - set(table)) == [], f"volfeat {command} options that volfeat.{command}() lacks"
    assert sorted(set(table) - options) == [], f"volfeat.{command}() keywords that volfeat {command} lacks"


def test_preprocessing_keywords_are_the_cli_options(cli, pelvis, tmp_path):
    """denoise= and contrast= are --denoise and --contrast: from files and from arrays, the CLI's features bit for
    bit, and not those of the same call without them; wait_lock= is --wait-lock (nothing holds the directory)."""
    layers = ["conv0", "pool0"]
    pre = dict(denoise="gaussian:2", contrast="clahe")
    out = str(tmp_path / "cli")
    run_cli(cli, "extract", "--ct", pelvis["ct"], "--mask", pelvis["mask"], "--labels", pelvis["labels"],
            "--layers", ",".join(layers), "--denoise", pre["denoise"], "--contrast", pre["contrast"],
            "--threads", str(THREADS), "--quiet", "--out", out)
    ref = read_npz(os.path.join(out, "features.npz"))
    common = dict(labels=pelvis["labels"], layers=layers, threads=THREADS, quiet=True)
    files = volfeat.extract(ct=pelvis["ct"], mask=pelvis["mask"], out=str(tmp_path / "api"), wait_lock=5, **pre,
                            **common)
    ct, spacing, affine = volfeat.read_nifti(pelvis["ct"])
    labels, _, _ = volfeat.read_nifti(pelvis["mask"], labels=True)
    arrays = volfeat.extract(ct=ct, mask=labels, affine=affine, **pre, **common)
    plain = volfeat.extract(ct=pelvis["ct"], mask=pelvis["mask"], **common)
    assert files.run["config"]["denoise"] == "gaussian:2" and files.run["config"]["contrast"] == "clahe", files.run
    assert len(ref) == 3 * len(layers)
    for key, v in ref.items():
        k = tuple(key.split("/", 1))
        assert np.array_equal(files.features[k], v), key
        assert np.array_equal(arrays.features[k], v), key
        assert not np.array_equal(plain.features[k], v), key
