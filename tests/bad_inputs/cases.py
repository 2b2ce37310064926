"""The bad-input cases: what volfeat must answer for each file make_bad_inputs.py writes.

Each case is one volfeat command line with placeholders:
  {D}    the fixture directory (make_bad_inputs.py OUTDIR)
  {OUT}  an empty directory made for the case; outputs go below it (extract --out {OUT}/run,
         convert --out {OUT}/w3d.npz) and it must still be empty afterwards
and the expected exit code plus a regular expression the one `volfeat: error: ...` line must match
(re.search). Every expectation names the file (or option) and the problem. `ok` cases (exit 0) are
controls: they show the valid base files pass, so the defects are what the other cases test.
"""

# Short hands for the good inputs every case starts from.
CT = "{D}/ct.nii.gz"
MASK = "{D}/mask.nii.gz"
LABELS = "a=1,b=2"
RUN = "{OUT}/run"


def extract(*args, ct=CT, mask=MASK, labels=LABELS):
    argv = ["extract", "--out", RUN]
    if ct is not None:
        argv += ["--ct", ct]
    if mask is not None:
        argv += ["--mask", mask]
    if labels is not None:
        argv += ["--labels", labels]
    return argv + list(args)


def ct_case(name, file, regex, *args):
    """The CT replaced by a bad file."""
    return (name, extract(*args, ct="{D}/" + file), 1, regex)


def mask_case(name, file, regex, *args, labels=LABELS):
    return (name, extract(*args, mask="{D}/" + file, labels=labels), 1, regex)


def weights_case(name, file, regex, *args):
    return (name, extract("--weights", "{D}/" + file, *args), 1, regex)


def convert(file, *args):
    return ["convert", "--in", "{D}/" + file, "--out", "{OUT}/w3d.npz"] + list(args)


