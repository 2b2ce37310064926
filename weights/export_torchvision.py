#!/usr/bin/python3
"""Export a torchvision DenseNet, VGG or ResNet state_dict to an uncompressed ``.npz`` for volfeat.

volfeat reads torchvision's own key names and detects the architecture from them; the ``volfeat_meta`` entry
written here says what kind of weights these are (pretrained or seeded), which every volfeat output repeats.

Two kinds of weights:

* ``--pth FILE``: a local torchvision checkpoint (e.g. ``densenet121-a639ec97.pth``). Legacy dense-layer keys
  (``...denselayer1.norm.1.weight``) are renamed to the current ones (``...denselayer1.norm1.weight``) with the
  same regular expression torchvision's ``_load_state_dict`` uses, then loaded strictly into the model, so a
  wrong ``--arch`` fails loudly. Nothing is ever downloaded.
* no ``--pth``: torchvision's own seeded initialisation, ``torch.manual_seed(seed)`` followed by
  ``torchvision.models.<arch>(weights=None)``.

``--randomize-bn`` (meant for tests) then overwrites every BatchNorm's statistics and affine parameters from a
``torch.Generator`` seeded with ``seed + 1``, module by module in ``model.modules()`` order, drawing in this order::

    running_mean = 0.1 * randn(C)
    running_var  = 0.5 + rand(C)          # uniform in [0.5, 1.5)
    weight       = 1 + 0.1 * randn(C)
    bias         = 0.1 * randn(C)

so that eval-mode BatchNorm is not (nearly) the identity.

Output: every ``state_dict`` entry under its exact key, float32 (``num_batches_tracked`` int64), plus
``volfeat_meta``: a 1-D uint8 array holding UTF-8 JSON::

    {"format": "volfeat-weights", "dims": 2, "arch": "densenet121", "source": "pretrained" | "seeded-init",
     "seed": N | null, "pth_sha256": "..." | null, "randomized_bn": bool, "torch": "...", "torchvision": "..."}

``seed`` is null only for pretrained weights without ``--randomize-bn`` (the seed then influences nothing).
The file is written with ``np.savez`` to a temporary name in the destination directory and moved into place
with ``os.replace``, so readers never see a half-written file.

Example::

    /usr/bin/python3 weights/export_torchvision.py --out dn121_seed0.npz
    /usr/bin/python3 weights/export_torchvision.py --pth densenet121-a639ec97.pth --out densenet121_imagenet.npz
    /usr/bin/python3 weights/export_torchvision.py --arch vgg19 --pth vgg19-dcbb9e9d.pth --out vgg19_imagenet.npz

This module is also imported by ``tests/torch/densenet_reference.py`` (``build_densenet``, ``export``,
``atomic_savez``, ``meta_to_array``/``array_to_meta``).
"""

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile

import numpy as np
import torch
import torchvision

ARCHS = ("densenet121", "densenet161", "densenet169", "densenet201",
         "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
         "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2")
META_KEY = "volfeat_meta"

# Exactly torchvision.models.densenet._load_state_dict's pattern: the old _DenseLayer named its children
# 'norm.1', 'relu.1', 'conv.1', 'norm.2', 'relu.2', 'conv.2'.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def sha256_file(path, chunk=1 << 20):
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def meta_to_array(meta):
    """JSON-encode ``meta`` (sorted keys, UTF-8) into a 1-D uint8 array for storage in an .npz."""
    return np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8).copy()


def array_to_meta(arr):
    """Inverse of :func:`meta_to_array`."""
    return json.loads(np.asarray(arr, dtype=np.uint8).tobytes().decode("utf-8"))


def rename_legacy_keys(state_dict):
    """Return a copy of ``state_dict`` with legacy 'norm.1'/'conv.2'-style keys renamed ('norm1'/'conv2')."""
    out = {}
    for key, value in state_dict.items():
        m = _LEGACY_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def construct_model(arch):
    """An untrained torchvision model, whichever API (``weights=`` or legacy ``pretrained=``) is available."""
    ctor = getattr(torchvision.models, arch)
    try:
        return ctor(weights=None)
    except TypeError:  # torchvision < 0.13
        return ctor(pretrained=False)


