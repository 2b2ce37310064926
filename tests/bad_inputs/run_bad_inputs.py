#!/usr/bin/python3
"""Run every bad-input case of cases.py: usage run_bad_inputs.py VOLFEAT_BINARY FIXTURE_DIR [NAME_REGEX].

FIXTURE_DIR is what make_bad_inputs.py wrote. Per case the runner checks
  * the exit code;
  * stderr holds exactly one `volfeat: error: ...` line, and it matches the case's regex;
  * no sanitizer report and no `internal error` appears;
  * nothing was written: the case's {OUT} directory is still empty, and FIXTURE_DIR holds the same
    files as before (no temporary left beside an input either).
Control cases (exit 0) must succeed without an error line. Prints one line per failure and ends
with `N passed, M failed`; exits 1 if any failed.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES  # noqa: E402

TIMEOUT_S = 300


def listing(root):
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def run_case(binary, fixtures, work, case):
    name, argv, want_code, regex = case
    out = os.path.join(work, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    args = [a.replace("{D}", fixtures).replace("{OUT}", out) for a in argv]
    before = listing(fixtures)
    try:
        p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=TIMEOUT_S,
                           env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2")))
    except subprocess.TimeoutExpired:
        return [f"timed out after {TIMEOUT_S}s"]
    problems = []
    errors = [line for line in p.stderr.splitlines() if line.startswith("volfeat: error: ")]
    if p.returncode != want_code:
        problems.append(f"exit code {p.returncode}, expected {want_code}")
    if re.search(r"Sanitizer|runtime error:|internal error", p.stderr):
        problems.append("sanitizer report or internal error on stderr")
    if want_code != 0:
        if len(errors) != 1:
            problems.append(f"{len(errors)} 'volfeat: error:' lines, expected 1")
        elif not re.search(regex, errors[0]):
            problems.append(f"message does not match /{regex}/")
        left = listing(out)
        if left:
            problems.append(f"wrote {sorted(left)[:5]} under the output directory")
    elif errors:
        problems.append("control case printed an error")
    added = listing(fixtures) - before
    if added:
        problems.append(f"left {sorted(added)[:5]} in the fixture directory")
    if problems:
        tail = "\n".join("      " + line for line in p.stderr.strip().splitlines()[-4:])
        problems.append("command: volfeat " + " ".join(args) + "\n    stderr (last lines):\n" + tail)
    return problems


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    binary, fixtures = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    only = re.compile(argv[3]) if len(argv) == 4 else None
    if not os.path.exists(os.path.join(fixtures, "ct.nii.gz")):
        print(f"skipping: {fixtures} holds no fixtures (make_bad_inputs.py skipped or not run)")
        return 77
    work = os.path.join(os.path.dirname(fixtures), os.path.basename(fixtures) + "_out")
    names = [c[0] for c in CASES]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        print(f"duplicate case names: {sorted(dupes)}", file=sys.stderr)
        return 2
    # The dicom_* cases need the DICOM fixtures (pydicom) and a volfeat built with GDCM; skipped otherwise, with why.
    dicom = os.path.isdir(os.path.join(fixtures, "dicom_ok"))
    if not dicom:
        print("skipping the dicom cases: no DICOM fixtures (pydicom missing when make_bad_inputs.py ran)")
    elif "without DICOM support" in subprocess.run([binary, "info", os.path.join(fixtures, "dicom_ok")],
                                                   capture_output=True, text=True).stderr:
        print("skipping the dicom cases: this volfeat was built without DICOM support")
        dicom = False
    passed = failed = 0
    for case in CASES:
        if only and not only.search(case[0]):
            continue
        if not dicom and "dicom" in case[0]:
            continue
        problems = run_case(binary, fixtures, work, case)
        if problems:
            failed += 1
            print(f"FAIL {case[0]}: " + "\n    ".join(problems), flush=True)
        else:
            passed += 1
            print(f"ok   {case[0]}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
