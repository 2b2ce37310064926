#!/usr/bin/python3
"""Independent PyTorch reference for volfeat's ``extract`` procedure (region features + pairwise cosines).

PyTorch is only the oracle here, never volfeat's runtime. The 3D network comes from densenet_reference.py
(``DenseNet3d.from_2d``: torchvision's DenseNet inflated to 3D, torchvision module names, eval mode, float32).

Definitions (volfeat's C++ follows exactly these)
    Volumes     nibabel ``img.get_fdata(dtype=np.float64)`` (scl_slope/inter applied); the array indexed
                [i, j, k] becomes (D, H, W) = (k, j, i), i.e. ``np.transpose(a, (2, 1, 0))``. The mask is read
                the same way and rounded to integers. CT and mask must have the same grid.
    Regions     the ``--labels name=value,...`` in the order given, then ``background`` (label 0) last unless
                ``--no-background``. indicator_r = (mask == value). A label absent from the mask is an error.
    Normalise   ``none``: x; ``window:L,W``: clip((x - (L - W/2)) / W, 0, 1); ``minmax``: (x - min)/(max - min);
                ``zscore``: (x - mean)/std (population, ddof=0). Computed in float64, then cast to float32.
    Network     input (1, 1, D, H, W) float32; inflated with --scheme/--axis/--stem (default i3d-mean, D, sum).
    shared      ONE forward pass on the whole normalised volume; forward hooks clone the requested layers'
                outputs f (1, C, d, h, w). w_r = F.adaptive_avg_pool3d(indicator_r[None, None].double(),
                (d, h, w)). pool ``mean``: v_r = sum_voxels(w_r * f) / sum(w_r) in float64; pool ``max``:
                v_r[c] = max of f[c] over the voxels with w_r > 0. sum(w_r) == 0 is an error.
    mask-input  one forward pass per region on float32(normalised CT) * indicator_r; the WHOLE map is pooled:
                ``mean`` = f.mean over (d, h, w) in float64 (global average pooling), ``max`` = global max.
    Cosine      for every pair i < j in region order, named ``"{a}-{b}"``: dot(va, vb) / (|va| |vb|), float64.

Output (np.savez, written atomically)
    ``cosine``                      float64 (n_pairs, n_layers)
    ``feature/<region>/<layer>``    float64 (C,)
    ``weight/<region>/<layer>``     float64 (d, h, w)      (shared mode only)
    ``meta``                        uint8 UTF-8 JSON: pairs, layers, regions, labels, mode, pool, normalize,
                                    forward_passes, shapes {layer: [C, d, h, w]}, input_shape, voxel_counts,
                                    args (the identity used to skip regeneration), versions.

An existing output whose stored ``args`` equal the current ones is not regenerated (``--force`` does).
If torch cannot be imported the script prints a ``SKIP:`` line and exits 77; errors print one line, exit 2.
"""

import argparse
import json
import os
import sys
import time

SKIP_CODE = 77
ERROR_CODE = 2

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision
    import nibabel as nib
except Exception as exc:  # noqa: BLE001 - any import failure means "cannot produce references"
    print(f"SKIP: torch/torchvision/nibabel/numpy not importable with /usr/bin/python3 ({exc!r})")
    sys.exit(SKIP_CODE)

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
sys.dont_write_bytecode = True
import densenet_reference as dr  # noqa: E402  (exits 77 itself if torch is unusable)
import arch_reference as ar  # noqa: E402  (VGG and ResNet in 3D under torchvision's names)
xt = dr.xt  # weights/export_torchvision.py: meta_to_array, array_to_meta, atomic_savez, sha256_file

# Bump when the content of generated files changes for the same arguments.
GENERATOR_VERSION = 1

MODES = ("shared", "mask-input")
POOLS = ("mean", "max")
BACKGROUND = "background"


class PipelineError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


