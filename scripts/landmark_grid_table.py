#!/usr/bin/python3
"""The paper's network x layer x patch grid of paired t statistics, as a markdown table, from a
`volfeat landmarks` run's landmarks_summary.csv:

    /usr/bin/python3 scripts/landmark_grid_table.py OUT/landmarks_summary.csv

A cell is t (before vs after matching; positive: matching reduced the error), `n/a` where the patch is too small
for the layer, and `–` where every landmark stayed where it was (t undefined: no variance of the differences).
"""
import sys

import pandas as pd


def main(path):
    s = pd.read_csv(path)

    def cell(r):
        if pd.isna(r["t"]):
            return "n/a" if r["n"] == 0 else "–"
        return f"{r['t']:.2f}"

    s["cell"] = s.apply(cell, axis=1)
    s["arch_order"] = s["arch"].map({a: i for i, a in enumerate(dict.fromkeys(s["arch"]))})
    s["layer_order"] = s["layer"].map({a: i for i, a in enumerate(dict.fromkeys(s["layer"]))})
    s["scheme_order"] = s["scheme"].map({a: i for i, a in enumerate(dict.fromkeys(s["scheme"]))})
    patches = sorted(s["patch"].unique())
    rows = s.sort_values(["arch_order", "scheme_order", "layer_order"]).drop_duplicates(["arch", "scheme", "layer"])
    print("| arch | scheme | layer | " + " | ".join(f"P={p}" for p in patches) + " |")
    print("|---|---|---|" + "---:|" * len(patches))
    for _, r in rows.iterrows():
        sel = s[(s["arch"] == r["arch"]) & (s["scheme"] == r["scheme"]) & (s["layer"] == r["layer"])]
        cells = [sel[sel["patch"] == p]["cell"].iloc[0] if (sel["patch"] == p).any() else "" for p in patches]
        print(f"| {r['arch']} | {r['scheme']} | {r['layer']} | " + " | ".join(cells) + " |")
    print(f"\n{int(s['n'].max())} landmarks; error before matching {s['before_mean_mm'].dropna().iloc[0]:.2f} mm (mean)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
