"""Fixtures of the Python module's tests (tests/CMakeLists.txt runs them under ctest as test_python_module).

Environment, set by ctest: PYTHONPATH=BUILD/python, VOLFEAT_CLI (the volfeat binary), VOLFEAT_TORCH_DATA (the
torch_fx fixture: dn121_2d.npz and the ref_*.npz files of tests/torch/densenet_reference.py) and
VOLFEAT_SHARED_DIR (../shared, for data/pelvis_ct).
"""
import os
import subprocess

import numpy as np
import pytest

import volfeat

THREADS = 2  # the API and the CLI run with the same thread count, so bit-equality is a fair demand


def _env_path(name):
    value = os.environ.get(name, "")
    if not value:
        pytest.skip(f"${name} is not set (run these tests through ctest)")
    return value


@pytest.fixture(scope="session")
def cli():
    path = _env_path("VOLFEAT_CLI")
    assert os.access(path, os.X_OK), f"no volfeat binary at {path}"
    return path


@pytest.fixture(scope="session")
def torch_data():
    d = _env_path("VOLFEAT_TORCH_DATA")
    if not os.path.isfile(os.path.join(d, "dn121_2d.npz")):
        pytest.skip(f"{d}/dn121_2d.npz is absent: the torch_reference fixture did not run (no torch?)")
    return d


@pytest.fixture(scope="session")
def weights(torch_data):
    return os.path.join(torch_data, "dn121_2d.npz")


@pytest.fixture(scope="session")
def pelvis():
    d = os.path.join(_env_path("VOLFEAT_SHARED_DIR"), "data", "pelvis_ct")
    ct, mask = os.path.join(d, "ct.nii.gz"), os.path.join(d, "femur1_hip2.nii.gz")
    if not (os.path.isfile(ct) and os.path.isfile(mask)):
        pytest.skip(f"no pelvis CT in {d}")
    return {"ct": ct, "mask": mask, "labels": "femur=1,hip=2"}


def in_memory_fs(path):
    """True when path lies on a tmpfs or ramfs, where --stream-weights / stream_weights= is refused."""
    path, best, kind = os.path.realpath(path), "", ""
    with open("/proc/mounts") as f:
        for line in f:
            mount, fs = line.split()[1:3]
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, fs
    return kind in ("tmpfs", "ramfs")


def run_cli(cli, *args, check=True):
    p = subprocess.run([cli, *args], capture_output=True, text=True, timeout=900)
    if check:
        assert p.returncode == 0, f"volfeat {' '.join(args)} failed:\n{p.stderr}"
    return p


def cli_error(cli, *args):
    """The message of the CLI's one `volfeat: error: ...` line for these arguments."""
    p = run_cli(cli, *args, check=False)
    assert p.returncode == 1, f"expected exit 1 from volfeat {' '.join(args)}, got {p.returncode}:\n{p.stderr}"
    lines = [l for l in p.stderr.splitlines() if l.startswith("volfeat: error: ")]
    assert len(lines) == 1, p.stderr
    return lines[0][len("volfeat: error: "):]


def read_npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
