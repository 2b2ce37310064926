#!/usr/bin/env python3
"""ACS-inflated DenseNet121 computed the way ACSConv computes it, for volfeat's `acs` scheme test.

ACSConv (Yang et al., "Reinforcing 2D pretrained CNNs for 3D medical image segmentation") splits each
conv's output channels into axial, coronal and sagittal groups and runs each group's 2D kernels as
thin 3D kernels: (k, k) unsqueezed to (1, k, k), (k, 1, k) and (k, k, 1), with zero padding along the
thin axis. volfeat instead builds full k x k x k kernels that are zero off the centre plane. This
script uses the thin-kernel formulation, so agreement checks volfeat's construction, not a copy of it.

usage: acs_reference.py WEIGHTS_2D.npz OUT.npz
Writes the same layout as densenet_reference.py (input, out/<module>, meta) for input 1x1x29x31x33.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import densenet_reference as dr  # noqa: E402  (exits 77 itself when torch is missing)

torch, nn, F, xt = dr.torch, dr.nn, dr.F, dr.xt

SHAPE = (1, 1, 29, 31, 33)
INPUT_SEED = 6


def acs_split(out_channels):
    """ACSConv's group sizes: ceil(O/3), ceil((O - ceil(O/3)) / 2), the rest."""
    a = (out_channels + 2) // 3
    c = (out_channels - a + 1) // 2
    return a, c, out_channels - a - c


class ThinKernelAcsConv(nn.Module):
    def __init__(self, w2, stride, padding):
        super().__init__()
        self.w2, self.stride, self.p = w2, stride, padding
        self.split = acs_split(w2.shape[0])

    def forward(self, x):
        wa, wc, ws = torch.split(self.w2, self.split, dim=0)
        p, s = self.p, self.stride
        outs = [F.conv3d(x, wa.unsqueeze(2), stride=s, padding=(0, p, p)),   # axial: H-W plane
                F.conv3d(x, wc.unsqueeze(3), stride=s, padding=(p, 0, p)),   # coronal: D-W plane
                F.conv3d(x, ws.unsqueeze(4), stride=s, padding=(p, p, 0))]   # sagittal: D-H plane
        return torch.cat(outs, dim=1)


def main():
    weights, out = sys.argv[1], sys.argv[2]
    args = dict(kind="acs-thin-kernels", weights_sha256=xt.sha256_file(weights), scheme="acs", axis="D", stem="sum",
                shape=list(SHAPE), input_seed=INPUT_SEED, stop_after=None, generator_version=1)
    if os.path.exists(out) and (dr.read_meta(out, "meta") or {}).get("args") == args:
        print(f"{out}: up to date")
        return
    torch.set_num_threads(2)
    sd2d, wmeta = dr.load_weights_npz(weights)
    # Structure and BatchNorm from any inflation; every conv is then replaced by its thin-kernel form.
    net = dr.DenseNet3d.from_2d(sd2d, scheme="centre", axis="D", stem="sum")
    for name, module in list(net.features.named_modules()):
        if isinstance(module, nn.Conv3d):
            w2 = sd2d["features." + name + ".weight"].float()
            if name == "conv0":
                w2 = w2.sum(dim=1, keepdim=True)  # stem sum
            parent = net.features.get_submodule(name.rsplit(".", 1)[0]) if "." in name else net.features
            setattr(parent, name.rsplit(".", 1)[-1],
                    ThinKernelAcsConv(w2, module.stride, module.padding[0]))
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(INPUT_SEED), dtype=torch.float32)
    recorded = dr.run_recorded(net, x)
    meta = dict(format="volfeat-reference", args=args, scheme="acs", axis="D", stem="sum", shape=list(SHAPE),
                layout="NCDHW", weights_meta=wmeta, modules=list(recorded), torch=torch.__version__)
    arrays = {"input": x.numpy()}
    arrays.update(dr._outputs_to_arrays(recorded))
    arrays["meta"] = xt.meta_to_array(meta)
    xt.atomic_savez(out, arrays)
    print(f"wrote {out}: {len(recorded)} modules, ACS by thin kernels")


if __name__ == "__main__":
    main()
