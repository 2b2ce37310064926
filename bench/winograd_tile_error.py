#!/usr/bin/env python3
"""Rounding error of one 3D Winograd tile in float32, by tile shape and interpolation points.

    /usr/bin/python3 bench/winograd_tile_error.py [--channels 128] [--tiles 30] [--seed 0] [--operands bf16]

A model of one output tile of a 3x3x3 conv (the weights transformed in double and rounded, as
backend/cpu/winograd3d.hpp does; the input transform, the per-point channel sums and the output
transform in float32), against the direct sum in float64, for F(2x2x2), F(2x4x4) and F(4x4x4) with
the classic points (0, 1, -1, 2, -2), F(4x6x6) with F(6,3)'s (0, 1, -1, 2, -2, 1/2, -1/2) along y and
x, and F(2x4x4) with other point sets. Input: ReLU'd standard
normals (an activated feature map); weights: He-scaled normals. Printed: max and median over the
tiles of max |error| / max |exact|, the tests' measure, and the direct float32 sum's for comparison.
This is why volfeat runs F(2x4x4) with the classic points (README.md, "3D Winograd").

--operands bf16: the per-point channel sums take V and U rounded to bf16 (round to nearest even, as
store_bf16/round_to_bf16 do), as bf16 GEMMs would, and the direct column sums bf16-rounded inputs and
weights (the bf16 1x1 and direct convs). Why bf16's Winograd tile is F(2x2x2) only: bench/README.md,
session 43.
"""
import argparse

import numpy as np

from stem_winograd_error import round_bf16


def toom_cook(points, m, r=3):
    """A^T (m x n), G (n x r), B^T (n x n) of F(m, r) for the finite points (plus infinity)."""
    n = m + r - 1
    p = np.array(points, float)
    at = np.zeros((m, n))
    for i in range(m):
        at[i, : n - 1] = p**i
    at[m - 1, n - 1] = 1
    g = np.zeros((n, r))
    for j in range(n - 1):
        g[j] = p[j] ** np.arange(r) / np.prod([p[j] - p[k] for k in range(n - 1) if k != j])
    g[n - 1, r - 1] = 1
    # B^T from the identity A^T [(G g) * (B^T d)] = correlation of d and g, for every d and g.
    eqs, rhs = [], []
    for i in range(m):
        for k in range(r):
            for j in range(n):
                row = np.zeros((n, n))
                for t in range(n):
                    row[t, j] = at[i, t] * g[t, k]
                eqs.append(row.ravel())
                rhs.append(1.0 if j == i + k else 0.0)
    bt = np.linalg.lstsq(np.array(eqs), np.array(rhs), rcond=None)[0].reshape(n, n)
    return bt, g, at


CLASSIC = {2: [0, 1, -1], 4: [0, 1, -1, 2, -2], 6: [0, 1, -1, 2, -2, 0.5, -0.5]}


def tile(d, w, ms, points, operands="float32"):
    mats = [toom_cook(points.get(m, CLASSIC[m]), m) for m in ms]
    f = np.float32
    u = np.einsum("az,by,cx,izyx->iabc", mats[0][1], mats[1][1], mats[2][1], w).astype(f)
    v = np.einsum("az,by,cx,izyx->iabc", *(mm[0].astype(f) for mm in mats), d.astype(f))
    if operands == "bf16":
        u, v = round_bf16(u).astype(f), round_bf16(v).astype(f)
    prod = np.einsum("iabc,iabc->abc", u, v)
    return np.einsum("za,yb,xc,abc->zyx", *(mm[2].astype(f) for mm in mats), prod)


def direct(d, w, ms, dtype):
    d, w = d.astype(dtype), w.astype(dtype)
    out = np.zeros(ms, dtype)
    for z in range(ms[0]):
        for y in range(ms[1]):
            for x in range(ms[2]):
                out[z, y, x] = np.sum(d[:, z : z + 3, y : y + 3, x : x + 3] * w)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--tiles", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--operands", choices=["float32", "bf16"], default="float32",
                    help="what the per-point sums multiply: float32, or V and U rounded to bf16")
    a = ap.parse_args()
    cases = [
        ("F(2x2x2), classic", (2, 2, 2), {}),
        ("F(2x4x4), classic", (2, 4, 4), {}),
        ("F(4x4x4), classic", (4, 4, 4), {}),
        ("F(4x6x6), classic", (4, 6, 6), {}),
        ("F(2x4x4), points 0 1 -1 1/2 -1/2", (2, 4, 4), {4: [0, 1, -1, 0.5, -0.5]}),
        ("F(2x4x4), points 0 1 -1 2 -1/2", (2, 4, 4), {4: [0, 1, -1, 2, -0.5]}),
    ]
    print(f"{a.channels} input channels, {a.tiles} random tiles each, {a.operands} operands against float64")
    for name, ms, points in cases:
        rng = np.random.default_rng(a.seed)
        wino, dirs = [], []
        for _ in range(a.tiles):
            d = np.maximum(rng.standard_normal((a.channels, ms[0] + 2, ms[1] + 2, ms[2] + 2)), 0)
            w = rng.standard_normal((a.channels, 3, 3, 3)) * np.sqrt(2 / (27 * a.channels))
            exact = direct(d, w, ms, np.float64)
            scale = np.abs(exact).max()
            wino.append(np.abs(tile(d, w, ms, points, a.operands) - exact).max() / scale)
            if a.operands == "bf16":
                d, w = round_bf16(d), round_bf16(w)
            dirs.append(np.abs(direct(d, w, ms, np.float32) - exact).max() / scale)
        print(f"  {name:36s} Winograd max {max(wino):.2e} median {np.median(wino):.2e}"
              f" | direct max {max(dirs):.2e}")


if __name__ == "__main__":
    main()
