"""Where a budget ledger's secret lives and how a ledger came to be.

The ledger stores patients' keys as keyed hashes; the key is kept OUTSIDE the ledger file, in
a key file (``<ledger>.key`` beside it by default, or ``$PRIVSYNTH_LEDGER_KEY``), created
with mode 0600, atomically, so the ledger file alone cannot test guessed ids. The ledger
holds only a check value of its key, so a missing or foreign key file is an error, never a
silent fresh start. :class:`LedgerOrigin` records when a ledger was created and which other
ledgers were beside it then (a new ledger starts from zero: the operator must know).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from privsynth.errors import OutputError

KEY_CHECK = b"privsynth ledger key check"


SECRET_BYTES = 32


KEY_VARIABLE = "PRIVSYNTH_LEDGER_KEY"


def default_ledger_path() -> Path:
    """``$PRIVSYNTH_LEDGER``, else ``$XDG_DATA_HOME/privsynth/ledger.sqlite3``."""
    if os.environ.get("PRIVSYNTH_LEDGER"):
        return Path(os.environ["PRIVSYNTH_LEDGER"])
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "privsynth" / "ledger.sqlite3"


def key_path_for(ledger: Path) -> Path:
    """Where a ledger's secret lives: ``$PRIVSYNTH_LEDGER_KEY``, else ``<ledger>.key`` beside it."""
    if os.environ.get(KEY_VARIABLE):
        return Path(os.environ[KEY_VARIABLE])
    return ledger.with_name(ledger.name + ".key")


@dataclass(frozen=True)
class LedgerOrigin:
    """How this ledger came to be (for the internal report): when it was created, whether by
    this process, where its key file is, and other ledgers found beside it at creation (a new
    file next to an existing one starts from zero: the operator must know)."""

    path: str
    key_path: str
    created: str
    created_now: bool
    others_nearby: tuple[str, ...]

    def warning(self) -> str | None:
        if not (self.created_now and self.others_nearby):
            return None
        return (f"{self.path}: a NEW budget ledger, created beside existing one(s) ({', '.join(self.others_nearby)}); "
                "patients charged there are not counted here. Use the existing ledger (--ledger or $PRIVSYNTH_LEDGER) "
                "unless this is deliberate")


def is_ledger(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        return row is not None and str(row[0]).startswith("privsynth-ledger/")
    except sqlite3.Error:
        return False


def ledgers_near(path: Path) -> tuple[str, ...]:
    """Other privsynth ledgers in the same directory, and the default ledger if it is elsewhere."""
    found = [p for p in sorted(path.parent.glob("*")) if p != path and p.is_file() and p.suffix in (
        ".sqlite3", ".sqlite", ".db") and is_ledger(p)]
    default = default_ledger_path()
    if default.resolve() != path.resolve() and default.is_file() and default not in found and is_ledger(default):
        found.append(default)
    return tuple(str(p) for p in found)


def write_key_file(path: Path, secret: bytes) -> None:
    """Create the key file atomically with mode 0600 (complete, or not there at all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.write(fd, secret.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process made it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
        secret = bytes.fromhex(text)
    except ValueError:
        raise OutputError(f"{path}: not a privsynth ledger key file (expected {SECRET_BYTES * 2} hex digits)") from None
    if len(secret) != SECRET_BYTES:
        raise OutputError(f"{path}: not a privsynth ledger key file (expected {SECRET_BYTES * 2} hex digits)")
    return secret


def check_value(secret: bytes) -> bytes:
    return hmac.digest(secret, KEY_CHECK, "sha256")
