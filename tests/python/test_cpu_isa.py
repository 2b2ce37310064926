"""volfeat.cpu_isa names the Cpu kernels' instruction set; VOLFEAT_CPU_ISA forces one, and a bad value is an
ImportError with volfeat's one-line message (the CLI's twin is tests/cli/test_cpu_isa.py)."""
import os
import subprocess
import sys


def _python(code, isa):
    env = dict(os.environ, VOLFEAT_CPU_ISA=isa)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_cpu_isa_is_named_forced_and_a_bad_one_refused_at_import():
    import volfeat
    assert volfeat.cpu_isa in ("avx512", "avx2", "generic")
    p = _python("import volfeat; print(volfeat.cpu_isa)", "generic")
    assert p.returncode == 0 and p.stdout.strip() == "generic", p.stderr
    p = _python("import volfeat", "sse9")
    assert p.returncode != 0
    assert p.stderr.strip().splitlines()[-1].startswith("ImportError: volfeat: VOLFEAT_CPU_ISA=sse9 is not one of"), p.stderr
