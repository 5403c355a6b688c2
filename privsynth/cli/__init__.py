"""The command line: a thin layer over the Python API. The only code that prints.

Exit codes: 0 success, 2 bad input or usage (one line, no traceback), 3 an audit failed
(the release was refused), 1 internal error.
"""

from privsynth.cli import files, run
from privsynth.cli.app import main

__all__ = ["files", "main", "run"]
