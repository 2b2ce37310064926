#!/usr/bin/python3
"""PyTorch references for volfeat's generic network graph (VGG, ResNet, DenseNet): the oracle of test_arch_torch.

PyTorch is only the oracle here, never volfeat's runtime.

``--all OUTDIR`` writes (``--deep OUTDIR`` only the numeric references, for the architectures of DEEP):

* ``structure.json``: for every architecture volfeat knows, torchvision's 2D model as torch sees it: the names of
  the feature extractor's modules in the order their forward hooks first fire (a 2D forward of a 1x3x64x64 image),
  and every state_dict key with its shape (the classifier / fc head left out). The C++ test checks that volfeat's
  graph has exactly these modules, in this order, and exactly these parameters, and that it detects the
  architecture from the keys alone.
* for each architecture of NUMERIC (one or two per family and block type):
  ``<arch>_2d.npz``: a plain torchvision state_dict (torch.manual_seed(0) initialisation with the head built on the
  meta device, so drawing nothing: construct_model; BatchNorm statistics
  randomised as weights/export_torchvision.py --randomize-bn does, no head, NO volfeat metadata: the C++ side
  must detect the architecture from torchvision's key names), and ``<arch>_ref.npz``: ``input`` (a seeded
  torch.randn volume), ``out/<module>`` (every module's output, NCDHW float32) of the 3D network inflated in
  PyTorch (i3d-mean along D, stem summed over RGB: tests/torch/densenet_reference.py's inflation), and ``meta``.

The 3D network is torchvision's own module tree with every Conv2d/BatchNorm2d/MaxPool2d/AvgPool2d replaced by
its 3D counterpart (same names), and torchvision's own forward code. A module called several times (ResNet's
``relu`` inside a block) is recorded at its last call, as a hook writing into a dict keeps.

If torch cannot be imported, the script prints a SKIP line and exits 77 (CTest's skip code).
"""
import argparse
import copy
import json
import os
import sys

SKIP_CODE = 77
try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision
except Exception as exc:  # noqa: BLE001
    print(f"SKIP: torch/torchvision not importable with /usr/bin/python3 ({exc!r})")
    sys.exit(SKIP_CODE)

sys.dont_write_bytecode = True
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
import densenet_reference as dr  # noqa: E402  (inflation rules, 2D->3D conversion, export helpers)

# 2: the heads built on the meta device (construct_model), so the exported features are drawn differently
GENERATOR_VERSION = 2
ARCHS = ["densenet121", "densenet161", "densenet169", "densenet201",
         "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn",
         "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2"]
# Exact forward passes: VGG without and with batchnorm (the paper's VGG-19), ResNet's BasicBlock and Bottleneck.
NUMERIC = [dict(arch="vgg19", shape=(1, 1, 32, 35, 33), input_seed=11),
           dict(arch="vgg11_bn", shape=(1, 1, 33, 32, 34), input_seed=12),
           dict(arch="resnet18", shape=(1, 1, 37, 33, 35), input_seed=13),
           dict(arch="resnet50", shape=(1, 1, 33, 36, 32), input_seed=14)]
# ``--deep OUTDIR``: every other architecture, so that each of ARCHS is checked against torch (test_arch_torch_deep;
# about 1.6 GB of plain exports at their full width, hence a separate fixture the sanitizer suite leaves out).
DEEP = [dict(arch=a, shape=(1, 1, 32, 33, 34), input_seed=20 + i) for i, a in enumerate(
    ["densenet121", "densenet161", "densenet169", "densenet201", "vgg11", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
     "vgg19_bn", "resnet34", "resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2"])]
HEADS = ("classifier", "fc", "avgpool")


def family(arch):
    return "resnet" if "resnet" in arch else arch[:3] if arch.startswith("vgg") else "densenet"


