#!/usr/bin/python3
"""Write the bad inputs of tests/bad_inputs: usage make_bad_inputs.py OUTDIR.

Every file is derived from a small valid one (nibabel writes the CT and mask, numpy the DenseNet
state_dicts) by one deliberate defect, so a case fails for the reason it is named after and nothing
else. Nothing binary is committed: this script is the fixture. cases.py says what volfeat must answer
for each file; run_bad_inputs.py runs them. The weights are all-zero convolutions with identity
BatchNorm, stored deflated, so a whole DenseNet-121/169 state_dict takes a few tens of KB.

Also importable: ``seed_corpus(outdir)`` writes small NIfTI/npz/npy seeds for the fuzzers.
"""
import gzip
import io
import json
import os
import struct
import sys
import zipfile
import zlib

try:
    import numpy as np
    import nibabel as nib
except ImportError as e:  # 77 = skipped
    print(f"skipping bad-input fixtures: {e}")
    sys.exit(77)

# ---------------------------------------------------------------------------------------------------
# DenseNet state_dicts with torchvision's key names and shapes (nn/densenet_spec.hpp densenet_params)
# ---------------------------------------------------------------------------------------------------
CONFIGS = {
    "densenet121": (32, 4, 64, (6, 12, 24, 16)),
    "densenet169": (32, 4, 64, (6, 12, 32, 32)),
    "densenet201": (32, 4, 64, (6, 12, 48, 32)),
}


