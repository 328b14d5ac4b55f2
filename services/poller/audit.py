"""The audit log: one JSON line per removal decision, appended and flushed before the reply."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


class AuditLog:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def append(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries)
        # O_APPEND: lines are only ever added, never rewritten.
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
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
