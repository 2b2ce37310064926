#!/usr/bin/python3
"""Independent PyTorch reference for volfeat's inflated 3D DenseNet (the oracle the C++ tests compare against).

PyTorch is only the oracle here, never volfeat's runtime. Everything below is float32 unless ``--double``
(float64 compute; stored outputs are still float32).

Inflation (``inflate_state_dict``)
    Volumes are (D, H, W). Every 2D conv weight (O, I, kh, kw) becomes a 3D weight (O, I, kD, kH, kW):

    * ``axis='D'``: the 2D (h, w) axes become (H, W); the new axis D gets k = kh taps.
    * ``axis='H'``: the 2D axes become (D, W); the new axis H gets k = kh taps.
    * ``axis='W'``: the 2D axes become (D, H); the new axis W gets k = kh taps.

    Schemes: ``i3d-mean`` puts w2 / k at every tap along the new axis; ``centre`` puts w2 at tap k // 2 and
    zeros elsewhere. The stem ``features.conv0.weight`` (I = 3) is collapsed over its input channels: ``sum``
    (keepdim, I = 1), ``mean``, or ``none`` (keep 3 channels; used by the self-test). Everything else
    (BatchNorm, classifier, num_batches_tracked) is carried over unchanged.

3D network (``DenseNet3d``)
    torchvision's DenseNet converted module by module (same module names): Conv2d -> Conv3d with
    kernel/stride/padding/dilation given the same value along the new axis, BatchNorm2d -> BatchNorm3d,
    MaxPool2d(3, 2, 1) -> MaxPool3d(3, 2, 1), AvgPool2d(2, 2) -> AvgPool3d(2, 2) (count_include_pad=True),
    conv0 with 1 input channel. torchvision's own _DenseLayer/_DenseBlock forward code is reused (torch.cat on
    channels is dimension-agnostic), so a denselayer outputs only its 32 new channels and a denseblock outputs
    the concatenation of its input and all new channels. Eval mode, no_grad, strict state-dict loading.

Recorded outputs
    A forward hook on every named submodule of ``features`` (leaves and containers) stores a ``.clone()`` of its
    output (torchvision's ReLUs are in place and would overwrite the norm outputs) under ``out/<name>``, e.g.
    ``out/features.denseblock1.denselayer1.conv2``, ``out/features.denseblock1``, ``out/features.norm5``, in
    execution order, NC(D)HW, float32. ``features`` itself is not stored (it equals ``out/features.norm5``).

Modes
    A  ``--make-weights OUT2D.npz [--seed S] [--randomize-bn] [--arch A]``: the export of
       weights/export_torchvision.py.
    B  ``--weights W2D.npz --scheme i3d-mean|centre --axis D|H|W --stem sum|mean --shape 1,1,D,H,W
       --input-seed S --out REF.npz [--stop-after MODULE] [--double]``: input = torch.randn(shape,
       generator=torch.Generator().manual_seed(S)) in float32; writes ``input``, ``out/...``, ``meta``.
       With ``--stop-after``, the forward pass is aborted right after that module (so a thin volume still
       yields its early taps).
    C  ``--invariance --weights W2D.npz --shape2d 1,3,H,W --depth D --input-seed S --out REF2D.npz``: the
       original 2D torchvision network on a gray image torch.randn((1,1,H,W), seeded S) replicated into the 3
       RGB channels; writes ``input`` (the gray image, 1x1xHxW), ``out/...`` (NCHW) and ``meta`` (which holds
       ``depth``, the D the C++ test should use for its volume constant along D).
    D  ``--all OUTDIR``: the fixed set the C++ tests use (see ALL_SET); files whose stored arguments match are
       not regenerated (``--force`` regenerates).
    E  ``--selftest``: checks the defining properties of the inflation in PyTorch itself.

``meta`` (and the weights' ``volfeat_meta``) is a 1-D uint8 array of UTF-8 JSON. If torch cannot be imported,
the script prints a SKIP line and exits 77 (CTest's skip code).
"""

import argparse
import copy
import os
import sys
import time

