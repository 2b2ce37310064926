"""volfeat from Python: numpy in, numpy and pandas out, the CLI's pipeline underneath.

    import volfeat
    r = volfeat.extract(ct="ct.nii.gz", mask="labels.nii.gz", labels={"femur": 1, "hip": 2},
                        weights="dn121.npz", layers=["denseblock2", "denseblock3"])
    r.similarities          # pandas.DataFrame: index = pairs, columns = layers (similarities.csv)
    r.features              # {(region, layer): float64 vector} (features.npz)
    r.run                   # run.json as a dict

The commands: extract, sweep, landmarks, preprocess, report and merge, each the CLI's command of that name;
read_ct / read_nifti / list_series read volumes (NIfTI files, DICOM series directories); Network runs a network.
Every keyword of a command is the CLI option of the same name (``--crop-to-labels`` is ``crop_to_labels``),
parsed and checked by the CLI's own code. Arrays are (D, H, W), the README's axis
convention. Errors are ValueError (FileNotFoundError for a missing file, MemoryError when a run would
not fit) with the message the CLI prints. Progress goes to stderr unless quiet=True; Ctrl-C stops a run.
"""
import json
import os
import shutil
import tempfile

import numpy as np

from . import _volfeat

__version__ = _volfeat.__version__
dicom_support = _volfeat.dicom_support  # built with GDCM: DICOM directories as ct (read_ct, list_series, extract)
cpu_isa = _volfeat.cpu_isa  # the Cpu kernels' instruction set: "avx512", "avx2" or "generic" (VOLFEAT_CPU_ISA)
__all__ = ["extract", "sweep", "landmarks", "preprocess", "report", "merge", "read_nifti", "read_ct", "list_series",
           "Network", "ExtractResult", "LandmarksResult", "PreprocessResult", "CohortTables", "VolumesFailed"]

# keyword -> kind: "value" (--name VALUE), "flag" (--name when true), "list" (--name a,b,c)
_COMMON = {
    "ct": "value", "series": "value", "mask": "value", "labels": "labels", "no_background": "flag",
    "normalize": "value", "resample": "value", "crop_to_labels": "value", "nan_to": "value", "weights": "value",
    "inflate": "value",
    "axis": "value", "stem": "value", "seed": "value", "arch": "value", "layers": "list", "preset": "value",
    "out": "value", "threads": "value", "quiet": "flag", "max_memory": "value", "precision": "value",
    "stream_weights": "value", "denoise": "value", "contrast": "value", "wait_lock": "value",
}
_EXTRACT = dict(_COMMON, mode="value", pool="value", manifest="value", shard="value")
_REPORT = dict(_COMMON, mode="value", pool="value")  # `volfeat report --preset NAME`: extract's options, one volume
_SWEEP = dict(_COMMON, schemes="list", pools="list", modes="list", similarities="list", manifest="value",
              shard="value", null_seeds="value")
# `volfeat landmarks`: the paper's grid (archs x schemes x layers x patch sizes) on one template
_LANDMARKS = {
    "ct": "value", "series": "value", "mask": "value", "labels": "labels", "normalize": "value", "resample": "value",
    "weights": "value", "axis": "value", "stem": "value", "seed": "value", "arch": "list", "schemes": "list",
    "layers": "list", "patch": "list", "rotate": "list", "translate": "list", "radius": "value", "stride": "value",
    "max_landmarks": "value", "dense": "flag", "fill_hu": "value", "out": "value", "wait_lock": "value",
    "threads": "value", "precision": "value", "stream_weights": "value", "quiet": "flag",
}
# `volfeat preprocess`: the CT through extract's intensity stages, without a network
_PREPROCESS = {
    "ct": "value", "series": "value", "mask": "value", "labels": "labels", "no_background": "flag", "denoise": "value",
    "contrast": "value", "normalize": "value", "nan_to": "value", "out": "value", "wait_lock": "value",
    "threads": "value", "quiet": "flag",
}


