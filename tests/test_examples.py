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


def test_partial_synthesis_example_keeps_columns_real():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "partial_synthesis.py"), "--patients", "200"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "kept columns byte-identical: True" in proc.stdout
    assert "replaced columns that differ from the real ones: 0 of" not in proc.stdout


def test_audit_other_tool_example_passes_the_clean_tool_and_refuses_the_careless_one():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "audit_other_tool.py")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "independent resampler: exit 0" in proc.stdout
    assert "careless tool with 2% copies: exit 3" in proc.stdout