SKIP_CODE = 77

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
except Exception as exc:  # noqa: BLE001 - any import failure means "cannot produce references"
    print(f"SKIP: torch/torchvision not importable with /usr/bin/python3 ({exc!r}) "
          f"— install python3-torch python3-torchvision")
    sys.exit(SKIP_CODE)

_HERE = os.path.dirname(os.path.abspath(__file__))
_WEIGHTS_DIR = os.path.normpath(os.path.join(_HERE, "..", "..", "weights"))
if _WEIGHTS_DIR not in sys.path:
    sys.path.insert(0, _WEIGHTS_DIR)
sys.dont_write_bytecode = True  # keep weights/ free of __pycache__ when imported from a test run
import export_torchvision as xt  # noqa: E402

# Bump when the content of generated files changes for the same arguments, so --all regenerates them.
GENERATOR_VERSION = 1

SCHEMES = ("i3d-mean", "centre")
AXES = ("D", "H", "W")
STEMS = ("sum", "mean", "none")
STEM_KEY = "features.conv0.weight"

# Mode D: the fixed reference set read by the C++ tests. Every volume shape passes all transitions
# (a full DenseNet needs >= 29 voxels per axis: ceil(n / 4) >= 8), except ref_thin which stops early.
ALL_WEIGHTS = dict(name="dn121_2d.npz", arch="densenet121", seed=0, randomize_bn=True)
ALL_SET = [
    dict(name="ref_i3d_32.npz", kind="3d", scheme="i3d-mean", axis="D", stem="sum",
         shape=(1, 1, 32, 32, 32), input_seed=1, stop_after=None),
    dict(name="ref_centre_odd.npz", kind="3d", scheme="centre", axis="D", stem="sum",
         shape=(1, 1, 29, 37, 31), input_seed=2, stop_after=None),
    dict(name="ref_i3d_axisH_mean.npz", kind="3d", scheme="i3d-mean", axis="H", stem="mean",
         shape=(1, 1, 33, 30, 35), input_seed=3, stop_after=None),
    dict(name="ref_thin.npz", kind="3d", scheme="i3d-mean", axis="D", stem="sum",
         shape=(1, 1, 19, 32, 27), input_seed=4, stop_after="features.denseblock2"),
    dict(name="ref_2d_invariance.npz", kind="2d", shape2d=(1, 3, 40, 40), depth=32, input_seed=5),
]


# ----------------------------------------------------------------------------------------------------------
# inflation
# ----------------------------------------------------------------------------------------------------------
def _new_axis_dim(axis):
    """Index (2, 3 or 4) of the inflated axis in an (O, I, kD, kH, kW) weight."""
    return {"D": 2, "H": 3, "W": 4}[axis]


def inflate_tuple(pair, axis, new=None):
    """Place a 2D (a, b) kernel/stride/padding/dilation into (D, H, W); the new axis gets ``new`` (default a)."""
    a, b = (pair, pair) if isinstance(pair, int) else tuple(pair)
    n = a if new is None else new
    return {"D": (n, a, b), "H": (a, n, b), "W": (a, b, n)}[axis]


def inflate_conv_weight(w2, scheme, axis):
    """Inflate one (O, I, kh, kw) conv weight into (O, I, kD, kH, kW) (see the module docstring)."""
    if w2.dim() != 4:
        raise ValueError(f"expected a 4-D conv weight, got shape {tuple(w2.shape)}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}")
    k = w2.shape[2]  # taps along the new axis: k = kh
    d = _new_axis_dim(axis)
    shape3 = list(w2.shape)
    shape3.insert(d, k)
    w = w2.unsqueeze(d)  # (O, I, 1, kh, kw) for D; (O, I, kh, 1, kw) for H; (O, I, kh, kw, 1) for W
    if scheme == "i3d-mean":
        return (w.expand(*shape3) / k).contiguous()
    w3 = torch.zeros(shape3, dtype=w2.dtype)
    idx = [slice(None)] * 5
    idx[d] = slice(k // 2, k // 2 + 1)
    w3[tuple(idx)] = w
    return w3


def collapse_stem(w, stem):
    """Collapse the stem's 3 input channels: 'sum' or 'mean' over I (keepdim), or 'none'."""
    if stem == "sum":
        return w.sum(dim=1, keepdim=True)
    if stem == "mean":
        return w.mean(dim=1, keepdim=True)
    if stem == "none":
        return w
    raise ValueError(f"unknown stem collapse {stem!r}")


def inflate_state_dict(sd2d, scheme, axis, stem):
    """Inflate a 2D DenseNet state_dict: every 4-D tensor is a conv weight; all else is copied unchanged."""
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}")
    out = {}
    for key, t in sd2d.items():
        if t.dim() == 4:
            w3 = inflate_conv_weight(t, scheme, axis)
            out[key] = collapse_stem(w3, stem) if key == STEM_KEY else w3
        else:
            out[key] = t.clone()
    return out