def densenet_shapes(arch="densenet121", spatial=2, stem_in=3, blocks=None):
    """[(key, shape)] in torchvision's state_dict order, classifier and num_batches_tracked included."""
    growth, bn_size, init, layers = CONFIGS[arch]
    layers = tuple(blocks or layers)
    out = []

    def conv(name, o, i, k):
        out.append((name + ".weight", (o, i) + (k,) * spatial))

    def norm(name, ch):
        for leaf in ("weight", "bias", "running_mean", "running_var"):
            out.append((f"{name}.{leaf}", (ch,)))
        out.append((f"{name}.num_batches_tracked", ()))

    conv("features.conv0", init, stem_in, 7)
    norm("features.norm0", init)
    ch = init
    for b, n in enumerate(layers):
        for l in range(n):
            p = f"features.denseblock{b + 1}.denselayer{l + 1}"
            c = ch + l * growth
            norm(p + ".norm1", c)
            conv(p + ".conv1", bn_size * growth, c, 1)
            norm(p + ".norm2", bn_size * growth)
            conv(p + ".conv2", growth, bn_size * growth, 3)
        ch += n * growth
        if b < 3:
            t = f"features.transition{b + 1}"
            norm(t + ".norm", ch)
            conv(t + ".conv", ch // 2, ch, 1)
            ch //= 2
    norm("features.norm5", ch)
    out.append(("classifier.weight", (1000, ch)))
    out.append(("classifier.bias", (1000,)))
    return out


def state_dict(arch="densenet121", spatial=2, stem_in=3, blocks=None, meta=True):
    """Zero convs, identity BN (weight 1, var 1), float32; int64 step counters; volfeat_meta."""
    sd = {}
    for key, shape in densenet_shapes(arch, spatial, stem_in, blocks):
        if key.endswith("num_batches_tracked"):
            sd[key] = np.zeros(shape, np.int64)
        elif key.endswith(".weight") and len(shape) == 1 or key.endswith("running_var"):
            sd[key] = np.ones(shape, np.float32)
        else:
            sd[key] = np.zeros(shape, np.float32)
    if meta:
        m = {"format": "volfeat-weights", "dims": spatial, "arch": arch, "source": "seeded-init", "seed": 0,
             "pth_sha256": None, "randomized_bn": False, "torch": "none (numpy fixture)", "torchvision": "none"}
        sd["volfeat_meta"] = np.frombuffer(json.dumps(m, sort_keys=True).encode(), np.uint8).copy()
    return sd


def npy_bytes(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=True)
    return buf.getvalue()


def write_npz(path, arrays, compress=True, raw_members=None):
    """An .npz via zipfile: arrays as .npy members, plus raw_members {name: bytes} as they are."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        for key, a in arrays.items():
            z.writestr(key + ".npy", npy_bytes(a))
        for name, data in (raw_members or {}).items():
            z.writestr(name, data)


def zip_member_bytes(name, data, method=8, csize_override=None):
    """One-member zip, built by hand so sizes can lie. Returns the archive bytes."""
    if method == 8:
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        packed = co.compress(data) + co.flush()
    else:
        packed = data
    crc = zlib.crc32(data) & 0xFFFFFFFF
    csize = len(packed) if csize_override is None else csize_override
    nm = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, csize, len(data), len(nm), 0) + nm
    body = local + packed
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, csize, len(data),
                          len(nm), 0, 0, 0, 0, 0, 0) + nm
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + eocd


# ---------------------------------------------------------------------------------------------------
# NIfTI
# ---------------------------------------------------------------------------------------------------
NI, NJ, NK = 48, 44, 40  # (i, j, k): big enough for DenseNet's stem and pools, small to write


def ct_and_mask():
    i, j, k = np.meshgrid(np.arange(NI), np.arange(NJ), np.arange(NK), indexing="ij")
    ct = (-1000 + 0 * i).astype(np.float32)
    mask = np.zeros((NI, NJ, NK), np.uint8)
    a = (i - 16) ** 2 + (j - 22) ** 2 + (k - 20) ** 2 < 81
    b = (i - 32) ** 2 + (j - 22) ** 2 + (k - 20) ** 2 < 81
    mask[a] = 1
    mask[b] = 2
    ct[a] = 700
    ct[b] = 300
    return ct, mask


AFFINE = np.array([[0.9, 0, 0, -20.0], [0, 0.9, 0, -18.0], [0, 0, 1.5, 30.0], [0, 0, 0, 1]])


def nifti1(data, affine=AFFINE, dtype=None):
    img = nib.Nifti1Image(data if dtype is None else data.astype(dtype), affine,
                          dtype=None if dtype is None else np.dtype(dtype))
    img.header.set_slope_inter(1.0, 0.0)
    img.header.set_sform(affine, 1)
    img.header.set_qform(affine, 1)
    return img


def save_bytes(img):
    """The .nii bytes nibabel would write for img."""
    bio = io.BytesIO()
    fm = img.make_file_map({"image": bio, "header": bio})
    img.to_file_map(fm)
    return bytearray(bio.getvalue())


def patch(raw, offset, fmt, *values):
    raw = bytearray(raw)
    struct.pack_into("<" + fmt, raw, offset, *values)
    return raw


def write(path, data):
    with open(path, "wb") as f:
        f.write(bytes(data))


def gz(data):
    return gzip.compress(bytes(data), compresslevel=6, mtime=0)


def make_nifti(d):
    ct, mask = ct_and_mask()
    ct_img, mask_img = nifti1(ct, dtype=np.float32), nifti1(mask, dtype=np.uint8)
    ct_raw = save_bytes(ct_img)  # float32, vox_offset 352
    mask_raw = save_bytes(mask_img)
    write(f"{d}/ct.nii", ct_raw)
    write(f"{d}/ct.nii.gz", gz(ct_raw))
    write(f"{d}/mask.nii.gz", gz(mask_raw))
    # a constant CT: contrast enhancement has nothing to work on (issue #15)
    write(f"{d}/constant.nii.gz", gz(save_bytes(nifti1(np.full_like(ct, 40.0), dtype=np.float32))))
    # int16 CT: the base for header defects that need an integer type
    ct16_raw = save_bytes(nifti1(ct, dtype=np.int16))

    # ---- magic, size and compression
    write(f"{d}/bad_magic.nii", patch(ct_raw, 344, "4s", b"xyz\0"))
    write(f"{d}/analyze.nii", patch(ct_raw, 344, "4s", b"\0\0\0\0"))
    write(f"{d}/two_file_magic.nii", patch(ct_raw, 344, "4s", b"ni1\0"))
    write(f"{d}/empty.nii", b"")
    write(f"{d}/short_header.nii", ct_raw[:200])
    write(f"{d}/truncated_data.nii", ct_raw[: 352 + 4 * 1000])
    whole = gz(ct_raw)
    write(f"{d}/truncated.nii.gz", whole[: len(whole) // 2])
    write(f"{d}/no_gzip_trailer.nii.gz", whole[:-8])
    flipped = bytearray(whole)
    flipped[len(whole) * 2 // 3] ^= 0x5A
    write(f"{d}/corrupt.nii.gz", flipped)
    write(f"{d}/gzip_named_nii.nii", whole)
    write(f"{d}/ct.img", ct_raw)

    # ---- dimensions
    write(f"{d}/dim_zero.nii", patch(ct_raw, 44, "h", 0))
    write(f"{d}/dim_negative.nii", patch(ct_raw, 46, "h", -40))
    write(f"{d}/dims_overflow.nii", patch(ct_raw, 42, "hhh", 32767, 32767, 32767))
    write(f"{d}/four_d.nii", patch(patch(ct_raw, 40, "h", 4), 48, "h", 2))
    write(f"{d}/two_d.nii", patch(ct_raw, 40, "h", 2))
    # a header that lies about its size: 2000 x 2000 x 1000 float32 voxels (16 GB) in a small file
    write(f"{d}/lying_size.nii", patch(ct_raw, 42, "hhh", 2000, 2000, 1000))
    write(f"{d}/lying_size.nii.gz", gz(patch(ct_raw, 42, "hhh", 2000, 2000, 1000)))
    # NIfTI-2 with int64 dims whose product overflows int64
    n2 = nib.Nifti2Image(ct, AFFINE)
    n2_raw = save_bytes(n2)
    write(f"{d}/nifti2_overflow.nii", patch(n2_raw, 16, "qqqq", 3, 1 << 22, 1 << 22, 1 << 22))

    # ---- datatype, offset, spacing, scaling
    write(f"{d}/datatype_unknown.nii", patch(ct_raw, 70, "hh", 1234, 32))
    write(f"{d}/datatype_rgb.nii", patch(ct_raw, 70, "hh", 128, 24))
    write(f"{d}/vox_offset_past_end.nii", patch(ct_raw, 108, "f", 1.0e6))
    write(f"{d}/vox_offset_inside_header.nii", patch(ct_raw, 108, "f", 100.0))
    write(f"{d}/vox_offset_nan.nii", patch(ct_raw, 108, "f", float("nan")))
    write(f"{d}/vox_offset_past_end.nii.gz", gz(patch(ct_raw, 108, "f", 1.0e6)))
    write(f"{d}/spacing_zero.nii", patch(ct_raw, 80, "f", 0.0))
    write(f"{d}/spacing_negative.nii", patch(ct_raw, 84, "f", -0.9))
    write(f"{d}/spacing_nan.nii", patch(ct_raw, 88, "f", float("nan")))
    write(f"{d}/slope_inf.nii", patch(ct16_raw, 112, "ff", float("inf"), 0.0))
    write(f"{d}/inter_nan.nii", patch(ct16_raw, 112, "ff", 2.0, float("nan")))
    write(f"{d}/sform_singular.nii", patch(ct_raw, 280, "12f", *([0.0] * 12)))
    write(f"{d}/sform_nan.nii", patch(ct_raw, 280, "f", float("nan")))

    # ---- voxel values
    bad = ct.copy()
    bad[0, 0, 0] = np.nan
    bad[1, 0, 0] = np.inf
    bad[5, 6, 7] = np.nan
    write(f"{d}/nan_voxels.nii.gz", gz(save_bytes(nifti1(bad, dtype=np.float32))))

    # ---- masks
    write(f"{d}/mask_other_dims.nii.gz", gz(save_bytes(nifti1(mask[:, :, :-2], dtype=np.uint8))))
    shifted = AFFINE.copy()
    shifted[0, 3] += 5.0
    write(f"{d}/mask_other_origin.nii.gz", gz(save_bytes(nifti1(mask, shifted, dtype=np.uint8))))
    # Grids physically elsewhere, which no reorientation fixes (the CT's own grid in another axis order
    # is accepted: mask_reoriented, case ok_mask_reoriented): rotated 10 degrees about z, oblique to the
    # CT; and a mirror image, i reversed with the origin left in place.
    c, s = np.cos(np.radians(10.0)), np.sin(np.radians(10.0))
    oblique = AFFINE.copy()
    oblique[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ AFFINE[:3, :3]
    write(f"{d}/mask_oblique_grid.nii.gz", gz(save_bytes(nifti1(mask, oblique, dtype=np.uint8))))
    mirrored = AFFINE.copy()
    mirrored[0, 0] = -mirrored[0, 0]
    write(f"{d}/mask_mirrored_grid.nii.gz", gz(save_bytes(nifti1(mask, mirrored, dtype=np.uint8))))
    reoriented = nifti1(mask, dtype=np.uint8).as_reoriented(np.array([[1, -1], [0, 1], [2, 1]]))
    write(f"{d}/mask_reoriented.nii.gz", gz(save_bytes(reoriented)))
    frac = mask.astype(np.float32)
    frac[20, 20, 20] = 1.5
    write(f"{d}/mask_fractional.nii.gz", gz(save_bytes(nifti1(frac, dtype=np.float32))))
    nanmask = mask.astype(np.float32)
    nanmask[3, 3, 3] = np.nan
    write(f"{d}/mask_nan.nii.gz", gz(save_bytes(nifti1(nanmask, dtype=np.float32))))
    write(f"{d}/mask_background_only.nii.gz", gz(save_bytes(nifti1(np.zeros_like(mask), dtype=np.uint8))))
    # label 2 is a single voxel: it exists at 0.9/1.5 mm and vanishes when resampled to 4 mm
    tiny = mask.copy()
    tiny[tiny == 2] = 0
    tiny[33, 21, 19] = 2
    write(f"{d}/mask_tiny_region.nii.gz", gz(save_bytes(nifti1(tiny, dtype=np.uint8))))


def make_weights(d):
    good = state_dict("densenet121")
    write_npz(f"{d}/w121_2d.npz", good)
    write_npz(f"{d}/w169_2d.npz", state_dict("densenet169"))

    write(f"{d}/w_not_zip.npz", b"this is not a zip file, it is a text file named .npz\n" * 4)
    write(f"{d}/w_empty.npz", b"")
    with open(f"{d}/w121_2d.npz", "rb") as f:
        whole = f.read()
    write(f"{d}/w_truncated.npz", whole[: len(whole) * 2 // 3])
    write(f"{d}/w_npy_not_npz.npz", npy_bytes(np.zeros(4, np.float32)))

    # an otherwise valid file whose conv0 member holds only half its data (directory intact)
    sd = dict(good)
    conv0 = npy_bytes(sd.pop("features.conv0.weight"))
    write_npz(f"{d}/w_truncated_member.npz", sd, raw_members={"features.conv0.weight.npy": conv0[: len(conv0) // 2]})
    # a deflated member whose directory says fewer compressed bytes than the stream needs
    payload = npy_bytes(np.arange(5000, dtype=np.float32))
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    clen = len(co.compress(payload) + co.flush())
    write(f"{d}/w_truncated_deflate.npz", zip_member_bytes("features.conv0.weight.npy", payload, 8, clen // 2))
    # one flipped byte in a stored member: CRC mismatch
    stored = zip_member_bytes("features.conv0.weight.npy", payload, 0)
    stored = bytearray(stored)
    stored[200] ^= 0xFF
    write(f"{d}/w_crc.npz", stored)

    def variant(name, edit, compress=True):
        sd = {k: v.copy() for k, v in good.items()}
        edit(sd)
        write_npz(f"{d}/{name}", sd, compress=compress)

    variant("w_dtype_int32.npz", lambda sd: sd.__setitem__("features.norm0.weight", np.ones(64, np.int32)))
    variant("w_dtype_complex.npz", lambda sd: sd.__setitem__("features.norm0.bias", np.zeros(64, np.complex64)))
    variant("w_dtype_object.npz", lambda sd: sd.__setitem__("features.norm0.bias", np.array([None, 1], dtype=object)))
    variant("w_big_endian.npz", lambda sd: sd.__setitem__("features.norm0.bias", np.zeros(64, ">f4")))
    variant("w_missing_key.npz", lambda sd: sd.pop("features.denseblock3.denselayer7.norm2.running_var"))
    variant("w_extra_key.npz", lambda sd: sd.__setitem__("features.denseblock2.denselayer3.conv3.weight",
                                                         np.zeros((32, 128, 3, 3), np.float32)))
    variant("w_wrong_shape.npz", lambda sd: sd.__setitem__("features.denseblock2.denselayer4.conv2.weight",
                                                           np.zeros((32, 128, 5, 5), np.float32)))
    variant("w_nan.npz", lambda sd: sd["features.transition2.norm.running_var"].__setitem__(slice(0, 3), np.nan))
    variant("w_bad_meta.npz", lambda sd: sd.__setitem__("volfeat_meta", np.frombuffer(b"{not json", np.uint8).copy()))
    variant("w_meta_says_169.npz", lambda sd: sd.__setitem__(
        "volfeat_meta", np.frombuffer(json.dumps({"arch": "densenet169", "dims": 2}).encode(), np.uint8).copy()))
    variant("w_stem_2ch.npz", lambda sd: sd.__setitem__("features.conv0.weight", np.zeros((64, 2, 7, 7), np.float32)))

    def mix(sd):  # conv0 as 3D (5-D tensor), everything else 2D
        sd["features.conv0.weight"] = np.zeros((64, 3, 7, 7, 7), np.float32)

    variant("w_mixed_2d_3d.npz", mix)
    # a 3D (already inflated) file: what convert refuses
    write_npz(f"{d}/w121_3d.npz", state_dict("densenet121", spatial=3, stem_in=1))
    # dense layers per block 6,12,24,17: no known DenseNet
    write_npz(f"{d}/w_unknown_arch.npz", state_dict("densenet121", blocks=(6, 12, 24, 17), meta=False))
    # a PyTorch checkpoint (zip with data.pkl) given where an .npz belongs
    with zipfile.ZipFile(f"{d}/w_torch_checkpoint.npz", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", b"3\n")


# ---------------------------------------------------------------------------------------------------
# seed corpus for the fuzzers
# ---------------------------------------------------------------------------------------------------
def seed_corpus(outdir):
    """Small valid and near-valid inputs: nifti/ (headers + a few voxels) and npz/ (archives and .npy)."""
    nd, zd = os.path.join(outdir, "nifti"), os.path.join(outdir, "npz")
    os.makedirs(nd, exist_ok=True)
    os.makedirs(zd, exist_ok=True)
    small = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    for dt in (np.uint8, np.int16, np.float32, np.float64, np.int64):
        raw = save_bytes(nifti1(small, dtype=dt))
        write(f"{nd}/n1_{np.dtype(dt).name}.nii", raw)
    raw = save_bytes(nifti1(small, dtype=np.int16))
    write(f"{nd}/n1_int16.nii.gz", gz(raw))
    write(f"{nd}/n1_scaled.nii", patch(raw, 112, "ff", 2.0, -3.0))
    write(f"{nd}/n1_qform_only.nii", patch(raw, 254, "h", 0))
    write(f"{nd}/n1_no_xform.nii", patch(patch(raw, 252, "h", 0), 254, "h", 0))
    n2 = nib.Nifti2Image(small, AFFINE)
    write(f"{nd}/n2_float32.nii", save_bytes(n2))
    big_endian = nib.Nifti1Image(small.astype(">f4"), AFFINE, header=nib.Nifti1Header(endianness=">"))
    write(f"{nd}/n1_big_endian.nii", save_bytes(big_endian))
    ext = nifti1(small, dtype=np.float32)
    ext.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"volfeat comment"))
    write(f"{nd}/n1_extension.nii", save_bytes(ext))

    write_npz(f"{zd}/two_arrays.npz", {"a": np.arange(6, dtype=np.float32).reshape(2, 3),
                                       "b": np.array([1, 2, 3], np.int64)}, compress=False)
    write_npz(f"{zd}/deflated.npz", {"x": np.linspace(0, 1, 40).astype(np.float64),
                                     "f": np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4))})
    write_npz(f"{zd}/dtypes.npz", {"h": np.ones(3, np.float16), "u8": np.arange(4, dtype=np.uint8),
                                   "b": np.array([True, False]), "s": np.float32(2.5)})
    write(f"{zd}/plain.npy", npy_bytes(np.arange(10, dtype=np.float32)))
    # a miniature state_dict: right key names, tiny shapes (fails validation quickly, exercises it)
    mini = {"features.conv0.weight": np.zeros((2, 3, 1, 1), np.float32),
            "features.denseblock1.denselayer1.conv1.weight": np.zeros((1, 1, 1, 1), np.float32),
            "volfeat_meta": np.frombuffer(b'{"arch":"densenet121","dims":2}', np.uint8).copy()}
    write_npz(f"{zd}/mini_state_dict.npz", mini, compress=False)
    from zipfile import ZipFile
    with ZipFile(f"{zd}/zip64.npz", "w") as z:
        with z.open("a.npy", "w", force_zip64=True) as m:
            m.write(npy_bytes(np.arange(3, dtype=np.int32)))


# ---------------------------------------------------------------------------------------------------
# DICOM series (issue #15): dicom_ok is the base CT as a series; each dicom_* directory is a copy with one defect
# ---------------------------------------------------------------------------------------------------
def make_dicom(d):
    """Written only when pydicom is importable; run_bad_inputs.py skips the dicom_* cases otherwise."""
    try:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
        import dicom_writer
        import pydicom
        import pydicom.encaps
    except ImportError as e:
        print(f"no DICOM bad inputs: {e}")
        return
    import shutil
    for name in os.listdir(d):  # a rerun starts from scratch: stale slices would form other series
        if name.startswith("dicom_"):
            path = os.path.join(d, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    ct, _ = ct_and_mask()
    base = os.path.join(d, "dicom_ok")
    uid = dicom_writer.write_series(base, ct.astype(np.int32), AFFINE, 1.0, -1024.0, np.int16, seed=7,
                                    description="bad-input base")

    def copy(name):
        dst = os.path.join(d, name)
        shutil.copytree(base, dst)
        return dst, dicom_writer.read_slices(dst)

    def at(slices, k):
        """(path, dataset) of the slice with InstanceNumber k + 1."""
        return next((p, s) for p, s in slices if int(s.InstanceNumber) == k + 1)

    def save(path, ds_):
        ds_.save_as(path, write_like_original=False)

    # gantry tilt: positions shifted along y by tan(10 deg) * 1.5 mm per slice
    dst, slices = copy("dicom_gantry_tilt")
    for p, s in slices:
        x, y, z = (float(v) for v in s.ImagePositionPatient)
        s.ImagePositionPatient = [dicom_writer.ds(x), dicom_writer.ds(y - 0.2645 * (int(s.InstanceNumber) - 1)),
                                  dicom_writer.ds(z)]
        s.GantryDetectorTilt = "10"
        save(p, s)
    # a missing slice (the 21st) and a slice 0.5 mm off its place (the 11th)
    dst, slices = copy("dicom_missing_slice")
    os.remove(at(slices, 20)[0])
    dst, slices = copy("dicom_nonuniform")
    p, s = at(slices, 10)
    x, y, z = (float(v) for v in s.ImagePositionPatient)
    s.ImagePositionPatient = [dicom_writer.ds(x), dicom_writer.ds(y), dicom_writer.ds(z + 0.5)]
    save(p, s)
    # mixed slice sizes: one slice cropped to 40 columns
    dst, slices = copy("dicom_mixed_sizes")
    p, s = at(slices, 5)
    arr = s.pixel_array[:, :40].copy()
    s.Columns = 40
    s.PixelData = arr.tobytes()
    save(p, s)
    # duplicate position: slice 13 again under another instance UID and file name
    dst, slices = copy("dicom_duplicate")
    p, s = at(slices, 12)
    s.SOPInstanceUID = s.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    save(os.path.join(dst, "zz_duplicate.dcm"), s)
    # not CT: the whole series relabelled MR
    dst, slices = copy("dicom_not_ct")
    for p, s in slices:
        s.Modality = "MR"
        save(p, s)
    # a non-image object in the series: a Basic Text SR, no pixel data, same SeriesInstanceUID
    dst, slices = copy("dicom_non_image")
    _, s = at(slices, 0)
    for tag in ["PixelData", "Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
                "PhotometricInterpretation", "RescaleSlope", "RescaleIntercept", "RescaleType"]:
        delattr(s, tag)
    s.SOPClassUID = s.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    s.SOPInstanceUID = s.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    s.Modality = "SR"
    save(os.path.join(dst, "report.dcm"), s)
    # a CT image whose pixel data element is gone
    dst, slices = copy("dicom_missing_pixel_data")
    p, s = at(slices, 3)
    del s.PixelData
    save(p, s)
    # an unsupported transfer syntax (MPEG2 video) declared in the file meta information
    dst, slices = copy("dicom_unsupported_syntax")
    p, s = at(slices, 2)
    s.PixelData = pydicom.encaps.encapsulate([s.PixelData])  # well-formed: encapsulated, as the syntax requires
    s["PixelData"].is_undefined_length = True
    s.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    s.save_as(p, write_like_original=False)
    # a file cut off in its pixel data
    dst, slices = copy("dicom_truncated")
    p, _ = at(slices, 8)
    raw = open(p, "rb").read()
    write(p, raw[: len(raw) - 1000])
    # a file that is no DICOM at all among the slices
    dst, _ = copy("dicom_not_dicom")
    write(os.path.join(dst, "notes.txt"), b"scanner export notes\n")
    # two series in one directory
    dst, _ = copy("dicom_two_series")
    dicom_writer.write_series(dst, ct.astype(np.int32), AFFINE, 1.0, -1024.0, np.int16, seed=8,
                              description="second series", series_uid="1.2.826.0.1.3680043.8.498.2", study_uid=None)
    os.makedirs(os.path.join(d, "dicom_empty"))
    write(os.path.join(d, "dicom_series_uid.txt"), uid.encode())


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: make_bad_inputs.py OUTDIR [--seed-corpus]", file=sys.stderr)
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    if len(argv) == 3 and argv[2] == "--seed-corpus":
        seed_corpus(out)
        return 0
    make_nifti(out)
    make_weights(out)
    make_dicom(out)
    n = len([f for f in os.listdir(out) if os.path.isfile(os.path.join(out, f))])
    print(f"wrote {n} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