# ----------------------------------------------------------------------------------------------------------
# argument parsing
# ----------------------------------------------------------------------------------------------------------
def parse_labels(text, background=True):
    """``'femur=1,hip=2'`` -> [('femur', 1), ('hip', 2)] (+ ('background', 0) unless background=False)."""
    regions = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise PipelineError(f"--labels: bad entry {item!r} (expected name=value)")
        if "/" in name:
            raise PipelineError(f"--labels: region name {name!r} must not contain '/'")
        try:
            v = int(value)
        except ValueError:
            raise PipelineError(f"--labels: label value of {name!r} is not an integer: {value!r}") from None
        regions.append((name, v))
    if background:
        regions.append((BACKGROUND, 0))
    names = [n for n, _ in regions]
    values = [v for _, v in regions]
    for n in names:
        if names.count(n) > 1:
            raise PipelineError(f"--labels: region name {n!r} used twice"
                                + (" (background is appended automatically; see --no-background)"
                                   if n == BACKGROUND else ""))
    for v in values:
        if values.count(v) > 1:
            raise PipelineError(f"--labels: label value {v} used twice"
                                + (" (label 0 is the appended background; see --no-background)" if v == 0 else ""))
    if len(regions) < 2:
        raise PipelineError("need at least two regions to form a pair")
    return regions


def parse_normalize(text):
    """``none`` | ``window:L,W`` | ``minmax`` | ``zscore`` -> (kind, params)."""
    t = text.strip()
    if t in ("none", "minmax", "zscore"):
        return t, []
    if t.startswith("window:"):
        parts = t[len("window:"):].split(",")
        try:
            level, width = (float(p) for p in parts)
        except ValueError:
            raise PipelineError(f"--normalize: bad window {text!r} (expected window:L,W)") from None
        if not (np.isfinite(level) and np.isfinite(width)) or width <= 0:
            raise PipelineError(f"--normalize: window width must be positive and finite, got {text!r}")
        return "window", [level, width]
    raise PipelineError(f"--normalize: unknown normalisation {text!r} (none, window:L,W, minmax, zscore)")


def parse_layers(text):
    layers = [s.strip() for s in text.split(",") if s.strip()]
    if not layers:
        raise PipelineError("--layers: no layer given")
    for name in layers:
        if layers.count(name) > 1:
            raise PipelineError(f"--layers: {name!r} given twice")
    return layers


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------
def load_volume_dhw(path, what):
    """nibabel get_fdata (float64, scaling applied) of a 3-D image, transposed (i,j,k) -> (D,H,W) = (k,j,i)."""
    if not os.path.exists(path):
        raise PipelineError(f"{what}: no such file {path!r}")
    try:
        img = nib.load(path)
        a = img.get_fdata(dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        raise PipelineError(f"{what}: cannot read {path!r}: {exc}") from None
    while a.ndim > 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise PipelineError(f"{what}: expected a 3-D image, got shape {a.shape} in {path!r}")
    return np.ascontiguousarray(np.transpose(a, (2, 1, 0))), img.affine


def normalise(x, kind, params):
    """Float64 normalisation of ``x`` (see module docstring); returns float64."""
    if kind == "none":
        return x.copy()
    if kind == "window":
        level, width = params
        return np.clip((x - (level - width / 2.0)) / width, 0.0, 1.0)
    if kind == "minmax":
        lo, hi = float(x.min()), float(x.max())
        if not hi > lo:
            raise PipelineError(f"--normalize minmax: the volume is constant ({lo})")
        return (x - lo) / (hi - lo)
    if kind == "zscore":
        mean, std = float(x.mean()), float(x.std(ddof=0))
        if not std > 0:
            raise PipelineError("--normalize zscore: the volume has zero standard deviation")
        return (x - mean) / std
    raise PipelineError(f"unknown normalisation {kind!r}")


# ----------------------------------------------------------------------------------------------------------
# network
# ----------------------------------------------------------------------------------------------------------
class _AllRecorded(Exception):
    pass


def forward_layers(net, x, layers):
    """Run ``net`` on ``x`` (1,1,D,H,W); return {layer: output clone}. Stops once every layer was recorded
    (modules later in the network cannot influence the recorded outputs)."""
    modules = dict(net.named_modules())
    recorded, handles = {}, []

    def recorder(name):
        def hook(_mod, _inp, out):
            if name in recorded:
                raise RuntimeError(f"layer {name} ran twice in one forward pass")
            recorded[name] = out.detach().clone()  # torchvision's ReLUs are in place
            if len(recorded) == len(layers):
                raise _AllRecorded()
        return hook

    try:
        for name in layers:
            handles.append(modules[name].register_forward_hook(recorder(name)))
        with torch.no_grad():
            try:
                net(x)
            except _AllRecorded:
                pass
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in layers if n not in recorded]
    if missing:
        raise PipelineError(f"layers never ran in the forward pass: {', '.join(missing)}")
    for name, f in recorded.items():
        if f.dim() != 5 or f.shape[0] != 1:
            raise PipelineError(f"layer {name}: expected a (1, C, d, h, w) output, got {tuple(f.shape)}")
        if not torch.isfinite(f).all():
            raise PipelineError(f"layer {name}: non-finite values in the output")
    return recorded