# ----------------------------------------------------------------------------------------------------------
# networks
# ----------------------------------------------------------------------------------------------------------
def _convert_to_3d(module, axis, stem_in_channels):
    """Replace, in place, every 2D leaf of ``module`` by its 3D counterpart (recursively)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d):
            if child.groups != 1 or child.padding_mode != "zeros":
                raise ValueError(f"unsupported Conv2d {name}: {child}")
            in_ch = stem_in_channels if name == "conv0" else child.in_channels
            new = nn.Conv3d(in_ch, child.out_channels,
                            kernel_size=inflate_tuple(child.kernel_size, axis),
                            stride=inflate_tuple(child.stride, axis),
                            padding=inflate_tuple(child.padding, axis),
                            dilation=inflate_tuple(child.dilation, axis),
                            bias=child.bias is not None)
        elif isinstance(child, nn.BatchNorm2d):
            new = nn.BatchNorm3d(child.num_features, eps=child.eps, momentum=child.momentum,
                                 affine=child.affine, track_running_stats=child.track_running_stats)
        elif isinstance(child, nn.MaxPool2d):
            new = nn.MaxPool3d(kernel_size=inflate_tuple(child.kernel_size, axis),
                               stride=inflate_tuple(child.stride, axis),
                               padding=inflate_tuple(child.padding, axis),
                               dilation=inflate_tuple(child.dilation, axis),
                               ceil_mode=child.ceil_mode)
        elif isinstance(child, nn.AvgPool2d):
            new = nn.AvgPool3d(kernel_size=inflate_tuple(child.kernel_size, axis),
                               stride=inflate_tuple(child.stride, axis),
                               padding=inflate_tuple(child.padding, axis),
                               ceil_mode=child.ceil_mode, count_include_pad=child.count_include_pad,
                               divisor_override=child.divisor_override)
        elif isinstance(child, (nn.ReLU, nn.Identity)):
            continue
        elif len(list(child.children())) > 0:
            _convert_to_3d(child, axis, stem_in_channels)
            continue
        else:
            raise TypeError(f"no 3D conversion for {name}: {type(child).__name__}")
        setattr(module, name, new)


def _features_state(sd):
    """The ``features.`` entries of a full state_dict, prefix removed."""
    return {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}


class DenseNet3d(nn.Module):
    """torchvision's DenseNet ``features`` converted to 3D and loaded with an inflated state dict.

    Only ``features`` exists (``self.features``), so module names match torchvision's exactly; the classifier
    is ignored. Build with :meth:`from_2d`.
    """

    def __init__(self, arch, axis, stem_in_channels):
        super().__init__()
        self.features = copy.deepcopy(xt.construct_model(arch).features)
        _convert_to_3d(self.features, axis, stem_in_channels)

    @classmethod
    def from_2d(cls, sd2d, arch="densenet121", scheme="i3d-mean", axis="D", stem="sum", dtype=torch.float32):
        """Inflate ``sd2d`` (in ``dtype``) and load it strictly into a new 3D network of that dtype."""
        sd3 = inflate_state_dict(_cast(sd2d, dtype), scheme, axis, stem)
        net = cls(arch, axis, sd3[STEM_KEY].shape[1]).to(dtype)
        net.features.load_state_dict(_features_state(sd3), strict=True)
        return net.eval()

    def forward(self, x):
        return self.features(x)


def _cast(sd, dtype):
    """``sd`` with its floating-point tensors converted to ``dtype`` (integers, e.g. num_batches_tracked, kept)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}


