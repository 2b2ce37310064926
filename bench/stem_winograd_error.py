#!/usr/bin/env python3
"""Rounding error of DenseNet's stem (1 -> 64 channels, 7x7x7, stride 2, padding 3) if it ran as 1D Winograd.

    /usr/bin/python3 bench/stem_winograd_error.py [--ct ../shared/data/pelvis_ct/ct.nii.gz] [--seed 0]

A model for a stem that volfeat does not have yet (bench/README.md, "Zen 4 again"): along W the stride-2 conv
splits into its two phases, the even taps (0, 2, 4, 6) on the odd input samples and the odd taps (1, 3, 5, and a
zero) on the even ones, each a stride-1 correlation of 4 taps, computed as F(m, 4) with its transformed input
and weights rounded to float32 or bf16, summed over the 49 (kd, kh) rows and both phases in float64, then
transformed back. Against the direct sum in float64, beside the direct sum with float32 and bf16 operands.
Input: a 16x16x32 block of standard normals and, with --ct, one of the CT (HU clipped to [-1000, 2000], scaled
to [-1, 1]); weights: He-scaled normals. Printed: rms and max |error| relative to the exact output's rms and max.
"""
import argparse

import numpy as np


def round_bf16(x):
    """float -> bf16 (round to nearest even), back as float64."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def round_f32(x):
    return np.asarray(x, np.float32).astype(np.float64)


def exact(x):
    return np.asarray(x, np.float64)


def toom_cook(points, m, r):
    """A^T (m x n), G (n x r), B^T (n x n) of the correlation F(m, r) for the finite points plus infinity: the
    transpose of the convolution s = V^-1 ((Vg g) * (Vh h)), so y = Vh^T ((Vg g) * (V^-T d))."""
    n = m + r - 1

    def evaluation(k):  # rows: a polynomial of k coefficients at each point, then its leading one (infinity)
        return np.array([[p**i for i in range(k)] for p in points] + [[0] * (k - 1) + [1]], float)

    return evaluation(m).T, evaluation(r), np.linalg.inv(evaluation(n)).T


def direct(x, w, rnd):
    """x: (D, H, W) padded by 3; w: (C, 7, 7, 7). The stride-2 conv with operands rounded by rnd."""
    xr, wr = rnd(x), rnd(w)
    d, h, wo = (np.array(x.shape) - 7) // 2 + 1
    out = np.zeros((w.shape[0], d, h, wo))
    for kd in range(7):
        for kh in range(7):
            for kw in range(7):
                out += wr[:, kd, kh, kw, None, None, None] * xr[None, kd:kd + 2 * d:2, kh:kh + 2 * h:2, kw:kw + 2 * wo:2]
    return out


def winograd_w(x, w, m, points, rnd):
    """The same conv, along W as two phases of F(m, 4), transformed operands rounded by rnd."""
    at, g_mat, bt = toom_cook(points, m, 4)
    n = m + 3
    d, h, wo = (np.array(x.shape) - 7) // 2 + 1
    assert wo % m == 0, "the output's W must be a multiple of m"
    acc = np.zeros((w.shape[0], d, h, wo // m, n))  # (channel, z, y, tile along W, transform point)
    for kd in range(7):
        for kh in range(7):
            rows = x[kd:kd + 2 * d:2, kh:kh + 2 * h:2, :]  # (z, y, padded W): the input rows of tap (kd, kh)
            for phase, taps in ((0, [0, 2, 4, 6]), (1, [1, 3, 5])):
                g = np.zeros((w.shape[0], 4))
                g[:, :len(taps)] = w[:, kd, kh, taps]
                g_hat = rnd(g @ g_mat.T)  # (channel, point)
                samples = rows[:, :, phase::2]  # output x reads samples[x + t], t = 0..3
                tiles = np.stack([samples[:, :, j * m:j * m + n] for j in range(wo // m)], axis=2)  # (z, y, tile, n)
                acc += g_hat[:, None, None, None, :] * rnd(tiles @ bt.T)[None]
    return (acc @ at.T).reshape(w.shape[0], d, h, wo)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ct", help="a CT .nii.gz (nibabel): a 16x16x32 block of it as a second input")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    w = rng.normal(0, np.sqrt(2 / 343), (64, 7, 7, 7))
    inputs = {"standard normals": rng.normal(0, 1, (16, 16, 32))}
    if a.ct:
        import nibabel as nib
        ct = np.asarray(nib.load(a.ct).dataobj, np.float64)
        if min(ct.shape) < 32:
            raise SystemExit(f"{a.ct}: {ct.shape} is smaller than the 32-voxel block this model reads")
        c = [s // 2 - 16 for s in ct.shape]
        block = ct[c[0]:c[0] + 32, c[1]:c[1] + 16, c[2]:c[2] + 16].transpose(2, 1, 0)  # (z, y, x)
        inputs["CT block"] = (np.clip(block, -1000, 2000) + 1000) / 3000 * 2 - 1

    def rel(got, want):
        return (np.sqrt(np.mean((got - want) ** 2)) / np.sqrt(np.mean(want ** 2)),
                np.max(np.abs(got - want)) / np.max(np.abs(want)))

    for name, v in inputs.items():
        x = np.pad(v, 3)
        want = direct(x, w, exact)
        print(f"{name}: input {v.shape}, output {want.shape}")
        rows = [("direct, float32 operands", direct(x, w, round_f32)), ("direct, bf16 operands", direct(x, w, round_bf16))]
        for m, points in ((4, [0, 1, -1, 2, -2, 0.5]), (2, [0, 1, -1, 2])):
            for label, rnd in (("float32", round_f32), ("bf16", round_bf16)):
                rows.append((f"F({m},4) points {points}, {label}", winograd_w(x, w, m, points, rnd)))
        for label, got in rows:
            rms, mx = rel(got, want)
            print(f"  {label:46s} rms {rms:.2e}  max {mx:.2e}")


if __name__ == "__main__":
    main()