def run_net(net, x32, layers):
    try:
        return forward_layers(net, torch.from_numpy(x32)[None, None], layers)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        if "too small" in msg or "smaller than kernel" in msg:
            raise PipelineError(f"volume {x32.shape} is too small for the requested layers: {msg}") from None
        raise


# ----------------------------------------------------------------------------------------------------------
# the extract procedure
# ----------------------------------------------------------------------------------------------------------
def region_weights(indicator, shape3):
    """w_r = adaptive_avg_pool3d(indicator[None, None].double(), (d, h, w)) -> float64 tensor (1,1,d,h,w)."""
    return F.adaptive_avg_pool3d(indicator[None, None].to(torch.float64), tuple(shape3))


def pool_shared(f, w, pool):
    """Region vector from a layer output f (1,C,d,h,w) and weights w (1,1,d,h,w) (float64 result, (C,))."""
    if pool == "mean":
        return (f.to(torch.float64) * w).sum(dim=(0, 2, 3, 4)) / w.sum()
    support = (w[0, 0] > 0)
    return f[0][:, support].max(dim=1).values.to(torch.float64)


def pool_global(f, pool):
    """Global pooling of a whole map f (1,C,d,h,w) -> float64 (C,)."""
    if pool == "mean":
        return f.to(torch.float64).mean(dim=(0, 2, 3, 4))
    return f[0].flatten(1).max(dim=1).values.to(torch.float64)


def cosine(a, b):
    na, nb = float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b))
    if na == 0.0 or nb == 0.0:
        raise PipelineError("cosine of a zero feature vector is undefined")
    return float(torch.dot(a, b)) / (na * nb)