def _load_checkpoint(path):
    """A state_dict from a local .pth, tolerating a {'state_dict': ...} wrapper and DataParallel's 'module.'."""
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state_dict, got {type(obj).__name__}")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def randomize_batchnorm(model, seed):
    """Overwrite every BatchNorm's running stats and affine params from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
                m.weight.copy_(1.0 + 0.1 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))


def build_model(arch="densenet121", pth=None, seed=0, randomize_bn=False):
    """Build a 2D torchvision model (any of ARCHS) in eval mode; return ``(model, meta)``.

    ``meta`` is the ``volfeat_meta`` dictionary describing the weights.
    """
    if arch not in ARCHS:
        raise ValueError(f"unsupported arch {arch!r}; choose from {', '.join(ARCHS)}")
    if pth is not None:
        model = construct_model(arch)
        state = rename_legacy_keys(_load_checkpoint(pth))
        model.load_state_dict(state, strict=True)
        source, pth_sha = "pretrained", sha256_file(pth)
    else:
        torch.manual_seed(seed)
        model = construct_model(arch)
        source, pth_sha = "seeded-init", None
    if randomize_bn:
        randomize_batchnorm(model, seed + 1)
    model.eval()
    meta = {
        "format": "volfeat-weights",
        "dims": 2,
        "arch": arch,
        "source": source,
        "seed": seed if (pth is None or randomize_bn) else None,
        "pth_sha256": pth_sha,
        "randomized_bn": bool(randomize_bn),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    return model, meta


def state_dict_arrays(model):
    """The model's state_dict as numpy arrays (float32; int64 for num_batches_tracked), in state_dict order."""
    arrays = {}
    for key, t in model.state_dict().items():
        t = t.detach().cpu()
        if key.endswith("num_batches_tracked"):
            arrays[key] = t.to(torch.int64).numpy().copy()
        else:
            arrays[key] = t.to(torch.float32).contiguous().numpy().copy()
    return arrays


def atomic_savez(path, arrays):
    """``np.savez`` (uncompressed) to a temporary file beside ``path``, then ``os.replace`` it into place."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # a file object: numpy does not append '.npz' to the temporary name
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


build_densenet = build_model  # the name tests/torch/densenet_reference.py has always used


def export(out, arch="densenet121", pth=None, seed=0, randomize_bn=False):
    """Build the model, write ``out`` atomically, and return the metadata dictionary."""
    model, meta = build_model(arch=arch, pth=pth, seed=seed, randomize_bn=randomize_bn)
    arrays = state_dict_arrays(model)
    if META_KEY in arrays:
        raise RuntimeError(f"state_dict unexpectedly contains {META_KEY!r}")
    arrays[META_KEY] = meta_to_array(meta)
    atomic_savez(out, arrays)
    return meta


def describe(out, meta, n_tensors=None):
    """The one-line summary printed after an export."""
    what = meta["source"]
    if meta["source"] == "seeded-init":
        what += f" (torch.manual_seed({meta['seed']}))"
    if meta["randomized_bn"]:
        what += f", BatchNorm randomised (generator seed {meta['seed'] + 1})"
    count = f"{n_tensors} tensors, " if n_tensors is not None else ""
    return f"wrote {out}: {meta['arch']} {count}{what} weights"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="densenet121", choices=ARCHS, help="torchvision architecture")
    p.add_argument("--pth", help="local pretrained torchvision checkpoint (e.g. densenet121-a639ec97.pth)")
    p.add_argument("--seed", type=int, default=0,
                   help="torch.manual_seed for the seeded initialisation (default 0); seed+1 seeds --randomize-bn")
    p.add_argument("--randomize-bn", action="store_true",
                   help="(tests) give every BatchNorm non-trivial statistics and affine parameters")
    p.add_argument("--out", required=True, help="output .npz file")
    args = p.parse_args(argv)

    torch.set_num_threads(min(2, torch.get_num_threads()))
    meta = export(args.out, arch=args.arch, pth=args.pth, seed=args.seed, randomize_bn=args.randomize_bn)
    with np.load(args.out) as z:
        n = len(z.files) - 1
    print(describe(args.out, meta, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