def build_2d(sd2d, arch="densenet121", dtype=torch.float32):
    """The original torchvision 2D DenseNet of ``dtype`` loaded (strictly) with ``sd2d``, eval mode."""
    net = xt.construct_model(arch).to(dtype)
    net.load_state_dict(_cast(sd2d, dtype), strict=True)
    return net.eval()


class _StopForward(Exception):
    pass


def run_recorded(net, x, stop_after=None):
    """Run ``net.features`` on ``x``; return {'features.<name>': output clone} in execution order.

    With ``stop_after``, the pass is aborted right after that module's output is recorded.
    """
    names = {"features." + n: m for n, m in net.features.named_modules() if n}
    if stop_after is not None:
        if not stop_after.startswith("features."):
            stop_after = "features." + stop_after
        if stop_after not in names:
            raise ValueError(f"--stop-after: no module named {stop_after!r}")
    recorded, handles = {}, []

    def recorder(full):
        def hook(_mod, _inp, out):
            recorded[full] = out.detach().clone()
        return hook

    def stopper(_mod, _inp, _out):
        raise _StopForward()

    try:
        for full, m in names.items():
            handles.append(m.register_forward_hook(recorder(full)))
        if stop_after is not None:  # registered last: runs after the recorder of the same module
            handles.append(names[stop_after].register_forward_hook(stopper))
        with torch.no_grad():
            try:
                net.features(x)
            except _StopForward:
                pass
    finally:
        for h in handles:
            h.remove()
    return recorded


# ----------------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------------
def load_weights_npz(path):
    """Read a volfeat 2D weights .npz; return ``(state_dict of torch tensors, volfeat_meta or {})``."""
    sd, meta = {}, {}
    with np.load(path) as z:
        for key in z.files:
            if key == xt.META_KEY:
                meta = xt.array_to_meta(z[key])
            else:
                sd[key] = torch.from_numpy(np.array(z[key]))
    return sd, meta


def read_meta(path, key):
    """The JSON metadata stored under ``key`` in an existing .npz, or None if missing/unreadable."""
    try:
        with np.load(path) as z:
            return xt.array_to_meta(z[key]) if key in z.files else None
    except Exception:  # noqa: BLE001 - a damaged file simply gets regenerated
        return None


def _parse_shape(text, n):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}") from None
    if len(shape) != n or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected {n} positive comma-separated integers")
    return shape


def _dtype(double):
    return torch.float64 if double else torch.float32


def _outputs_to_arrays(recorded):
    return {"out/" + k: v.to(torch.float32).contiguous().numpy() for k, v in recorded.items()}


def make_weights(out, arch="densenet121", seed=0, randomize_bn=False, force=False):
    """Mode A. Returns True if the file was (re)written."""
    old = None if force or not os.path.exists(out) else read_meta(out, xt.META_KEY)
    if old is not None and old.get("source") == "seeded-init" and old.get("arch") == arch \
            and old.get("seed") == seed and old.get("randomized_bn") == bool(randomize_bn):
        return False
    meta = xt.export(out, arch=arch, seed=seed, randomize_bn=randomize_bn)
    print(xt.describe(out, meta))
    return True


