#!/usr/bin/python3
"""The installed (or packaged) Python module opens its DICOM reader, the package's copy of libvolfeat_dicom.so
beside _volfeat: an empty directory gets the reader's own refusal, not "could not be loaded".

usage: PYTHONPATH=SITE python_opens_dicom.py EMPTY_DIR WHAT
"""
import sys

import volfeat

empty, what = sys.argv[1:3]
try:
    volfeat.read_ct(empty)
    sys.exit(f"{what}: read_ct accepted the empty directory {empty}")
except ValueError as e:
    assert "no DICOM files" in str(e), f"{what}: the Python module did not open its DICOM reader: {e}"
print(f"{what}: the Python module ({volfeat.__file__}) opens its DICOM reader")