def extract(ct_path, mask_path, regions, weights, scheme, axis, stem, norm_kind, norm_params, layers, mode, pool,
            log=print, arch=None):
    """Run the procedure; return (arrays dict without meta, meta dict without args)."""
    t0 = time.perf_counter()
    ct, ct_affine = load_volume_dhw(ct_path, "--ct")
    mask_f, mask_affine = load_volume_dhw(mask_path, "--mask")
    if ct.shape != mask_f.shape:
        raise PipelineError(f"CT grid {ct.shape[::-1]} and mask grid {mask_f.shape[::-1]} differ (i,j,k)")
    if not np.allclose(ct_affine, mask_affine, rtol=0, atol=1e-3):
        print("warning: CT and mask affines differ; using voxel correspondence", file=sys.stderr)
    if not np.isfinite(ct).all():
        raise PipelineError("--ct: the volume contains non-finite values")
    mask = np.rint(mask_f).astype(np.int64)
    present = set(np.unique(mask).tolist())
    for name, value in regions:
        if value not in present:
            raise PipelineError(f"--labels: label {name}={value} does not occur in the mask "
                                f"(labels present: {sorted(present)})")
    voxel_counts = {name: int((mask == value).sum()) for name, value in regions}

    x32 = normalise(ct, norm_kind, norm_params).astype(np.float32)

    if not os.path.exists(weights):
        raise PipelineError(f"--weights: no such file {weights!r}")
    sd2d, wmeta = dr.load_weights_npz(weights)
    arch = arch or wmeta.get("arch", "densenet121")
    if arch.startswith("densenet"):
        net = dr.DenseNet3d.from_2d(sd2d, arch=arch, scheme=scheme, axis=axis, stem=stem, dtype=torch.float32)
    else:
        net = ar.build_3d(sd2d, arch, scheme=scheme, axis=axis, stem=stem)
    known = {n for n, _ in net.named_modules() if n}
    for name in layers:
        if name not in known:
            hint = f" (did you mean 'features.{name}'?)" if f"features.{name}" in known else ""
            raise PipelineError(f"--layers: no module named {name!r} in the 3D {arch}{hint}")
    t_load = time.perf_counter() - t0

    arrays, shapes, feats = {}, {}, {}
    t1 = time.perf_counter()
    if mode == "shared":
        outs = run_net(net, x32, layers)
        passes = 1
        for layer in layers:
            f = outs[layer]
            shapes[layer] = list(f.shape[1:])
            for name, value in regions:
                ind = torch.from_numpy(mask == value)
                w = region_weights(ind, f.shape[2:])
                if not float(w.sum()) > 0:
                    raise PipelineError(f"region {name}: zero total weight at layer {layer}")
                feats[(name, layer)] = pool_shared(f, w, pool)
                arrays[f"weight/{name}/{layer}"] = w[0, 0].numpy().astype(np.float64)
    else:
        passes = 0
        for name, value in regions:
            xr = x32 * (mask == value).astype(np.float32)
            outs = run_net(net, np.ascontiguousarray(xr), layers)
            passes += 1
            for layer in layers:
                f = outs[layer]
                shapes[layer] = list(f.shape[1:])
                feats[(name, layer)] = pool_global(f, pool)
    t_net = time.perf_counter() - t1

    names = [n for n, _ in regions]
    pairs, cos = [], []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            pairs.append(f"{names[i]}-{names[j]}")
            cos.append([cosine(feats[(names[i], l)], feats[(names[j], l)]) for l in layers])
    arrays["cosine"] = np.asarray(cos, dtype=np.float64).reshape(len(pairs), len(layers))
    for (name, layer), v in feats.items():
        arrays[f"feature/{name}/{layer}"] = v.numpy().astype(np.float64)

    meta = dict(format="volfeat-pipeline-reference", pairs=pairs, layers=list(layers), regions=names,
                labels={n: v for n, v in regions}, mode=mode, pool=pool, forward_passes=passes, shapes=shapes,
                input_shape=list(ct.shape), layout="DHW = nibabel (k, j, i)", voxel_counts=voxel_counts,
                scheme=scheme, axis=axis, stem=stem, arch=arch, weights=os.path.basename(weights),
                weights_meta=wmeta, torch=torch.__version__, torchvision=torchvision.__version__,
                numpy=np.__version__, nibabel=nib.__version__)
    log(f"  loaded in {t_load:.2f} s; {passes} forward pass(es) + pooling in {t_net:.2f} s")
    return arrays, meta


# ----------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------
def read_meta(path):
    try:
        with np.load(path) as z:
            return xt.array_to_meta(z["meta"]) if "meta" in z.files else None
    except Exception:  # noqa: BLE001 - a damaged file simply gets regenerated
        return None