def _text(value):
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("expected a value, not a bool")
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def _cli_args(options, table, function):
    """Keywords -> the CLI's argument list, in the order given."""
    args = []
    for key, value in options.items():
        kind = table.get(key)
        if kind is None:
            raise TypeError(f"volfeat.{function}() got an unexpected keyword argument {key!r} "
                            f"(options: {', '.join(sorted(table))})")
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if kind == "flag":
            if value:
                args.append(flag)
        elif kind == "labels":
            if isinstance(value, dict):
                value = ",".join(f"{name}={int(label)}" for name, label in value.items())
            args += [flag, _text(value)]
        elif kind == "list":  # a comma string, a sequence, or one value (patch=12, rotate=10)
            if not isinstance(value, (str, bytes, os.PathLike)) and hasattr(value, "__iter__"):
                value = ",".join(_text(v) for v in value)
            args += [flag, _text(value)]
        else:
            args += [flag, _text(value)]
    return args


def _call_text(function, options):
    """What run.json's "command" records for a call from Python."""
    def show(v):
        if isinstance(v, np.ndarray):
            return f"<array {v.shape} {v.dtype}>"
        return repr(os.fspath(v) if isinstance(v, os.PathLike) else v)
    return f"volfeat.{function}(" + ", ".join(f"{k}={show(v)}" for k, v in options.items() if v is not None) + ")"


class FeatureDict(dict):
    """{(region, layer): vector}, keyed by the full module names of features.npz
    ("features.denseblock2"); the short names of the similarity table ("denseblock2") work too."""

    def _full(self, key):
        if isinstance(key, tuple) and len(key) == 2 and not dict.__contains__(self, key):
            return (key[0], "features." + key[1])
        return key

    def __getitem__(self, key):
        return dict.__getitem__(self, self._full(key))

    def __contains__(self, key):
        return dict.__contains__(self, self._full(key))

    def get(self, key, default=None):
        return dict.get(self, self._full(key), default)


class ExtractResult:
    """One extract run: what `volfeat extract --out DIR` writes, as Python objects."""

    def __init__(self, raw, out):
        import io

        import pandas as pd
        self.similarities = pd.DataFrame(raw["values"], index=pd.Index(raw["pairs"], name="pair"),
                                         columns=raw["layers"], dtype=float)
        self.features = FeatureDict(raw["features"])
        self.run = json.loads(raw["run_json"])
        self.region_report = _read_csv(io.StringIO(raw["region_report_csv"]), ["region"])
        self.out = out

    @classmethod
    def _from_dir(cls, out, keep):
        """An ExtractResult read back from the files a run wrote in out (report())."""
        import pandas as pd
        self = cls.__new__(cls)
        self.similarities = pd.read_csv(os.path.join(out, "similarities.csv"), index_col="pair", dtype={"pair": str},
                                        float_precision="round_trip")
        with np.load(os.path.join(out, "features.npz")) as z:
            self.features = FeatureDict({tuple(k.split("/", 1)): z[k] for k in z.files})
        self.run = json.load(open(os.path.join(out, "run.json")))
        self.region_report = _read_csv(os.path.join(out, "region_report.csv"), ["region"])
        self.out = out if keep else None
        return self

    @property
    def layers(self):
        return list(self.similarities.columns)

    @property
    def pairs(self):
        return list(self.similarities.index)

    def __repr__(self):
        w = self.run["weights"]
        return (f"<volfeat.ExtractResult: {len(self.pairs)} pairs x {len(self.layers)} layers, "
                f"{self.run['config']['mode']} mode, {self.run['config']['pool']} pooling, weights {w['kind']}>\n"
                f"{self.similarities.round(4).to_string()}")


class CohortTables:
    """A cohort's tables, as `volfeat extract --manifest M --out DIR` writes them in DIR (each volume's
    own outputs are in DIR/ID/): features (features_long.csv: volume, region, layer, channel, value) and
    similarities (similarities_across_volumes.csv: region, layer, volume_a, volume_b, cosine)."""

    def __init__(self, out):
        self.out = os.fspath(out)
        read = lambda name, text: _read_csv(os.path.join(self.out, name), text)
        self.features = read("features_long.csv", ["volume", "region", "layer"])
        self.similarities = read("similarities_across_volumes.csv", ["region", "layer", "volume_a", "volume_b"])

    @property
    def volumes(self):
        return sorted(set(self.features["volume"]))

    def __repr__(self):
        return f"<volfeat.CohortTables: {len(self.volumes)} volumes in {self.out}>"


