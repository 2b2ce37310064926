"""volfeat.Network.forward against PyTorch (tests/torch/densenet_reference.py's reference files)."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import volfeat
from conftest import in_memory_fs

REL_TOL = 1e-4


def load_reference(torch_data, name):
    path = os.path.join(torch_data, name)
    if not os.path.isfile(path):
        pytest.skip(f"{path} is absent (torch_reference fixture)")
    with np.load(path) as z:
        outs = {k[len("out/"):]: z[k] for k in z.files if k.startswith("out/")}
        return z["input"], outs


@pytest.mark.parametrize("ref_name, inflate, axis, stem", [
    ("ref_i3d_32.npz", "i3d-mean", "D", "sum"),
    ("ref_centre_odd.npz", "centre", "D", "sum"),
    ("ref_i3d_axisH_mean.npz", "i3d-mean", "H", "mean"),
])
def test_forward_matches_pytorch_every_module(torch_data, weights, ref_name, inflate, axis, stem):
    x, ref = load_reference(torch_data, ref_name)
    assert x.shape[:2] == (1, 1) and len(ref) > 400  # every module of DenseNet-121's features
    net = volfeat.Network(weights, inflate=inflate, axis=axis, stem=stem, quiet=True)
    assert net.arch == "densenet121" and net.kind == "seeded-init" and net.input_channels == 1
    names = [n for n in ref if n in set(net.modules())]
    assert len(names) == len(ref), f"modules torch recorded that volfeat lacks: {sorted(set(ref) - set(names))[:5]}"
    got = net.forward(x[0, 0], layers=names)
    assert list(got) == names
    worst = (0.0, "")
    for name in names:
        want = ref[name][0]  # (C, D, H, W)
        g = got[name]
        assert g.dtype == np.float32 and g.shape == want.shape, (name, g.shape, want.shape)
        rel = float(np.max(np.abs(g - want)) / max(np.max(np.abs(want)), 1e-30))
        worst = max(worst, (rel, name))
        assert rel <= REL_TOL, f"{name}: max |diff| / max |ref| = {rel:.3g}"
    print(f"{ref_name}: {len(names)} modules, worst relative difference {worst[0]:.3g} at {worst[1]}")


def test_forward_inputs_and_names(torch_data, weights):
    """(D,H,W) float32 read in place, other dtypes/orders converted; (1,D,H,W) too; short names kept as keys."""
    x, ref = load_reference(torch_data, "ref_i3d_32.npz")
    net = volfeat.Network(weights, inflate="i3d-mean", quiet=True)
    a = net.forward(x[0, 0], layers=["denseblock1", "transition2"])
    assert list(a) == ["denseblock1", "transition2"]
    assert a["denseblock1"].shape == (256, 8, 8, 8) and a["transition2"].shape == (256, 2, 2, 2)
    assert np.array_equal(a["denseblock1"], ref["features.denseblock1"][0]) or \
        np.max(np.abs(a["denseblock1"] - ref["features.denseblock1"][0])) <= REL_TOL * np.max(np.abs(ref["features.denseblock1"]))
    b = net.forward(np.asfortranarray(x[0, 0].astype(np.float64)), layers=["features.denseblock1"])
    c = net.forward(x[0], layers="denseblock1")
    assert np.array_equal(b["features.denseblock1"], a["denseblock1"])
    assert np.array_equal(c["denseblock1"], a["denseblock1"])
    assert net.resolve("conv[-1]") == "features.denseblock4.denselayer16.conv2"


def test_seeded_random_network_is_deterministic():
    x = np.random.default_rng(0).standard_normal((29, 31, 30)).astype(np.float32)
    n1 = volfeat.Network(arch="densenet121", seed=0, quiet=True)
    n2 = volfeat.Network(arch="densenet121", seed=0, quiet=True)
    n3 = volfeat.Network(arch="densenet121", seed=1, quiet=True)
    assert n1.kind == "random"
    a, b, c = (n.forward(x, ["transition1"])["transition1"] for n in (n1, n2, n3))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.isfinite(a).all() and a.std() > 0


def test_ctrl_c_stops_a_forward():
    """SIGINT during a long forward pass raises KeyboardInterrupt long before the pass would end."""
    net = volfeat.Network(arch="densenet121", seed=0, quiet=True)
    x = np.zeros((96, 96, 96), np.float32)
    net.forward(x, ["denseblock4"])  # built for 96^3, its memory first touched
    t0 = time.perf_counter()
    net.forward(x, ["denseblock4"])
    full = time.perf_counter() - t0  # a warm 96^3 pass
    # The signal at a quarter of a warm pass, by this machine's own speed. A fixed 0.3 s came after the whole
    # 96^3 pass (0.14-0.17 s) on a Zen 4 whenever the test ran alone; twice a cold 48^3 pass came after it on
    # a Zen 5 under ctest -j2 (session 43: its page faults cost about 12 us each, so cold passes are slow).
    # Had the pass ended first, the signal would interrupt whatever pytest ran next.
    timer = threading.Timer(full / 4, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        net.forward(x, ["denseblock4"])
    stopped = time.perf_counter() - t0
    timer.join()
    assert stopped < full + 1.0, f"stopped after {stopped:.2f} s (a warm 96^3 pass takes {full:.2f} s)"
    # the network still works afterwards
    assert net.forward(np.zeros((32, 32, 32), np.float32), ["denseblock1"])["denseblock1"].shape == (256, 8, 8, 8)


def _cpu_has_bf16():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"} <= set(line.split(":", 1)[1].split())
    return False


def test_precision_bf16_against_float32():
    """precision="bf16" (issue #17): within 1e-2 of float32 per module, relative to its largest value;
    float32 with a note where the CPU lacks AVX512-BF16; an unknown precision is a ValueError."""
    x = np.random.default_rng(3).standard_normal((24, 24, 24)).astype(np.float32)
    layers = ["denseblock1", "transition2", "denseblock3"]
    want = volfeat.Network(arch="densenet121", seed=0, quiet=True).forward(x, layers)
    net = volfeat.Network(arch="densenet121", seed=0, quiet=True, precision="bf16")
    got = net.forward(x, layers)
    if not _cpu_has_bf16():
        assert net.precision == "float32" and net.precision_note.endswith("running float32"), net.precision_note
        assert net.precision_kernels == "", net.precision_kernels
        for n in layers:
            assert np.array_equal(got[n], want[n]), n
        return
    assert net.precision == "bf16" and net.precision_note == ""
    assert net.precision_kernels.startswith("bf16 kernels: "), net.precision_kernels
    for n in layers:
        err = np.abs(got[n] - want[n]).max() / np.abs(want[n]).max()
        assert 0 < err <= 1e-2, (n, err)
    with pytest.raises(ValueError, match="--precision fp16: expected float32"):
        volfeat.Network(arch="densenet121", quiet=True, precision="fp16")


def test_stream_weights_equals_in_memory(tmp_path):
    """stream_weights=DIR: the packed weights in an unlinked file there, one step's held at a time; the same
    outputs bit for bit; .stream_weights names the directory; a missing one is a ValueError naming it."""
    x = np.random.default_rng(4).standard_normal((20, 22, 21)).astype(np.float32)
    layers = ["maxpool", "layer1", "layer3", "layer4"]
    want = volfeat.Network(arch="resnet18", seed=0, quiet=True).forward(x, layers)
    if in_memory_fs(tmp_path):
        with pytest.raises(ValueError, match="a tmpfs/ramfs directory is memory"):
            volfeat.Network(arch="resnet18", seed=0, quiet=True, stream_weights=tmp_path)
        pytest.skip(f"{tmp_path} is on a tmpfs, where streaming is refused (checked above)")
    net = volfeat.Network(arch="resnet18", seed=0, quiet=True, stream_weights=tmp_path)
    assert net.stream_weights == str(tmp_path)
    assert volfeat.Network(arch="resnet18", quiet=True).stream_weights is None
    for _ in range(2):  # the second pass maps the weights back in
        got = net.forward(x, layers)
        for n in layers:
            assert np.array_equal(got[n], want[n]), n
    assert os.listdir(tmp_path) == []  # the file was unlinked from the start
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match=f"--stream-weights {missing}: No such file or directory"):
        volfeat.Network(arch="resnet18", quiet=True, stream_weights=missing)
