"""The bot's state file: the board message id, what was warned about, the command sync, and
automatic cleanup's confirmations and holds, so that a restarted bot carries on where it was.

JSON, written atomically (a reader sees the old file or the new one), off the event loop.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable bot state %s: %s", path, exc)
        return {}
    return state if isinstance(state, dict) else {}


def write_state(path: str | os.PathLike, text: str) -> None:
    """Write the state atomically: a reader (a restarted bot) sees the old file or the new one.

    Blocking (fsync can take seconds on a busy disk): StateFile runs it in a thread.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class StateFile:
    """Saves the bot state off the event loop, one save at a time."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def save(self, state: dict[str, Any]) -> bool:
        """Write all of `state`; False (logged) when the disk refuses (full, read-only).

        The caller keeps the state in memory and saves it again later: every
        save writes all of it, so nothing is lost by a failed one.
        """
        async with self._lock:
            # Serialized on the loop, inside the lock: the state cannot change while a thread writes
            # it, and two saves (the board's, the command sync's) land in the order they were made.
            text = json.dumps(state, indent=1, sort_keys=True)
            try:
                await asyncio.to_thread(write_state, self.path, text)
            except OSError as exc:
                log.error("cannot save the bot state to %s: %s; it is kept in memory and saved again later",
                          self.path, exc)
                return False
            return True
