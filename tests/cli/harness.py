"""The tiny runner shared by the CLI test scripts: every test_* function, one line each, and the
closing 'N passed, M failed' line CTest output readers understand. Exits non-zero on any failure."""
import os
import shutil
import subprocess
import sys
import time
import traceback


def cli_runner(binary):
    """run(*args, expect=0, env=None): runs the program (env: variables set on top of this process's), asserts its
    exit status, returns the CompletedProcess."""
    def run(*args, expect=0, env=None):
        p = subprocess.run([binary, *args], capture_output=True, text=True, env=dict(os.environ, **env) if env else None)
        assert p.returncode == expect, f"exit {p.returncode} (expected {expect}) for {args} env {env}\nstderr: {p.stderr}"
        return p
    return run


def csv_rows(path):
    """(header, rows) of a CSV file."""
    import csv
    with open(path, newline="") as f:
        r = list(csv.reader(f))
    return r[0], r[1:]


def fresh_dir(work, name):
    """WORK/name, emptied: each check writes into a directory of its own."""
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    return d


# scripts/sanitize.sh's suite (tests/CMakeLists.txt sets VOLFEAT_SANITIZED=1 there): under ASan + UBSan a
# forward pass is 6-40x slower, so checks that repeat a code path another check of the same run already
# drives through the sanitizers are left to the normal suite, each saying so.
SANITIZED = os.environ.get("VOLFEAT_SANITIZED") == "1"


def normal_suite_only(why):
    """Decorator: under the sanitizers, skip this check (printing `why`: the check that covers its code)."""
    def mark(f):
        f.normal_suite_only = why
        return f
    return mark


def run_tests(namespace):
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, f in tests:
        if SANITIZED and getattr(f, "normal_suite_only", None):
            print(f"SKIP {name} under the sanitizers (normal suite only): {f.normal_suite_only}")
            continue
        try:
            t0 = time.time()
            f()
            passed += 1
            print(f"PASS {name} ({time.time() - t0:.1f}s)")
        except Exception:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc()}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
