"""The report as a PDF, printed by headless Chromium (Debian's ``chromium`` package), so a
compliance officer can file and sign it. Nothing is fetched: the page is self-contained."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from privsynth.atomic import write_bytes
from privsynth.errors import OutputError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str | None:
    """The first headless-capable Chromium on the PATH (or ``$PRIVSYNTH_CHROMIUM``)."""
    named = os.environ.get("PRIVSYNTH_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def to_pdf(html_file: Path, pdf_file: Path, timeout: float = 180.0) -> Path:
    """Print ``html_file`` to ``pdf_file`` (A4, the page's print styles), written atomically."""
    chromium = browser()
    if chromium is None:
        raise OutputError("no Chromium found to print the report as PDF: install Debian's chromium package (or set "
                          "PRIVSYNTH_CHROMIUM to a Chrome/Chromium binary); the HTML report is complete without it")
    with tempfile.TemporaryDirectory(prefix="privsynth-pdf-") as tmp:
        target = Path(tmp) / "report.pdf"
        run = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                              f"--user-data-dir={tmp}/profile", f"--print-to-pdf={target}",
                              Path(html_file).resolve().as_uri()],
                             capture_output=True, text=True, timeout=timeout, check=False)
        if run.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            raise OutputError(f"{chromium} could not print {html_file} as PDF (exit {run.returncode}): "
                              f"{run.stderr.strip()[-300:]}")
        write_bytes(pdf_file, target.read_bytes())
    return pdf_file
