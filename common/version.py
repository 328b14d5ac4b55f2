"""discarr's version, and what a process says about itself when pinged.

`VERSION` comes from the installed package's metadata; from a source tree that was
never installed, from pyproject.toml beside the packages.
"""
from __future__ import annotations

import re
import time
from importlib import metadata
from pathlib import Path

_STARTED = time.monotonic()  # every discarr process imports this at start


def _from_pyproject(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = re.search(r'^version\s*=\s*["\']([^"\']+)["\']', project.group(1), re.M) if project else None
    return found.group(1) if found else None


def _version() -> str:
    try:
        return metadata.version("discarr")
    except metadata.PackageNotFoundError:
        pass
    return _from_pyproject(Path(__file__).resolve().parent.parent / "pyproject.toml") or "0+unknown"


VERSION = _version()


def ping_answer(service: str) -> dict:
    """The answer to a "ping" request: who answers, its version, how long it has run."""
    return {"service": service, "version": VERSION, "uptime_s": round(time.monotonic() - _STARTED, 1)}