CASES = [
    # ---- NIfTI: magic, size, compression ------------------------------------------------------------------
    ct_case("nifti_bad_magic", "bad_magic.nii", r"bad_magic\.nii: not a NIfTI-1 file: bad magic"),
    ct_case("nifti_analyze", "analyze.nii", r"analyze\.nii: .*bad magic.*ANALYZE 7\.5 is not supported"),
    ct_case("nifti_two_file", "two_file_magic.nii", r"two_file_magic\.nii: two-file NIfTI .* not supported"),
    ct_case("nifti_empty", "empty.nii", r"empty\.nii: not a NIfTI file: only 0 bytes"),
    ct_case("nifti_short_header", "short_header.nii", r"short_header\.nii: truncated header: 200 of 348 bytes"),
    ct_case("nifti_truncated_data", "truncated_data.nii",
            r"truncated_data\.nii: truncated: file has 4352 bytes but the header needs 338272"),
    ct_case("nifti_truncated_gzip", "truncated.nii.gz",
            r"truncated\.nii\.gz: truncated: voxel data ends after \d+ of 337920 bytes \(after decompression\)"),
    ct_case("nifti_gzip_no_trailer", "no_gzip_trailer.nii.gz",
            r"no_gzip_trailer\.nii\.gz: damaged gzip stream after the voxel data .*truncated or corrupt"),
    ct_case("nifti_corrupt_gzip", "corrupt.nii.gz", r"corrupt\.nii\.gz: corrupt gzip data"),
    ct_case("nifti_gzip_named_nii", "gzip_named_nii.nii", r"gzip_named_nii\.nii: file is gzip-compressed but named \.nii"),
    ct_case("nifti_wrong_extension", "ct.img", r"ct\.img: not a NIfTI file name: expected a \.nii or \.nii\.gz"),
    ct_case("nifti_missing_file", "does_not_exist.nii.gz", r"does_not_exist\.nii\.gz: no such file"),
    # ---- NIfTI: dimensions --------------------------------------------------------------------------------
    ct_case("nifti_dim_zero", "dim_zero.nii", r"dim_zero\.nii: invalid header: dimension nj is 0 \(must be >= 1\)"),
    ct_case("nifti_dim_negative", "dim_negative.nii", r"dim_negative\.nii: invalid header: dimension nk is -40"),
    ct_case("nifti_dims_overflow", "dims_overflow.nii",
            r"dims_overflow\.nii: invalid header: 32767x32767x32767 voxels exceeds the 2\^34 limit"),
    ct_case("nifti2_dims_overflow", "nifti2_overflow.nii",
            r"nifti2_overflow\.nii: invalid header: 4194304x4194304x4194304 voxels exceeds the 2\^34 limit"),
    ct_case("nifti_4d", "four_d.nii", r"four_d\.nii: is 4D with nt=2; expected a single 3D volume"),
    ct_case("nifti_2d", "two_d.nii", r"two_d\.nii: is 2D \(dim\[0\]=2\); expected a 3D volume"),
    ct_case("nifti_lying_size", "lying_size.nii",
            r"lying_size\.nii: truncated: file has 338272 bytes but the header needs 16000000352"),
    ct_case("nifti_lying_size_gz", "lying_size.nii.gz",
            r"lying_size\.nii\.gz: truncated or corrupt header: the header needs 16000000352 bytes .* more than a "
            r"1367-byte gzip file can hold"),
    # ---- NIfTI: datatype, offset, spacing, scaling, affine ------------------------------------------------
    ct_case("nifti_datatype_unknown", "datatype_unknown.nii",
            r"datatype_unknown\.nii: unsupported datatype .*\(code 1234\); supported: uint8"),
    ct_case("nifti_datatype_rgb", "datatype_rgb.nii", r"datatype_rgb\.nii: unsupported datatype RGB24 \(code 128\)"),
    ct_case("nifti_vox_offset_past_end", "vox_offset_past_end.nii",
            r"vox_offset_past_end\.nii: invalid header: vox_offset 1000000 lies past the end of the file "
            r"\(338272 bytes\)"),
    ct_case("nifti_vox_offset_past_end_gz", "vox_offset_past_end.nii.gz",
            r"vox_offset_past_end\.nii\.gz: invalid header: vox_offset 1000000 lies past the end of the "
            r"decompressed data \(338272 bytes\)"),
    ct_case("nifti_vox_offset_in_header", "vox_offset_inside_header.nii",
            r"vox_offset_inside_header\.nii: invalid header: vox_offset 100 lies inside the 348-byte header"),
    ct_case("nifti_vox_offset_nan", "vox_offset_nan.nii",
            r"vox_offset_nan\.nii: invalid header: vox_offset is nan \(expected a whole number of bytes"),
    ct_case("nifti_spacing_zero", "spacing_zero.nii",
            r"spacing_zero\.nii: invalid voxel spacing: pixdim\[1\] \(i axis\) is 0 mm \(must be finite and > 0\)"),
    ct_case("nifti_spacing_negative", "spacing_negative.nii",
            r"spacing_negative\.nii: invalid voxel spacing: pixdim\[2\] \(j axis\) is -0\.9 mm"),
    ct_case("nifti_spacing_nan", "spacing_nan.nii", r"spacing_nan\.nii: invalid voxel spacing: pixdim\[3\] \(k axis\) is nan"),
    ct_case("nifti_slope_inf", "slope_inf.nii", r"slope_inf\.nii: invalid scaling: scl_slope is inf \(must be finite"),
    ct_case("nifti_inter_nan", "inter_nan.nii", r"inter_nan\.nii: invalid scaling: scl_slope is 2 but scl_inter is nan"),
    ct_case("nifti_sform_singular", "sform_singular.nii",
            r"sform_singular\.nii: invalid sform \(code 1\): the voxel-to-world matrix is singular"),
    ct_case("nifti_sform_nan", "sform_nan.nii",
            r"sform_nan\.nii: invalid sform \(code 1\): the voxel-to-world matrix is not finite"),
    # ---- NIfTI: voxel values ------------------------------------------------------------------------------
    ct_case("nifti_nan_voxels", "nan_voxels.nii.gz",
            r"nan_voxels\.nii\.gz: 3 voxels are NaN or infinite \(first at \(d,h,w\)=\(0,0,0\).*--nan-to VALUE"),
    # ---- masks --------------------------------------------------------------------------------------------
    mask_case("mask_other_dims", "mask_other_dims.nii.gz",
              r"grid mismatch \(dimensions differ\): .*ct\.nii\.gz is 48x44x40 .* but .*mask_other_dims\.nii\.gz "
              r"is 48x44x38"),
    mask_case("mask_other_origin", "mask_other_origin.nii.gz",
              r"grid mismatch \(origin differs\): .*ct\.nii\.gz is .*affine \[\[0\.9,0,0,-20\].* but "
              r".*mask_other_origin\.nii\.gz is .*affine \[\[0\.9,0,0,-15\]"),
    # Only grids physically elsewhere are refused: the CT's own grid in another axis order is reoriented
    # (ok_mask_reoriented below).
    mask_case("mask_oblique_grid", "mask_oblique_grid.nii.gz",
              r"grid mismatch \(orientation or voxel axes differ\): .*ct\.nii\.gz is .*affine "
              r"\[\[0\.9,0,0,-20\].* but .*mask_oblique_grid\.nii\.gz is .*affine \[\[0\.886327,-0\.156283,0,-20\].* "
              r"\(only a reordering or reversal of the CT's own voxel axes is reoriented; resample the mask onto the "
              r"CT's grid\)"),
    mask_case("mask_mirrored_grid", "mask_mirrored_grid.nii.gz",
              r"grid mismatch \(orientation or voxel axes differ\): .*ct\.nii\.gz .* but "
              r".*mask_mirrored_grid\.nii\.gz is .*affine \[\[-0\.9,0,0,-20\].* \(only a reordering or reversal"),
    mask_case("mask_fractional", "mask_fractional.nii.gz",
              r"mask_fractional\.nii\.gz: not a label map: voxel \(d,h,w\)=\(20,20,20\).* is 1\.5, not an integer"),
    mask_case("mask_nan", "mask_nan.nii.gz", r"mask_nan\.nii\.gz: not a label map: voxel .* is nan, not an integer"),
    mask_case("mask_label_absent", "mask.nii.gz",
              r"mask\.nii\.gz: region c=3 is not in the mask \(labels present: 0 \(78591 voxels\), 1 \(2920 voxels\), "
              r"2 \(2969 voxels\)\)", labels="a=1,c=3"),
    mask_case("mask_background_only", "mask_background_only.nii.gz",
              r"mask_background_only\.nii\.gz: region a=1 is not in the mask \(labels present: 0 \(84480 voxels\)\)"),
    mask_case("mask_region_empty_after_resample", "mask_tiny_region.nii.gz",
              r"mask_tiny_region\.nii\.gz \(after crop/resample\): region b=2 has no voxels left "
              r"\(labels present: .*\); resample less coarsely", "--resample", "4"),
    ("mask_without_ct", extract(ct=None), 1, r"--ct and --mask go together"),
    # ---- weights ------------------------------------------------------------------------------------------
    weights_case("weights_not_zip", "w_not_zip.npz", r"w_not_zip\.npz: not a zip file"),
    weights_case("weights_empty", "w_empty.npz", r"w_empty\.npz: not a zip file"),
    weights_case("weights_npy_not_npz", "w_npy_not_npz.npz", r"w_npy_not_npz\.npz: .*\.npy file, not an \.npz"),
    weights_case("weights_truncated", "w_truncated.npz",
                 r"w_truncated\.npz: truncated zip \(starts like a zip archive but has no end-of-central-directory"),
    weights_case("weights_truncated_member", "w_truncated_member.npz",
                 r"w_truncated_member\.npz: member features\.conv0\.weight\.npy: truncated \(expected 37632 bytes "
                 r"of data, found \d+\)"),
    weights_case("weights_truncated_deflate", "w_truncated_deflate.npz",
                 r"w_truncated_deflate\.npz: member features\.conv0\.weight\.npy: truncated \(deflate stream ends "
                 r"early after \d+ of 20128 bytes\)"),
    weights_case("weights_crc", "w_crc.npz", r"w_crc\.npz: member features\.conv0\.weight\.npy: CRC mismatch"),
    weights_case("weights_dtype_int32", "w_dtype_int32.npz",
                 r"w_dtype_int32\.npz: key features\.norm0\.weight has dtype int32 \(weights must be float16/32/64\)"),
    weights_case("weights_dtype_complex", "w_dtype_complex.npz",
                 r"w_dtype_complex\.npz: member features\.norm0\.bias\.npy: unsupported dtype '<c8'"),
    weights_case("weights_dtype_object", "w_dtype_object.npz",
                 r"w_dtype_object\.npz: member features\.norm0\.bias\.npy: object arrays \(pickled\) are not supported"),
    weights_case("weights_big_endian", "w_big_endian.npz",
                 r"w_big_endian\.npz: member features\.norm0\.bias\.npy: big-endian dtype '>f4' is not supported"),
    weights_case("weights_missing_key", "w_missing_key.npz",
                 r"w_missing_key\.npz: missing key features\.denseblock3\.denselayer7\.norm2\.running_var "
                 r"\(expected shape \(128,\)\)"),
    weights_case("weights_extra_key", "w_extra_key.npz",
                 r"w_extra_key\.npz: unexpected key features\.denseblock2\.denselayer3\.conv3\.weight "
                 r"\(shape \(32, 128, 3, 3\)\) for densenet121"),
    weights_case("weights_wrong_shape", "w_wrong_shape.npz",
                 r"w_wrong_shape\.npz: key features\.denseblock2\.denselayer4\.conv2\.weight has shape "
                 r"\(32, 128, 5, 5\), expected \(32, 128, 3, 3\)"),
    weights_case("weights_mixed_2d_3d", "w_mixed_2d_3d.npz",
                 r"w_mixed_2d_3d\.npz: mixes 2D and 3D conv weights \(features\.conv0\.weight is 5-D, .* is 4-D\)"),
    weights_case("weights_169_for_121", "w169_2d.npz",
                 r"w169_2d\.npz: holds densenet169 weights \(dense layers per block 6,12,32,32\) but --arch "
                 r"densenet121 was asked for", "--arch", "densenet121"),
    weights_case("weights_meta_disagrees", "w_meta_says_169.npz",
                 r"w_meta_says_169\.npz: volfeat_meta says densenet169 but the tensors are densenet121's"),
    weights_case("weights_unknown_arch", "w_unknown_arch.npz",
                 r"w_unknown_arch\.npz: not a DenseNet-121/161/169/201 state_dict \(dense layers per block: 6,12,24,17\)"),
    weights_case("weights_nan_values", "w_nan.npz",
                 r"w_nan\.npz: key features\.transition2\.norm\.running_var holds 3 NaN or infinite values"),
    weights_case("weights_bad_meta", "w_bad_meta.npz", r"w_bad_meta\.npz: volfeat_meta is not valid JSON"),
    weights_case("weights_stem_channels", "w_stem_2ch.npz",
                 r"w_stem_2ch\.npz: features\.conv0\.weight has shape \(64, 2, 7, 7\): the stem takes 2 input "
                 r"channels, expected 3 \(RGB\) or 1 \(gray\)"),
    weights_case("weights_torch_checkpoint", "w_torch_checkpoint.npz",
                 r"w_torch_checkpoint\.npz: .*PyTorch checkpoint.*export_torchvision\.py"),
    weights_case("weights_missing_file", "no_such_weights.npz", r"no_such_weights\.npz: cannot open: No such file"),
    ("convert_3d_input", convert("w121_3d.npz"), 1,
     r"w121_3d\.npz: already holds 3D conv weights \(features\.conv0\.weight is \(64, 1, 7, 7, 7\)\)"),
    ("convert_truncated", convert("w_truncated.npz"), 1, r"w_truncated\.npz: truncated zip"),
    ("convert_wrong_shape", convert("w_wrong_shape.npz"), 1,
     r"w_wrong_shape\.npz: key features\.denseblock2\.denselayer4\.conv2\.weight has shape \(32, 128, 5, 5\)"),
    # ---- CLI ----------------------------------------------------------------------------------------------
    ("cli_unknown_layer", extract("--layers", "denseblock4.denselayer16.conv3"), 1,
     r"unknown layer 'denseblock4\.denselayer16\.conv3'; close matches: .*denseblock4\.denselayer16\.conv2"),
    ("cli_unknown_layer_typo", extract("--layers", "denseblok2"), 1, r"unknown layer 'denseblok2'; close matches: denseblock2"),
    ("cli_layers_and_preset", extract("--layers", "conv0", "--preset", "block-outputs"), 1,
     r"--layers and --preset are alternatives: pass one"),
    ("cli_unknown_preset", extract("--preset", "last-layers"), 1, r"unknown layer preset 'last-layers'"),
    ("cli_imagenet_gray_stem", extract("--normalize", "imagenet", "--stem", "sum"), 1,
     r"--normalize imagenet feeds 3 channels: it needs --stem rgb, not --stem sum"),
    ("cli_bad_normalize", extract("--normalize", "window:400"), 1,
     r"--normalize 'window:400': expected window:LEVEL,WIDTH"),
    ("cli_bad_labels", extract(labels="femur:1,tibia=2"), 1, r"--labels 'femur:1,tibia=2': expected name=value pairs"),
    ("cli_duplicate_label", extract(labels="a=1,b=1"), 1, r"--labels: label value 1 appears twice"),
    ("cli_negative_crop", extract("--crop-to-labels", "-5"), 1, r"--crop-to-labels -5: the margin must be >= 0 mm"),
    ("cli_zero_resample", extract("--resample", "0"), 1, r"--resample 0: the spacing must be a positive number of mm"),
    ("cli_out_is_a_file", ["extract", "--out", "{D}/ct.nii", "--ct", CT, "--mask", MASK, "--labels", LABELS], 1,
     r"--out .*ct\.nii: exists and is not a directory"),
    ("cli_bad_max_memory", extract("--max-memory", "lots"), 1,
     r"--max-memory 'lots': expected a size such as 4G, 500M or 2048K"),
    ("cli_bad_mode", extract("--mode", "bogus"), 1, r"--mode: bogus not in \{shared,mask-input\} \(see --help\)"),
    ("cli_not_a_number", extract("--resample", "fine"), 1, r"Could not convert: --resample = fine"),
    ("cli_unknown_option", extract("--bogus"), 1, r"The following argument was not expected: --bogus"),
    # ---- issue #15: denoise/contrast options (extract, preprocess) -----------------------------------------
    ("cli_unknown_denoiser", extract("--denoise", "wiener:2"), 1,
     r"--denoise 'wiener:2': unknown denoiser \(expected none, gaussian:SIGMA_MM"),
    ("cli_negative_sigma", extract("--denoise", "gaussian:-1"), 1, r"--denoise 'gaussian:-1': -1 must be a finite number > 0"),
    ("cli_bilateral_one_sigma", extract("--denoise", "bilateral:2"), 1, r"--denoise 'bilateral:2': expected bilateral:SIGMA_MM,SIGMA_HU"),
    ("cli_bad_clip", extract("--contrast", "clahe:1.5"), 1, r"--contrast 'clahe:1\.5': the clip limit must be in \[0, 1\]"),
    ("preprocess_unknown_contrast", ["preprocess", "--ct", CT, "--contrast", "gamma", "--out", RUN], 1,
     r"--contrast 'gamma': unknown method"),
    ("preprocess_bad_ct", ["preprocess", "--ct", "{D}/bad_magic.nii", "--denoise", "median:1", "--out", RUN], 1,
     r"bad_magic\.nii: not a NIfTI-1 file: bad magic"),
    ("preprocess_constant_for_contrast", ["preprocess", "--ct", "{D}/constant.nii.gz", "--contrast", "clahe", "--out", RUN], 1,
     r"--contrast clahe: the volume is constant"),
    # ---- memory guard -------------------------------------------------------------------------------------
    ("memory_forward_10M", extract("--max-memory", "10M"), 1,
     r"estimated peak memory \d+\.\d [MG]iB \(volumes .* \+ weights .* \+ forward pass .*\) exceeds --max-memory "
     r"10\.0 MiB; shrink the input with --resample MM or --crop-to-labels MARGIN_MM"),
    ("memory_load_500K", extract("--max-memory", "500K"), 1,
     r"ct\.nii\.gz: a 48x44x40 volume needs about 660\.0 KiB just to load .* more than --max-memory 500\.0 KiB"),
    # (the float StateDict brought the phantom's estimate from 332 to 285 MiB: 250M still refuses it)
    ("memory_phantom_suggests_resample", ["extract", "--out", RUN, "--max-memory", "250M"], 1,
     r"estimated peak memory \d+\.\d MiB .*160x160x128 \(i,j,k\) voxels\) exceeds --max-memory 250\.0 MiB; shrink the input with "
     r"--resample \d+(\.\d+)? \(about \d+\.\d MiB\)"),
    # VGG-19's first convs keep 64 channels at full resolution (840 MB per activation on the 128x160x160 phantom,
    # streamed through plane rings): the guard refuses before any forward pass, with the estimate and where it
    # peaks. (Since the build releases the StateDict the estimate is 871 MiB and the run takes 0.92 GB: 1G no
    # longer refuses it, 600M does.)
    ("memory_vgg19_full_resolution", ["extract", "--out", RUN, "--arch", "vgg19", "--max-memory", "600M"], 1,
     r"estimated peak memory \d+\.\d MiB \(.*forward pass .*; forward peak at features\.\d+, shared mode, 3 regions, "
     r"160x160x128 \(i,j,k\) voxels\) exceeds --max-memory 600\.0 MiB; shrink the input with --resample"),
    ("memory_mask_input_mode", extract("--mode", "mask-input", "--max-memory", "20M"), 1,
     r"estimated peak memory .*mask-input mode, 3 regions, 48x44x40 \(i,j,k\) voxels\) exceeds --max-memory 20\.0 MiB"),
    # ---- DICOM series (issue #15; --ct DIR): each directory is dicom_ok with one defect ----------------------
    ct_case("dicom_gantry_tilt", "dicom_gantry_tilt",
            r"dicom_gantry_tilt: gantry tilt: .*dicom_gantry_tilt/\S+ is offset 0\.2645 mm within the slice plane from "
            r".* \(10\.0004 degrees; GantryDetectorTilt 10\); volfeat does not resample tilted series"),
    ct_case("dicom_missing_slice", "dicom_missing_slice",
            r"dicom_missing_slice: missing slice: .* and .* are 3 mm apart, the other slices 1\.5 mm"),
    ct_case("dicom_nonuniform_spacing", "dicom_nonuniform",
            r"dicom_nonuniform: non-uniform slice spacing: .* and .* are 2 mm apart, the other slices 1\.5 mm"),
    ct_case("dicom_mixed_sizes", "dicom_mixed_sizes",
            r"dicom_mixed_sizes: mixed slice sizes: .*dicom_mixed_sizes/\S+ is 40x44 \(columns x rows\) but .* is 48x44"),
    ct_case("dicom_duplicate_position", "dicom_duplicate",
            r"dicom_duplicate: duplicate slice position: .* and .*zz_duplicate\.dcm are both at 48 mm along the slice normal"),
    ct_case("dicom_not_ct", "dicom_not_ct", r"dicom_not_ct/\S+: Modality is 'MR', not CT"),
    ct_case("dicom_non_image_object", "dicom_non_image",
            r"dicom_non_image/report\.dcm: not an image \(SOP class 1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.11, Modality SR, "
            r"no pixel data\)"),
    ct_case("dicom_missing_pixel_data", "dicom_missing_pixel_data", r"dicom_missing_pixel_data/\S+: missing pixel data \(7FE0,0010\)"),
    ct_case("dicom_unsupported_syntax", "dicom_unsupported_syntax",
            r"dicom_unsupported_syntax/\S+: unsupported transfer syntax 1\.2\.840\.10008\.1\.2\.4\.100; volfeat reads"),
    ct_case("dicom_truncated_file", "dicom_truncated",
            r"dicom_truncated/\S+: truncated: the pixel data needs 4224 bytes but the file holds 3224"),
    ct_case("dicom_not_dicom_file", "dicom_not_dicom",
            r"dicom_not_dicom/notes\.txt: not a DICOM file, or truncated or corrupt in its header \(21 bytes\)"),
    ct_case("dicom_two_series", "dicom_two_series",
            r"dicom_two_series: holds 2 series; pick one with --series UID: 1\.2\.826\.0\.1\.3680043\.8\.498\.2 "
            r"\('second series', CT, 40 files\); \S+ \('bad-input base', CT, 40 files\)"),
    ct_case("dicom_unknown_series", "dicom_two_series", r"dicom_two_series: no series 9\.9\.9 \(--series\)",
            "--series", "9.9.9"),
    ct_case("dicom_empty_dir", "dicom_empty", r"dicom_empty: no DICOM files in the directory"),
    ("dicom_series_with_nifti", extract("--series", "1.2.3"), 1,
     r"--series 1\.2\.3: .*ct\.nii\.gz is a NIfTI file, not a DICOM directory"),
    # ---- controls (must succeed) --------------------------------------------------------------------------
    ("ok_dicom_base_series", extract("--layers", "denseblock1", ct="{D}/dicom_ok"), 0, None),
    ("ok_dicom_series_picked", extract("--layers", "denseblock1", "--series", "1.2.826.0.1.3680043.8.498.2",
                                       ct="{D}/dicom_two_series"), 0, None),
    ("ok_dicom_info", ["info", "{D}/dicom_ok"], 0, None),
    ("ok_convert_base_weights", ["convert", "--in", "{D}/w121_2d.npz", "--out", "{OUT}/w3d.npz"], 0, None),
    ("ok_info_base_ct", ["info", CT], 0, None),
    ("ok_mask_reoriented", extract("--layers", "denseblock1", mask="{D}/mask_reoriented.nii.gz"), 0,
     None),
    ("ok_nan_to_replaces", extract("--nan-to", "-1000", "--layers", "denseblock1", ct="{D}/nan_voxels.nii.gz"), 0, None),
]
