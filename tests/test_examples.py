"""Every script in examples/ runs and prints what it promises."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_python_api_example_runs():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "python_api.py"), "--patients", "150"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "patient view: 150 patients" in proc.stdout
    assert "reloaded model gives the same rows for the same seed: True" in proc.stdout
