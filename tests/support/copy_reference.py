#!/usr/bin/python3
"""A reference step of tests/CMakeLists.txt (volfeat_add_reference) under VOLFEAT_REFERENCE_DATA: copies the data
another build of the same checkout made (a file or a directory) instead of making it again.

usage: copy_reference.py FROM TO

Exits 77 (ctest's skip) where FROM is missing, saying so: that build skipped the step (it prints why), or
did not run it; the tests that need the data then fail or skip on their own, naming the file.
"""
import os
import shutil
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    if not os.path.exists(src):
        print(f"skipped: {src} does not exist (the build VOLFEAT_REFERENCE_DATA names did not make it)")
        sys.exit(77)
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)
    print(f"reference data copied from {src} (VOLFEAT_REFERENCE_DATA: made by another build of this checkout)")


if __name__ == "__main__":
    main()