def make_reference_3d(weights, out, scheme, axis, stem, shape, input_seed, stop_after=None,
                      double=False, force=False):
    """Mode B. Returns True if the file was (re)written."""
    args = dict(kind="inflated-3d", generator_version=GENERATOR_VERSION, weights_sha256=xt.sha256_file(weights),
                scheme=scheme, axis=axis, stem=stem, shape=list(shape), input_seed=input_seed,
                stop_after=stop_after, dtype="float64" if double else "float32")
    if not force and os.path.exists(out) and (read_meta(out, "meta") or {}).get("args") == args:
        return False
    sd2d, wmeta = load_weights_npz(weights)
    arch = wmeta.get("arch", "densenet121")
    net = DenseNet3d.from_2d(sd2d, arch=arch, scheme=scheme, axis=axis, stem=stem, dtype=_dtype(double))
    x = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(input_seed), dtype=torch.float32)
    try:
        recorded = run_recorded(net, x.to(_dtype(double)), stop_after)
    except RuntimeError as exc:
        if "too small" in str(exc) or "smaller than kernel" in str(exc):
            raise ValueError(f"shape {tuple(shape)} is too small for the network up to "
                             f"{stop_after or 'features.norm5'} ({exc}); the whole network needs >= 29 voxels "
                             f"per axis, otherwise pass --stop-after") from None
        raise
    meta = dict(format="volfeat-reference", args=args, scheme=scheme, axis=axis, stem=stem, shape=list(shape),
                input_seed=input_seed, stop_after=stop_after, layout="NCDHW", stored_dtype="float32",
                weights=os.path.basename(weights), weights_meta=wmeta, arch=arch,
                input_rule="torch.randn(shape, generator=torch.Generator().manual_seed(input_seed), "
                           "dtype=torch.float32)",
                modules=list(recorded), torch=torch.__version__, torchvision=torchvision.__version__)
    arrays = {"input": x.numpy()}
    arrays.update(_outputs_to_arrays(recorded))
    arrays["meta"] = xt.meta_to_array(meta)
    xt.atomic_savez(out, arrays)
    return True


def make_reference_2d(weights, out, shape2d, depth, input_seed, double=False, force=False):
    """Mode C. Returns True if the file was (re)written."""
    n, c, h, w = shape2d
    if c != 3:
        raise ValueError(f"--shape2d must have 3 channels (the gray image is replicated), got {c}")
    args = dict(kind="2d-invariance", generator_version=GENERATOR_VERSION, weights_sha256=xt.sha256_file(weights),
                shape2d=list(shape2d), depth=depth, input_seed=input_seed,
                dtype="float64" if double else "float32")
    if not force and os.path.exists(out) and (read_meta(out, "meta") or {}).get("args") == args:
        return False
    sd2d, wmeta = load_weights_npz(weights)
    arch = wmeta.get("arch", "densenet121")
    net = build_2d(sd2d, arch, dtype=_dtype(double))
    gray = torch.randn((n, 1, h, w), generator=torch.Generator().manual_seed(input_seed), dtype=torch.float32)
    recorded = run_recorded(net, gray.expand(n, 3, h, w).contiguous().to(_dtype(double)))
    meta = dict(format="volfeat-reference", args=args, shape2d=list(shape2d), depth=depth, input_seed=input_seed,
                layout="NCHW", stored_dtype="float32", weights=os.path.basename(weights), weights_meta=wmeta,
                arch=arch,
                input_rule="gray = torch.randn((N,1,H,W), generator=torch.Generator().manual_seed(input_seed), "
                           "dtype=torch.float32); the 2D network sees gray replicated into 3 channels",
                modules=list(recorded), torch=torch.__version__, torchvision=torchvision.__version__)
    arrays = {"input": gray.numpy()}
    arrays.update(_outputs_to_arrays(recorded))
    arrays["meta"] = xt.meta_to_array(meta)
    xt.atomic_savez(out, arrays)
    return True


def _timed(label, fn):
    t0 = time.perf_counter()
    wrote = fn()
    print(f"{label}: {'wrote' if wrote else 'up to date'} in {time.perf_counter() - t0:.2f} s", flush=True)


def make_all(outdir, double=False, force=False):
    """Mode D: the fixed reference set of the C++ tests."""
    t0 = time.perf_counter()
    os.makedirs(outdir, exist_ok=True)
    wpath = os.path.join(outdir, ALL_WEIGHTS["name"])
    _timed(wpath, lambda: make_weights(wpath, arch=ALL_WEIGHTS["arch"], seed=ALL_WEIGHTS["seed"],
                                       randomize_bn=ALL_WEIGHTS["randomize_bn"], force=force))
    for spec in ALL_SET:
        path = os.path.join(outdir, spec["name"])
        if spec["kind"] == "3d":
            fn = lambda s=spec, p=path: make_reference_3d(  # noqa: E731
                wpath, p, s["scheme"], s["axis"], s["stem"], s["shape"], s["input_seed"], s["stop_after"],
                double=double, force=force)
        else:
            fn = lambda s=spec, p=path: make_reference_2d(  # noqa: E731
                wpath, p, s["shape2d"], s["depth"], s["input_seed"], double=double, force=force)
        _timed(path, fn)
    print(f"all references in {outdir} ready in {time.perf_counter() - t0:.2f} s")


