#!/usr/bin/python3
"""Why bf16's Winograd tile is F(2x2x2): a 3x3x3 conv's rounding error when its GEMMs take bf16 operands.

A bf16 GEMM inside Winograd multiplies the transformed input V and weights U, both rounded to bf16 (8 bits of
mantissa), and accumulates in float. The larger the tile, the larger the transforms' coefficients (F(4,3)'s
points +-2, F(6,3)'s +-1/2) and the more the inverse transform amplifies those roundings. This script measures
it in float64: one conv's outputs, per tile, against the direct conv, with V and U rounded to bf16 as
`store_bf16`/`round_to_bf16` round them (nearest, ties to even), and the direct conv on bf16 inputs and weights
(what the bf16 1x1 and direct convs do) as the floor. Inputs are ReLU'd normals (a dense layer's BN+ReLU
prologue), weights Kaiming-normal: DenseNet-121's 128 -> 32 conv by default.

    /usr/bin/python3 bench/winograd_bf16_error.py [--cin 128] [--cout 32] [--tiles 6] [--seed 0]

Printed: relative L2 error ||y - y_exact|| / ||y_exact|| and the largest error over the largest |y_exact|, over
--tiles output tiles of each kind. bench/README.md ("bf16 GEMMs in F(4x4x4)?") has the figures.
"""
import argparse

import numpy as np


def axis(m, points):
    """F(m, 3) along one axis, finite points `points` (m + 1 of them) and infinity: A^T (m x n), G (n x 3),
    B^T (n x n), n = m + 2. A^T and G from the points (Cook-Toom); B^T solved so the algorithm is exact."""
    r, n = 3, m + 2
    assert len(points) == n - 1
    at, g = np.zeros((m, n)), np.zeros((n, r))
    for j, p in enumerate(points):
        at[:, j] = [p**i for i in range(m)]
        g[j] = [p**k / np.prod([p - q for q in points if q != p]) for k in range(r)]
    at[m - 1, n - 1] = g[n - 1, r - 1] = 1
    # y_i = sum_k g_k d_{i+k} for every g and d: sum_j A^T[i,j] G[j,k] B^T[j,l] = [l == i + k]
    a = np.array([[at[i, j] * g[j, k] for j in range(n)] for i in range(m) for k in range(r)])
    bt = np.stack([np.linalg.lstsq(a, [float(l == i + k) for i in range(m) for k in range(r)], rcond=None)[0]
                   for l in range(n)], axis=1)
    return at, g, bt


AXES = {2: axis(2, [0, 1, -1]), 4: axis(4, [0, 1, -1, 2, -2]), 6: axis(6, [0, 1, -1, 2, -2, 0.5, -0.5])}


def round_bf16(x):
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32).astype(np.float64)


def along3(mats, x):  # mats[0] along z, mats[1] along y, mats[2] along x (the last three axes of x)
    x = np.einsum("ia,...abc->...ibc", mats[0], x)
    x = np.einsum("jb,...ibc->...ijc", mats[1], x)
    return np.einsum("kc,...ijc->...ijk", mats[2], x)


def winograd(d, w, tile, rounding):
    """One output tile (tz, ty, tx) of a 3x3x3 conv: d (C_in, tz+2, ty+2, tx+2), w (C_out, C_in, 3, 3, 3)."""
    at, g, bt = zip(*(AXES[t] for t in tile))
    v, u = rounding(along3(bt, d)), rounding(along3(g, w))
    return along3(at, np.einsum("cxyz,ocxyz->oxyz", v, u))


def direct(d, w, tile):
    out = np.zeros((w.shape[0],) + tile)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                out += np.einsum("oi,izyx->ozyx", w[:, :, a, b, c], d[:, a:a + tile[0], b:b + tile[1], c:c + tile[2]])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cin", type=int, default=128)
    ap.add_argument("--cout", type=int, default=32)
    ap.add_argument("--tiles", type=int, default=6, help="output tiles per kind")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    kinds = [("direct, bf16 inputs and weights", None), ("F(2x2x2), bf16 V and U", (2, 2, 2)),
             ("F(2x4x4), bf16 V and U", (2, 4, 4)), ("F(4x4x4), bf16 V and U", (4, 4, 4)),
             ("F(4x6x6), bf16 V and U", (4, 6, 6)), ("F(4x4x4), float32 V and U", (4, 4, 4))]
    # The transforms themselves first: unrounded, every tile is the direct conv to float64's precision.
    d = rng.standard_normal((4, 6, 8, 8))
    w = rng.standard_normal((3, 4, 3, 3, 3))
    for tile in [(2, 2, 2), (2, 4, 4), (4, 4, 4), (4, 6, 6)]:
        exact = direct(d[:, :tile[0] + 2, :tile[1] + 2, :tile[2] + 2], w, tile)
        y = winograd(d[:, :tile[0] + 2, :tile[1] + 2, :tile[2] + 2], w, tile, lambda x: x)
        if np.abs(y - exact).max() > 1e-9 * np.abs(exact).max():
            raise SystemExit(f"winograd_bf16_error.py: F{tile} is not the direct conv unrounded (a transform is wrong)")
    print(f"3x3x3 conv {a.cin} -> {a.cout}, ReLU'd normal input, Kaiming-normal weights, {a.tiles} tiles each")
    for name, tile in kinds:
        err = ref = 0.0
        worst = peak = 0.0
        for _ in range(a.tiles):
            shape = tile or (4, 4, 4)
            d = np.maximum(rng.standard_normal((a.cin,) + tuple(s + 2 for s in shape)), 0)
            w = rng.standard_normal((a.cout, a.cin, 3, 3, 3)) * np.sqrt(2 / (a.cin * 27))
            exact = direct(d, w, shape)
            if tile is None:
                y = direct(round_bf16(d), round_bf16(w), shape)
            else:
                f32 = lambda x: np.asarray(x, np.float32).astype(np.float64)
                y = winograd(d, w, tile, f32 if "float32" in name else round_bf16)
            err, ref = err + np.sum((y - exact) ** 2), ref + np.sum(exact**2)
            worst, peak = max(worst, np.abs(y - exact).max()), max(peak, np.abs(exact).max())
        print(f"  {name:34s} relative L2 {np.sqrt(err / ref):.2e}   max {worst / peak:.2e}")


if __name__ == "__main__":
    main()