class VolumesFailed(RuntimeError):
    """Some volumes of a cohort failed; the others' results are written. The CLI's exit status 3.

    failures: DIR/failures.csv as a DataFrame (unit, message, ...); result: what the call returns
    otherwise (the sweep's DataFrame or extract's CohortTables over the volumes that succeeded), or None
    while other shards still owe units."""

    def __init__(self, out, result):
        import pandas as pd
        self.out = os.fspath(out)
        path = os.path.join(self.out, "failures.csv")
        if os.path.isfile(path):
            self.failures = pd.read_csv(path, keep_default_na=False, dtype=str)
        else:  # written by the run that finishes the cohort's last unit; until then, each unit's own record
            failed = os.path.join(self.out, "cohort", "failed")
            names = sorted(os.listdir(failed)) if os.path.isdir(failed) else []
            self.failures = pd.DataFrame({"unit": [n[:-len(".txt")] for n in names],
                                          "message": [open(os.path.join(failed, n)).read().strip() for n in names]})
        self.result = result
        first = self.failures.iloc[0].to_dict() if len(self.failures) else {}
        super().__init__(f"{len(self.failures)} unit(s) of the cohort in {self.out} failed (see "
                         f"{self.out}/failures.csv); first: {first}")


def _cohort_result(status, out, read):
    """The cohort's merged result (None while other shards owe units), or VolumesFailed for exit status 3."""
    result = read(out)
    if status == _volfeat.EXIT_SOME_FAILED:
        raise VolumesFailed(out, result)
    return result


def _need_out(options, function):
    if options.get("out") is None:
        raise ValueError(f"{function}: manifest/shard need out=DIR (the cohort's directory, shared by its shards)")


def _merged_sweep(out):
    path = os.path.join(os.fspath(out), "sweep.csv")
    return _read_sweep_csv(path) if os.path.isfile(path) else None


def _merged_extract(out):
    ok = os.path.isfile(os.path.join(os.fspath(out), "similarities_across_volumes.csv"))
    return CohortTables(out) if ok else None


def merge(out):
    """`volfeat merge DIR`: writes a cohort's tables from the units its shards finished and returns them
    (the sweep's DataFrame, or extract's CohortTables). ValueError while some units are unfinished."""
    out = os.fspath(out)
    status = _volfeat.merge(out)
    plan = json.load(open(os.path.join(out, "cohort", "plan.json")))
    return _cohort_result(status, out, _merged_sweep if plan.get("command") == "sweep" else _merged_extract)


def _is_array(x):
    return x is not None and not isinstance(x, (str, bytes, os.PathLike))