class Features(nn.Module):
    """The feature extractor of a torchvision model under torchvision's own names (no avgpool/classifier/fc)."""

    def __init__(self, model, arch):
        super().__init__()
        self.kind = family(arch)
        if self.kind == "resnet":
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
                setattr(self, name, copy.deepcopy(getattr(model, name)))
        else:
            self.features = copy.deepcopy(model.features)

    def forward(self, x):
        if self.kind != "resnet":
            return self.features(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def record(net, x):
    """{module name: output clone} for every named module, keyed in first-call order, values from the last call."""
    out, handles = {}, []
    for name, m in net.named_modules():
        if not name:
            continue
        handles.append(m.register_forward_hook(
            lambda _m, _i, o, name=name: out.__setitem__(name, o.detach().clone())))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return out


def head_key(key):
    return key.split(".")[0] in HEADS


def construct_model(arch):
    """An untrained torchvision ``arch`` whose head (its only nn.Linear layers: classifier / fc) is built on the
    meta device: never exported nor run, and drawing a VGG's 124 M classifier weights took about 5 s of each VGG's
    reference. The features are torchvision's own seeded initialisation (the head no longer draws from the seed's
    stream in between, so they are not those of a full construction; the C++ tests read them from the export)."""
    init = nn.Linear.__init__

    def on_meta(self, *args, **kwargs):
        init(self, *args, **dict(kwargs, device="meta"))

    nn.Linear.__init__ = on_meta
    try:
        return dr.xt.construct_model(arch)
    finally:
        nn.Linear.__init__ = init


def structure(arch):
    torch.manual_seed(0)
    model = construct_model(arch).eval()
    feats = Features(model, arch).eval()
    names = list(record(feats, torch.zeros(1, 3, 64, 64)).keys())
    params = {k: list(v.shape) for k, v in model.state_dict().items()
              if not head_key(k) and not k.endswith("num_batches_tracked")}
    return {"modules": names, "params": params}


def to_3d(feats, axis="D"):
    """Replace every 2D leaf by its 3D counterpart; the stem conv (the first conv) takes one channel."""
    stem = [True]

    def convert(module):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d):
                # skip_init: no random initialisation of weights that load_state_dict replaces anyway (it was
                # most of build_3d's time for the deep ResNets: 3x their 2D weights drawn and thrown away)
                new = torch.nn.utils.skip_init(nn.Conv3d, 1 if stem[0] else child.in_channels, child.out_channels,
                                               kernel_size=dr.inflate_tuple(child.kernel_size, axis),
                                               stride=dr.inflate_tuple(child.stride, axis),
                                               padding=dr.inflate_tuple(child.padding, axis),
                                               dilation=dr.inflate_tuple(child.dilation, axis),
                                               bias=child.bias is not None)
                stem[0] = False
            elif isinstance(child, nn.BatchNorm2d):
                new = nn.BatchNorm3d(child.num_features, eps=child.eps)
            elif isinstance(child, nn.MaxPool2d):
                new = nn.MaxPool3d(dr.inflate_tuple(child.kernel_size, axis), dr.inflate_tuple(child.stride, axis),
                                   dr.inflate_tuple(child.padding, axis), ceil_mode=child.ceil_mode)
            elif isinstance(child, nn.AvgPool2d):
                new = nn.AvgPool3d(dr.inflate_tuple(child.kernel_size, axis), dr.inflate_tuple(child.stride, axis),
                                   dr.inflate_tuple(child.padding, axis), ceil_mode=child.ceil_mode,
                                   count_include_pad=child.count_include_pad)
            elif isinstance(child, (nn.ReLU, nn.Identity)):
                continue
            elif len(list(child.children())) > 0:
                convert(child)
                continue
            else:
                raise TypeError(f"no 3D conversion for {name}: {type(child).__name__}")
            setattr(module, name, new)

    convert(feats)
    return feats


STEMS = {"resnet": "conv1.weight", "vgg": "features.0.weight", "densenet": "features.conv0.weight"}