# ----------------------------------------------------------------------------------------------------------
# self-test
# ----------------------------------------------------------------------------------------------------------
def _move_axis_to_d(t, axis):
    """View an NCDHW tensor with ``axis`` moved to the D position, the other two in (D,H,W) order after it."""
    perm = {"D": (0, 1, 2, 3, 4), "H": (0, 1, 3, 2, 4), "W": (0, 1, 4, 2, 3)}[axis]
    return t.permute(*perm)


def _constant_volume(img, axis, n):
    """A (N,1,D,H,W) volume constant along ``axis`` (length n) whose other two axes (in D,H,W order) are img."""
    v = img.unsqueeze(2).expand(img.shape[0], img.shape[1], n, img.shape[2], img.shape[3])  # new axis first
    inv = {"D": (0, 1, 2, 3, 4), "H": (0, 1, 3, 2, 4), "W": (0, 1, 3, 4, 2)}[axis]
    return v.permute(*inv).contiguous()


def _interior(length, layers):
    """Indices along the inflated axis whose receptive field lies wholly inside a volume of ``length``.

    ``layers`` is a list of (kernel, stride, padding) applied in order; returns (first, last) or None.
    """
    lo, hi, n = 0, length - 1, length
    for k, s, p in layers:
        n_out = (n + 2 * p - k) // s + 1
        valid = [o for o in range(n_out) if o * s - p >= lo and o * s - p + k - 1 <= hi]
        if not valid:
            return None
        lo, hi, n = valid[0], valid[-1], n_out
    return lo, hi