def _c_array(x, name):
    """C order, native byte order, in the array's own dtype (no copy when it already is): C++ reads it once."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: dtype {a.dtype}: expected an integer or float array")
    if a.dtype == np.float16 or a.dtype.itemsize > 8:
        a = a.astype(np.float64)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a)


def extract(ct=None, mask=None, *, spacing=None, affine=None, **options):
    """`volfeat extract` from Python.

    ct: a NIfTI path or a DICOM series directory (series="UID" picks one where it holds several, as
    --series); mask: a NIfTI path. Or both (D, H, W) arrays of any int/float dtype (then spacing=(sd, sh, sw)
    in mm, default 1 mm, or a 4x4 NIfTI (i,j,k) affine). Keywords: every option of `volfeat extract`
    (labels={"femur": 1, "tibia": 2} or "femur=1,tibia=2", layers=[...], mode, pool, normalize, weights,
    inflate, axis, stem, seed, arch, preset, denoise, contrast, resample, crop_to_labels, nan_to, no_background,
    threads, quiet, max_memory, precision, stream_weights, wait_lock); out=DIR also writes the CLI's files there.
    Returns an ExtractResult.

    A cohort: extract(manifest="cohort.csv", out=DIR[, shard="2/4"], ...) as `volfeat extract --manifest`:
    DIR/ID/ per volume, and returns CohortTables once every volume is done (None when this shard finished
    its share but others have not: the last one to finish writes the tables; or merge(DIR)). When some
    volumes failed it raises VolumesFailed, whose .result holds the others' tables.
    """
    options = dict(options)
    if options.get("manifest") is not None or options.get("shard") is not None:
        if ct is not None or mask is not None or spacing is not None or affine is not None:
            raise ValueError("extract: manifest= reads its volumes from the manifest; ct/mask/spacing/affine are for "
                             "one volume")
        _need_out(options, "extract")
        status = _volfeat.extract_cohort(_cli_args(options, _EXTRACT, "extract"), _call_text("extract", options))
        return _cohort_result(status, options["out"], _merged_extract)
    shown = dict(ct=ct, mask=mask, spacing=spacing, **options)
    if _is_array(ct) != _is_array(mask) or (ct is None) != (mask is None):
        raise ValueError("ct and mask go together: both NIfTI paths or both (D, H, W) arrays "
                         "(neither: the built-in knee phantom)")
    ct_array = mask_array = None
    if _is_array(ct):
        if options.get("series") is not None:
            raise ValueError("series picks a DICOM series of a ct directory; arrays have none")
        ct_array, mask_array = _c_array(ct, "ct"), _c_array(mask, "mask")
    else:
        options = dict(ct=ct, mask=mask, **options)
        if spacing is not None or affine is not None:
            raise ValueError("spacing and affine describe arrays; NIfTI files carry their own")
    if affine is not None:
        affine = np.asarray(affine, dtype=float)
        if affine.shape != (4, 4):
            raise ValueError(f"affine: expected a 4x4 NIfTI (i,j,k) affine, got shape {affine.shape}")
        if spacing is None:  # column norms of the (i,j,k) affine, in (D,H,W) = (k,j,i) order
            spacing = tuple(float(np.linalg.norm(affine[:3, c])) for c in (2, 1, 0))
        affine = [list(map(float, row)) for row in affine]
    spacing = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    if len(spacing) != 3:
        raise ValueError(f"spacing {spacing}: expected three sizes in mm, (D, H, W) order")
    out = options.get("out")
    args = _cli_args(options, _EXTRACT, "extract")
    raw = _volfeat.extract(args, _call_text("extract", shown), ct_array, mask_array, spacing, affine, out is not None)
    return ExtractResult(raw, None if out is None else os.fspath(out))


def _read_csv(source, text=()):
    """A CSV volfeat wrote, as it wrote it: empty cells are NaN and nothing else is ("NA" stays a string), the
    %.17g floats come back as the exact doubles (round_trip), and the `text` columns stay strings."""
    import pandas as pd
    return pd.read_csv(source, keep_default_na=False, na_values=[""], float_precision="round_trip",
                       dtype={c: str for c in text})


def _read_sweep_csv(path):
    return _read_csv(path, ["volume", "scheme", "mode", "layer", "pool", "similarity", "pair", "region_a", "region_b",
                            "weights_kind", "weights_sha256"])


def sweep(ct=None, mask=None, **options):
    """`volfeat sweep` from Python: the same keywords (schemes, pools, modes, similarities, null_seeds,
    manifest, shard, layers, ... as lists or comma strings; ct a NIfTI file or a DICOM directory, series=).
    Returns sweep.csv as a pandas.DataFrame. With out=DIR the sweep lives there (and resumes there); without,
    in a temporary directory.

    shard="i/N" (with out=DIR) computes this shard's share of a manifest's units and returns sweep.csv
    once the whole cohort is done, None while other shards still owe units. When some volumes failed it
    raises VolumesFailed (DIR/failures.csv; .result holds the other volumes' rows)."""
    options = dict(ct=ct, mask=mask, **options)
    if options.get("shard") is not None:
        _need_out(options, "sweep")
    return _files_run("sweep", options, _SWEEP, "sweeps read files; extract takes arrays",
                      lambda out, status, keep: _cohort_result(status, out, _merged_sweep))


def _files_run(function, options, table, hint, read):
    """Runs `volfeat FUNCTION` on options, whose ct and mask are paths (hint: where arrays go instead). With
    out=DIR its files stay there; without, in a temporary directory, removed once read(out, status, keep) has
    read them (status: the command's exit status, 0 or EXIT_SOME_FAILED; keep: whether out stays)."""
    for key in ("ct", "mask"):
        if _is_array(options.get(key)):
            raise ValueError(f"{function}: {key} must be a path ({hint})")
    tmp = None
    if options.get("out") is None:
        tmp = tempfile.mkdtemp(prefix=f"volfeat_{function}_")
        options["out"] = tmp
    try:
        status = getattr(_volfeat, function)(_cli_args(options, table, function), _call_text(function, options))
        return read(os.fspath(options["out"]), status, tmp is None)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class LandmarksResult:
    """One landmarks run: what `volfeat landmarks --out DIR` writes, as Python objects. rows: landmarks.csv (one
    row per arch x scheme x layer x patch x landmark: template, true and matched positions, errors in mm);
    summary: landmarks_summary.csv (the paper's table: mean error before / after matching, paired t and p);
    run: landmarks_run.json as a dict; out: DIR (None when the run used a temporary directory)."""

    def __init__(self, out, keep):
        text = ["arch", "scheme", "layer", "module", "landmark", "region", "kind", "note"]
        read = lambda name: _read_csv(os.path.join(out, name), text)
        self.rows = read("landmarks.csv")
        self.summary = read("landmarks_summary.csv")
        self.run = json.load(open(os.path.join(out, "landmarks_run.json")))
        self.out = out if keep else None

    def __repr__(self):
        cols = ["arch", "scheme", "layer", "patch", "n", "before_mean_mm", "after_mean_mm", "t", "p"]
        return (f"<volfeat.LandmarksResult: {len(self.run['landmarks'])} landmarks, {len(self.summary)} "
                f"configurations>\n{self.summary[cols].round(4).to_string(index=False)}")


def landmarks(ct=None, mask=None, **options):
    """`volfeat landmarks` from Python (Avants et al.'s landmark matching): the same keywords (arch, schemes,
    layers, patch, rotate, translate, radius, stride, max_landmarks, dense, fill_hu, weights, normalize,
    resample, series, ... lists as Python lists or comma strings). ct, mask: NIfTI paths (ct also a DICOM
    directory), or neither: the built-in knee phantom. Returns a LandmarksResult. With out=DIR the three files
    stay there; without, the run uses a temporary directory."""
    options = dict(ct=ct, mask=mask, **options)
    return _files_run("landmarks", options, _LANDMARKS, "the template is read from files; read_ct and read_nifti "
                      "give arrays", lambda out, status, keep: LandmarksResult(out, keep))


class PreprocessResult:
    """One preprocess run: what `volfeat preprocess --out DIR` writes, as Python objects. volume, spacing, affine:
    preprocessed.nii.gz (float32 (D, H, W), the volume the network would see: denoise -> contrast -> normalize);
    report: intensity_report.csv (per stage and region); run: run.json as a dict; out: DIR (None when the run used
    a temporary directory; intensity.png is then gone with it)."""

    def __init__(self, out, keep):
        self.volume, self.spacing, self.affine = read_nifti(os.path.join(out, "preprocessed.nii.gz"))
        self.report = _read_csv(os.path.join(out, "intensity_report.csv"), ["stage", "region", "label"])
        self.run = json.load(open(os.path.join(out, "run.json")))
        self.out = out if keep else None

    def __repr__(self):
        c = self.run["config"]
        return (f"<volfeat.PreprocessResult: {self.volume.shape} voxels, denoise {c['denoise']}, contrast "
                f"{c['contrast']}, normalize {c['normalize']}>")


def preprocess(ct, mask=None, **options):
    """`volfeat preprocess` from Python: the CT (a NIfTI path or a DICOM directory, series= as --series) through
    extract's intensity stages, denoise -> contrast -> normalize, and the intensity report before/after, per
    region of mask (labels=...). Keywords: the CLI's options (denoise, contrast, normalize, nan_to, labels,
    no_background, threads, quiet, wait_lock). Returns a PreprocessResult. With out=DIR the files stay there;
    without, the run uses a temporary directory."""
    options = dict(ct=ct, mask=mask, **options)
    return _files_run("preprocess", options, _PREPROCESS, "extract(ct=array, denoise=..., contrast=...) runs the "
                      "same stages on arrays", lambda out, status, keep: PreprocessResult(out, keep))


def report(preset, ct=None, mask=None, **options):
    """`volfeat report --preset NAME` from Python: one of the seed reports' tables (denseblock4-tail,
    last-3rd-5th, block-outputs; README "Our tables") with that report's settings (labels, mode, pooling,
    scheme, normalisation, layers) wherever a keyword does not set them; the keywords are extract's, for
    NIfTI paths or a DICOM directory (no ct: the phantom). Returns the run's ExtractResult, with .title
    and .published: the report's published table (pairs x its columns; other weights and another CT) where
    it has one, else None. With out=DIR the files stay there; without, a temporary directory."""
    import pandas as pd
    p = json.loads(_volfeat.report_preset(str(preset)))
    options = dict(preset=preset, ct=ct, mask=mask, **options)
    r = _files_run("report", options, _REPORT, "extract(ct=array, ...) takes arrays",
                   lambda out, status, keep: ExtractResult._from_dir(out, keep))
    r.title = p["title"]
    pub = p.get("published")
    r.published = None if not pub else pd.DataFrame(pub["rows"], index=p["columns"], dtype=float).T.rename_axis("pair")
    return r


def read_nifti(path, labels=False):
    """(array (D, H, W), spacing (sd, sh, sw) in mm, affine 4x4 in NIfTI (i,j,k) order), as volfeat
    reads the file: float32 with scl_slope/scl_inter applied, or int32 labels with labels=True."""
    return _volfeat.read_nifti(os.fspath(path), bool(labels))


def read_ct(path, series=None):
    """(array (D, H, W) float32 in HU, spacing (sd, sh, sw) in mm, affine 4x4 in NIfTI (i,j,k) order), the
    CT as every command reads --ct: a NIfTI file, or a directory holding a DICOM series (slices ordered
    along their normal, RescaleSlope/Intercept applied, LPS turned into volfeat's RAS; README "DICOM input").
    series="UID" picks one series where the directory holds several (list_series names them)."""
    return _volfeat.read_ct(os.fspath(path), "" if series is None else str(series))


def list_series(path):
    """The series of a DICOM directory, as `volfeat info DIR` lists them: a list of dicts with uid,
    description, modality and files (the number of files). Reads the headers only."""
    return _volfeat.list_series(os.fspath(path))


class Network:
    """An inflated 3D network, built as extract builds it.

    Network("dn121.npz", inflate="i3d-mean", axis="D", stem="sum")   # a 2D export inflated on load, or a 3D file
    Network(arch="densenet121", seed=0)                              # volfeat's seeded random network
    net.forward(x, layers=["denseblock1", "transition2"])           # {name: (C, D, H, W) float32}
    """

    def __init__(self, weights=None, *, inflate=None, axis="D", stem=None, seed=0, arch=None, quiet=False,
                 precision="float32", stream_weights=None):
        self._net = _volfeat.Network(None if weights is None else os.fspath(weights), inflate, str(axis), stem,
                                     int(seed), arch, bool(quiet), str(precision),
                                     None if stream_weights is None else os.fspath(stream_weights))
        self.weights = None if weights is None else os.fspath(weights)

    def forward(self, x, layers, quiet=None):
        """x: (D, H, W) array (or (C, D, H, W) for an RGB stem), any real dtype; float32 C-order is read in
        place. layers: module names as extract's layers (short or full names, conv[-k], containers).
        Returns {name as given: (C, D, H, W) float32}. The pass stops after the deepest requested layer."""
        if isinstance(layers, str):
            layers = [layers]
        return self._net.forward(np.asarray(x), list(layers), quiet)

    def modules(self):
        """Every module name forward() can return, in execution order."""
        return self._net.modules()

    def resolve(self, selector):
        """The full module name a layer selector denotes."""
        return self._net.resolve(selector)

    arch = property(lambda self: self._net.arch)
    precision = property(lambda self: self._net.precision,
                         doc="float32 | bf16: what the convs run (bf16 asked for on a CPU without it: float32)")
    precision_note = property(lambda self: self._net.precision_note, doc="why precision is not what was asked, or ''")
    precision_kernels = property(lambda self: self._net.precision_kernels,
                                 doc="which kernels run bf16 (AMX tiles or AVX512-BF16), or '' in float32")
    stream_weights = property(lambda self: self._net.stream_weights,
                              doc="the directory the packed weights are streamed from (stream_weights=), or None")
    input_channels = property(lambda self: self._net.input_channels)
    kind = property(lambda self: self._net.kind, doc="pretrained | seeded-init | random | unknown")
    sha256 = property(lambda self: self._net.sha256)
    description = property(lambda self: self._net.description)
    meta = property(lambda self: json.loads(self._net.meta))

    def __repr__(self):
        return f"<volfeat.Network {self.arch}: {self.description}>"
