"""How library code reports progress: a callback ``(stage, done, total)``; only the CLI draws bars."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]
