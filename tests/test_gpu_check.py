"""The one-call GPU check script runs end to end on the CPU (``--dry-run``: NumPy as the device)."""

import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def test_gpu_check_dry_run():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    lines = out.splitlines()
    assert any(ln.startswith("# gpu_check: device") and "CPU dry run" in ln for ln in lines), out
    assert any(ln.split() == ["quantity", "float64", "float32", "unit"] for ln in lines), out  # table header
    checks = [ln for ln in lines if ln.startswith(("PASS", "FAIL"))]
    assert checks and all(ln.startswith("PASS") for ln in checks), out
    for kernel in ("simulate", "dmft"):
        for dtype in ("float64", "float32"):
            assert any(ln.split()[1:3] == [kernel, dtype] for ln in checks), (kernel, dtype)
    for row in ("GEMM", "device copy", "simulator", "DMFT"):
        assert any(ln.startswith(row) for ln in lines), row
    assert "correctness: all PASS" in out
