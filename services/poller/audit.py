"""The audit log: one JSON line per removal decision, appended and fsynced when it is taken.

Lines are written one at a time, each before the next DELETE: a removal first writes its
intent ("removing"), and is not executed when that line cannot be written; then its
outcome. A crash in the middle of a request loses no line of what was really done.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


class AuditLog:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def append(self, entry: dict[str, Any]) -> None:
        """Add one line and fsync it; an OSError (disk full, read-only) reaches the caller."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: lines are only ever added, never rewritten.
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every decision written so far; a line that is not JSON (a torn write) is passed over."""
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    yield entry