def _maxrel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def selftest():
    """Check the defining properties of the inflation in PyTorch; return the number of failures."""
    dt = torch.float64
    model2d, _ = xt.build_densenet("densenet121", seed=0, randomize_bn=True)
    sd2d = _cast({k: v.detach().clone() for k, v in model2d.state_dict().items()}, dt)
    net2d = build_2d(sd2d, dtype=dt)
    failures = []

    def check(label, ok, detail=""):
        print(f"  [{'ok' if ok else 'FAIL'}] {label}{(': ' + detail) if detail else ''}", flush=True)
        if not ok:
            failures.append(label)

    # (0) the inflated kernels themselves
    w2 = sd2d["features.denseblock1.denselayer1.conv2.weight"]
    for axis in AXES:
        d = _new_axis_dim(axis)
        wm = inflate_conv_weight(w2, "i3d-mean", axis)
        wc = inflate_conv_weight(w2, "centre", axis)
        check(f"kernel axis {axis}: shapes, i3d-mean sums back to w2, centre slice is w2 and the rest zero",
              wm.shape[d] == 3 and torch.allclose(wm.sum(d), w2, rtol=0, atol=1e-12)
              and torch.equal(wc.select(d, 1), w2) and wc.abs().sum() == w2.abs().sum())
    check("stem: conv0 keeps 7 taps along the new axis, I collapses to 1",
          inflate_state_dict(sd2d, "i3d-mean", "D", "sum")[STEM_KEY].shape == (64, 1, 7, 7, 7))

    # (a) i3d-mean, volume constant along the inflated axis: interior slices of the stem reproduce 2D
    gen = torch.Generator().manual_seed(123)
    img = torch.randn((1, 1, 40, 40), generator=gen, dtype=dt)
    ref2d = run_recorded(net2d, img.expand(1, 3, 40, 40).contiguous(), stop_after="features.pool0")
    n_new = 24
    stem_layers = {"features.conv0": [(7, 2, 3)], "features.norm0": [(7, 2, 3)], "features.relu0": [(7, 2, 3)],
                   "features.pool0": [(7, 2, 3), (3, 2, 1)]}
    for axis in AXES:
        net = DenseNet3d.from_2d(sd2d, scheme="i3d-mean", axis=axis, stem="sum", dtype=dt)
        got = run_recorded(net, _constant_volume(img, axis, n_new), stop_after="features.pool0")
        for name, layers in stem_layers.items():
            lo, hi = _interior(n_new, layers)
            g = _move_axis_to_d(got[name], axis)[:, :, lo:hi + 1]
            r = ref2d[name].unsqueeze(2).expand_as(g)
            err = _maxrel(g, r)
            check(f"(a) i3d-mean axis {axis}, constant volume: {name} slices {lo}..{hi} == 2D", err < 1e-10,
                  f"max rel err {err:.2e}")
        # and the boundary slices must differ (the zero padding along the new axis is real)
        g0 = _move_axis_to_d(got["features.conv0"], axis)[:, :, 0]
        check(f"(a) i3d-mean axis {axis}: boundary slice 0 of conv0 differs from 2D (zero padding)",
              _maxrel(g0, ref2d["features.conv0"]) > 1e-3)

    # (b) sum-collapsed stem on a gray volume == full 3-channel stem on the replicated volume; mean == sum / 3
    vol = torch.randn((1, 1, 13, 15, 14), generator=gen, dtype=dt)
    for axis in AXES:
        for scheme in SCHEMES:
            w_full = inflate_state_dict({STEM_KEY: sd2d[STEM_KEY]}, scheme, axis, "none")[STEM_KEY]
            w_sum = inflate_state_dict({STEM_KEY: sd2d[STEM_KEY]}, scheme, axis, "sum")[STEM_KEY]
            w_mean = inflate_state_dict({STEM_KEY: sd2d[STEM_KEY]}, scheme, axis, "mean")[STEM_KEY]
            ref = F.conv3d(vol.expand(1, 3, *vol.shape[2:]), w_full, stride=2, padding=3)
            e_sum = _maxrel(F.conv3d(vol, w_sum, stride=2, padding=3), ref)
            e_mean = _maxrel(F.conv3d(vol, w_mean, stride=2, padding=3) * 3, ref)
            check(f"(b) stem {scheme} axis {axis}: sum-collapse on gray == 3-channel replicated, mean == sum/3",
                  e_sum < 1e-12 and e_mean < 1e-12, f"{e_sum:.1e}, {e_mean:.1e}")

    # (c) centre scheme, volume constant along the inflated axis: EVERY slice of EVERY module == 2D, whole net
    img = torch.randn((1, 1, 32, 32), generator=gen, dtype=dt)
    ref2d = run_recorded(net2d, img.expand(1, 3, 32, 32).contiguous())
    for axis in AXES:
        net = DenseNet3d.from_2d(sd2d, scheme="centre", axis=axis, stem="sum", dtype=dt)
        got = run_recorded(net, _constant_volume(img, axis, 29))
        worst = max((_maxrel(_move_axis_to_d(got[k], axis), ref2d[k].unsqueeze(2).expand_as(
            _move_axis_to_d(got[k], axis))), k) for k in ref2d)
        check(f"(c) centre axis {axis}, constant volume: all {len(got)} module outputs == 2D on every slice",
              list(got) == list(ref2d) and worst[0] < 1e-9, f"worst {worst[0]:.1e} at {worst[1]}")

    # (d) a run stopped early records exactly the prefix of a full run
    net = DenseNet3d.from_2d(sd2d, scheme="i3d-mean", axis="D", stem="sum")  # float32, as the references
    x = torch.randn((1, 1, 29, 30, 31), generator=gen)
    full = run_recorded(net, x)
    part = run_recorded(net, x, stop_after="features.transition1")
    keys = list(full)
    prefix = keys[:keys.index("features.transition1") + 1]
    check("(d) --stop-after features.transition1 records the full run's prefix, identically",
          list(part) == prefix and all(torch.equal(part[k], full[k]) for k in prefix))
    check("(d) the 29x30x31 volume reaches norm5 with a 1x1x1 map",
          tuple(full["features.norm5"].shape) == (1, 1024, 1, 1, 1))
    check("(d) denselayer outputs 32 channels, denseblock1 outputs 64 + 6*32",
          full["features.denseblock1.denselayer1"].shape[1] == 32 and full["features.denseblock1"].shape[1] == 256)

    print(f"selftest: {'PASSED' if not failures else f'{len(failures)} FAILED'}")
    return len(failures)


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__[__doc__.index("Modes"):],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--make-weights", metavar="OUT2D.npz", help="mode A: export 2D weights")
    mode.add_argument("--invariance", action="store_true", help="mode C: 2D reference on a replicated gray image")
    mode.add_argument("--all", metavar="OUTDIR", help="mode D: the fixed reference set of the C++ tests")
    mode.add_argument("--selftest", action="store_true", help="mode E: check the inflation's properties")
    p.add_argument("--arch", default="densenet121", choices=xt.ARCHS, help="(mode A) architecture")
    p.add_argument("--seed", type=int, default=0, help="(mode A) torch.manual_seed of the initialisation")
    p.add_argument("--randomize-bn", action="store_true", help="(mode A) non-trivial BatchNorm parameters")
    p.add_argument("--weights", metavar="W2D.npz", help="(modes B, C) 2D weights written by mode A")
    p.add_argument("--scheme", choices=SCHEMES, default="i3d-mean", help="(mode B) inflation scheme")
    p.add_argument("--axis", choices=AXES, default="D", help="(mode B) inflated axis")
    p.add_argument("--stem", choices=STEMS[:2], default="sum", help="(mode B) stem input-channel collapse")
    p.add_argument("--shape", type=lambda s: _parse_shape(s, 5), help="(mode B) input shape N,C,D,H,W (C = 1)")
    p.add_argument("--shape2d", type=lambda s: _parse_shape(s, 4), help="(mode C) 2D input shape N,3,H,W")
    p.add_argument("--depth", type=int, default=32, help="(mode C) depth D recorded for the C++ volume")
    p.add_argument("--input-seed", type=int, default=0, help="(modes B, C) seed of the random input")
    p.add_argument("--stop-after", metavar="MODULE", help="(mode B) stop after this module, e.g. "
                   "features.denseblock2")
    p.add_argument("--out", help="(modes B, C) output .npz")
    p.add_argument("--double", action="store_true", help="compute in float64 (outputs stored as float32)")
    p.add_argument("--force", action="store_true", help="regenerate even if the file's stored arguments match")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    args = p.parse_args(argv)

    torch.set_num_threads(max(1, args.threads))
    try:
        return _run(p, args)
    except ValueError as exc:
        print(f"{p.prog}: error: {exc}", file=sys.stderr)
        return 2


def _run(p, args):
    """Dispatch to the selected mode (``p`` reports usage errors)."""

    if args.selftest:
        return 1 if selftest() else 0
    if args.all:
        make_all(args.all, double=args.double, force=args.force)
        return 0
    if args.make_weights:
        _timed(args.make_weights, lambda: make_weights(args.make_weights, arch=args.arch, seed=args.seed,
                                                       randomize_bn=args.randomize_bn, force=args.force))
        return 0
    if not args.weights or not args.out:
        p.error("modes B and C need --weights and --out")
    if args.invariance:
        if args.shape2d is None:
            p.error("--invariance needs --shape2d 1,3,H,W")
        _timed(args.out, lambda: make_reference_2d(args.weights, args.out, args.shape2d, args.depth,
                                                   args.input_seed, double=args.double, force=args.force))
        return 0
    if args.shape is None:
        p.error("mode B needs --shape 1,1,D,H,W")
    if args.shape[1] != 1:
        p.error("--shape: the volume has one channel (N,1,D,H,W)")
    _timed(args.out, lambda: make_reference_3d(args.weights, args.out, args.scheme, args.axis, args.stem,
                                               args.shape, args.input_seed, args.stop_after,
                                               double=args.double, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