def print_table(arrays, meta):
    layers, pairs = meta["layers"], meta["pairs"]
    short = [l.replace("features.", "") for l in layers]
    width = max(len(p) for p in pairs)
    print(f"  cosine ({meta['mode']}, pool {meta['pool']}, normalize {meta['normalize']}, "
          f"{meta['forward_passes']} pass(es)):")
    print("    " + " " * width + "  " + "  ".join(f"{s:>30s}" for s in short))
    for p, row in zip(pairs, arrays["cosine"]):
        print(f"    {p:<{width}s}  " + "  ".join(f"{v:30.10f}" for v in row))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__[__doc__.index("Definitions"):],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ct", required=True, help="CT volume (NIfTI)")
    p.add_argument("--mask", required=True, help="integer label volume on the CT's grid (NIfTI)")
    p.add_argument("--labels", required=True, help="name=value[,name=value...] in region order")
    p.add_argument("--no-background", action="store_true", help="do not append the background region (label 0)")
    p.add_argument("--weights", required=True, metavar="W2D.npz", help="2D torchvision export (.npz)")
    p.add_argument("--arch", default=None, help="the weights' architecture (default: their volfeat_meta, else densenet121);"
                   " plain torchvision exports of VGG and ResNet need it")
    p.add_argument("--scheme", choices=dr.SCHEMES, default="i3d-mean")
    p.add_argument("--axis", choices=dr.AXES, default="D")
    p.add_argument("--stem", choices=("sum", "mean"), default="sum")
    p.add_argument("--normalize", required=True, help="none | window:L,W | minmax | zscore")
    p.add_argument("--layers", required=True, help="comma-separated module names, e.g. "
                   "features.denseblock4.denselayer16.conv2")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--pool", choices=POOLS, required=True)
    p.add_argument("--out", required=True, metavar="REF.npz")
    p.add_argument("--force", action="store_true", help="regenerate even if the stored arguments match")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    a = p.parse_args(argv)

    torch.set_num_threads(max(1, a.threads))
    torch.use_deterministic_algorithms(True)
    try:
        return _run(a)
    except PipelineError as exc:
        print(f"{os.path.basename(sys.argv[0])}: error: {exc}", file=sys.stderr)
        return ERROR_CODE
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{os.path.basename(sys.argv[0])}: error: {type(exc).__name__}: {msg}", file=sys.stderr)
        return ERROR_CODE


def _run(a):
    t0 = time.perf_counter()
    regions = parse_labels(a.labels, background=not a.no_background)
    norm_kind, norm_params = parse_normalize(a.normalize)
    layers = parse_layers(a.layers)
    for path, what in ((a.ct, "--ct"), (a.mask, "--mask"), (a.weights, "--weights")):
        if not os.path.isfile(path):
            raise PipelineError(f"{what}: no such file {path!r}")
    args = dict(kind="pipeline", generator_version=GENERATOR_VERSION,
                ct=os.path.abspath(a.ct), ct_sha256=xt.sha256_file(a.ct),
                mask=os.path.abspath(a.mask), mask_sha256=xt.sha256_file(a.mask),
                weights_sha256=xt.sha256_file(a.weights),
                regions=[[n, v] for n, v in regions], background=not a.no_background,
                scheme=a.scheme, axis=a.axis, stem=a.stem, normalize=[norm_kind] + norm_params,
                layers=layers, mode=a.mode, pool=a.pool, arch=a.arch)
    if not a.force and os.path.exists(a.out):
        old = read_meta(a.out)
        if old is not None and old.get("args") == args:
            print(f"{a.out}: up to date (stored arguments identical; --force regenerates)")
            return 0
    print(f"{a.out}: {a.mode}, pool {a.pool}, regions {[n for n, _ in regions]}, {len(layers)} layer(s)",
          flush=True)
    arrays, meta = extract(a.ct, a.mask, regions, a.weights, a.scheme, a.axis, a.stem, norm_kind, norm_params,
                           layers, a.mode, a.pool, arch=a.arch)
    meta["normalize"] = a.normalize
    meta["args"] = args
    print_table(arrays, meta)
    arrays["meta"] = xt.meta_to_array(meta)
    xt.atomic_savez(a.out, arrays)
    print(f"{a.out}: wrote in {time.perf_counter() - t0:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
