"""The small cohort the cohort tests share: three knee phantoms of mixed sizes (24x32x32 up to
40x48x48, about 0.1 s per unit on Zen 3), a manifest over them, optionally a fourth volume that is not a NIfTI
file, and the sweep and extract settings (12 units of 24 rows; 3 volume directories)."""
import os

from harness import cli_runner, csv_rows

SIZES = {"small": "24,32,32", "large": "40,48,48", "medium": "32,40,40"}
KEY = 7
# columns that differ between two runs of the same sweep: timings and timestamps
VOLATILE = ("forward_seconds", "finished_at")


def make_cohort(binary, work, bad=False):
    """Writes the phantoms (once) and a manifest; returns its path."""
    run = cli_runner(binary)
    lines = ["id,ct,mask,labels"]
    for i, (name, dims) in enumerate(SIZES.items()):
        d = os.path.join(work, "phantom_" + name)
        if not os.path.exists(os.path.join(d, "knee_labels.nii.gz")):
            run("phantom", "--dims", dims, "--seed", str(i), "--out", d)
        lines.append(f"{name},{d}/knee_ct.nii.gz,{d}/knee_labels.nii.gz,\"femur=1,tibia=2\"")
    if bad:
        broken = os.path.join(work, "broken_ct.nii.gz")
        with open(broken, "w") as f:
            f.write("this is not a NIfTI file\n")
        lines.insert(2, f"broken,{broken},{work}/phantom_small/knee_labels.nii.gz,\"femur=1,tibia=2\"")
    manifest = os.path.join(work, "manifest_bad.csv" if bad else "manifest.csv")
    with open(manifest, "w") as f:
        f.write("\n".join(lines) + "\n")
    return manifest


def sweep_args(manifest):
    return ["sweep", "--manifest", manifest, "--schemes", "random", "--null-seeds", "1", "--layers", "conv0,pool0",
            "--pools", "mean,max", "--modes", "shared,mask-input", "--similarities", "cosine,euclidean", "--quiet"]


def extract_args(manifest):
    return ["extract", "--manifest", manifest, "--layers", "conv0,pool0", "--quiet"]


def stable_rows(path):
    """The rows of a sweep.csv without their timing columns, in file order."""
    header, rows = csv_rows(path)
    keep = [i for i, h in enumerate(header) if h not in VOLATILE]
    return [[r[i] for i in keep] for r in rows]


def assert_same_sweep(got_dir, want_dir):
    got, want = stable_rows(os.path.join(got_dir, "sweep.csv")), stable_rows(os.path.join(want_dir, "sweep.csv"))
    keys = [tuple(r[:KEY]) for r in got]
    assert len(set(keys)) == len(keys), "duplicated rows"
    assert {tuple(r[:KEY]) for r in got} == {tuple(r[:KEY]) for r in want}, "rows lost or extra"
    assert got == want, "same keys, but other values or order: " + str(
        next((g, w) for g, w in zip(got, want) if g != w))


def assert_same_extract(got_dir, want_dir, ids):
    for name in ("features_long.csv", "similarities_across_volumes.csv"):
        got, want = csv_rows(os.path.join(got_dir, name)), csv_rows(os.path.join(want_dir, name))
        assert got == want, f"{name} differs"
    for i in ids:
        for name in ("similarities_long.csv", "similarities.csv"):
            with open(os.path.join(got_dir, i, name)) as g, open(os.path.join(want_dir, i, name)) as w:
                assert g.read() == w.read(), f"{i}/{name} differs"