def inflate(sd2, arch, scheme="i3d-mean", axis="D", stem="sum"):
    """A 2D state_dict inflated as volfeat does (tests/torch/densenet_reference.py's rules, any architecture)."""
    sd3 = {}
    for k, v in sd2.items():
        if v.dim() == 4:
            w3 = dr.inflate_conv_weight(v, scheme, axis)
            sd3[k] = dr.collapse_stem(w3, stem) if k == STEMS[family(arch)] else w3
        else:
            sd3[k] = v.clone()
    return sd3


def build_3d(sd2, arch, scheme="i3d-mean", axis="D", stem="sum", model=None):
    """torchvision's ``arch`` feature extractor in 3D (torchvision's module names), loaded with ``sd2`` inflated.

    ``model``: an ``arch`` model already constructed, whose structure (not its weights) is copied; without it one is
    constructed (construct_model: its head drawn on the meta device), and its initialisation thrown away."""
    feats = to_3d(Features(model if model is not None else construct_model(arch), arch), axis).eval()
    sd3 = inflate({k: v for k, v in sd2.items() if not head_key(k)}, arch, scheme, axis, stem)
    wanted = feats.state_dict().keys()  # once: per key it was 25 of the 92 s of `--deep` (Zen 3)
    feats.load_state_dict({k: v for k, v in sd3.items() if k in wanted}, strict=True)
    return feats


def numeric(case, outdir):
    arch = case["arch"]
    torch.manual_seed(0)
    model = construct_model(arch)
    dr.xt.randomize_batchnorm(model, 1)
    model.eval()
    sd2 = {k: v for k, v in model.state_dict().items() if not head_key(k)}
    # A plain torchvision state_dict: no volfeat_meta.
    dr.xt.atomic_savez(os.path.join(outdir, f"{arch}_2d.npz"),
                       {k: (v.to(torch.int64) if k.endswith("num_batches_tracked") else v.float()).numpy()
                        for k, v in sd2.items()})
    feats = build_3d(sd2, arch, model=model)
    x = torch.randn(case["shape"], generator=torch.Generator().manual_seed(case["input_seed"]))
    out = record(feats, x)
    arrays = {"input": x.numpy()}
    arrays.update({"out/" + k: v.float().contiguous().numpy() for k, v in out.items()})
    meta = dict(case, generator=GENERATOR_VERSION, scheme="i3d-mean", axis="D", stem="sum",
                modules=list(out.keys()), torch=torch.__version__)
    arrays["meta"] = dr.xt.meta_to_array(meta)
    dr.xt.atomic_savez(os.path.join(outdir, f"{arch}_ref.npz"), arrays)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--all", metavar="OUTDIR", help="structure.json of every architecture plus NUMERIC's references")
    group.add_argument("--deep", metavar="OUTDIR", help="DEEP's references (every architecture NUMERIC leaves out)")
    args = ap.parse_args()
    outdir, cases = (args.all, NUMERIC) if args.all else (args.deep, DEEP)
    assert sorted(c["arch"] for c in NUMERIC + DEEP) == sorted(ARCHS), "every architecture needs a numeric reference"
    os.makedirs(outdir, exist_ok=True)
    stamp = os.path.join(outdir, "arch_reference.json")
    want = json.loads(json.dumps({"generator": GENERATOR_VERSION, "archs": ARCHS, "numeric": cases}))
    try:
        with open(stamp) as f:
            if json.load(f) == want:
                print(f"{outdir}: references up to date")
                return 0
    except (OSError, ValueError):
        pass
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.all:
        structures = {}
        for arch in ARCHS:
            structures[arch] = structure(arch)
        with open(os.path.join(outdir, "structure.json"), "w") as f:
            json.dump(structures, f)
    for case in cases:
        numeric(case, outdir)
        print(f"{case['arch']}: reference written", flush=True)
    with open(stamp, "w") as f:
        json.dump(want, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
