"""Terminal rendering with rich: the board without Discord, and the CLI's tables."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from common.protocol import check_page, merge_check
from common.settings import Settings
from common.sockets import RequestClient, ServiceError, ServiceUnavailable
from common.units import human_duration, human_size
from services.bot.autoclean import Announcement, auto_cleaner
from services.bot.board import (auto_cleanup_candidates, board_rows, health_lines, instance_threshold_lines,
                                progress_bar)
from services.bot.requests import ServiceFailure, Services
from services.bot.state_file import StateFile, load_state

log = logging.getLogger(__name__)

_STYLES = {2: "bold red", 1: "yellow", 0: ""}
PIPE_WIDTH = 160  # under honcho or in a pipe there is no terminal width: do not wrap at 80


def make_console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def _eta(eta: datetime | None, now: datetime) -> str:
    if eta is None:
        return "-"
    seconds = (eta - now).total_seconds()
    return "now" if seconds <= 0 else f"in {human_duration(seconds / 60)}"


def render_board(check: dict[str, Any], now: datetime | None = None) -> Group:
    now = now or datetime.now(timezone.utc)
    table = Table(title=f"discarr: {check['tracked']} downloads tracked", title_justify="left")
    table.add_column("instance", no_wrap=True)
    table.add_column("download", overflow="fold", min_width=24)
    for column in ("progress", "size", "ETA"):
        table.add_column(column, no_wrap=True)
    table.add_column("state")
    rows = board_rows(check)
    for row in rows:
        table.add_row(row.instance, row.title, f"{row.bar} {row.progress:5.1f}%", row.size,
                      _eta(row.eta, now), Text(row.mark, style=_STYLES[row.severity]))
    if not rows:
        table.add_row("", "nothing is downloading", "", "", "", "")
    health = Text(_health_text(check) or "no instance has reported yet")
    return Group(table, health)


def _health_text(check: dict[str, Any]) -> str:
    return "\n".join(line for _, line in health_lines(check))


def items_table(title: str, items: list[dict[str, Any]], *, result: bool = False) -> Table:
    table = Table(title=f"{title} ({len(items)})", title_justify="left")
    for column in ("instance", "download", "progress", "size", "stalled", "reason"):
        table.add_column(column, overflow="fold" if column in ("download", "reason") else "ellipsis")
    if result:
        table.add_column("result")
    for item in items:
        title = item["title"] + (" (private torrent)" if item.get("private") else "") + (
            f" protected ({item['protected_by']})" if item.get("protected_by") else "")
        cells = [item["instance"], title, f"{progress_bar(item['progress'], 8)} {item['progress']:.1f}%",
                 human_size(item["size"]), human_duration(item["stalled_minutes"]), item["reason"]]
        if result:
            cells.append(f"{item['result']}: {item['detail']}")
        table.add_row(*cells)
    return table


def render_progress(progress: dict[str, Any]) -> Group:
    config = progress["config"]
    summary = Text(
        f"{progress['tracked']} downloads tracked: {len(progress['stuck'])} stuck, "
        f"{len(progress['inactive'])} inactive, {len(progress.get('slow', []))} slow, "
        f"{len(progress['soon_stuck'])} soon stuck, {len(progress['attention'])} need attention\n"
        f"stuck after {config['stuck_threshold_minutes']:g} min with less than "
        f"{config['min_progress_change']:g} points and {human_size(config['min_size_change'])} of progress"
        + "".join(f"\n{line}" for line in instance_threshold_lines(progress)))
    parts: list[Any] = [summary]
    for title, key in (("Stuck", "stuck"), ("Inactive", "inactive"), ("Slow", "slow"), ("Soon stuck", "soon_stuck"),
                       ("Needs attention", "attention")):
        if progress.get(key):
            parts.append(items_table(title, progress[key]))
    parts.append(Text(_health_text(progress)))
    if progress.get("worst_offender"):
        parts.append(Text(f"worst of the last 7 days: {progress['worst_offender']}", style="yellow"))
    auto = progress.get("auto_cleanup")
    if auto and auto.get("candidates"):
        now = time.time()
        parts.append(Text("\n".join(f"  {line}: removed " + (f"in {human_duration(max(0.0, when - now) / 60)}"
                                                                if when else "in the next hour")
                                    for line, when in auto_cleanup_candidates(auto))))
    return Group(*parts)


def board_signature(check: dict[str, Any]) -> tuple:
    """What the board says, apart from the passing of time (ETAs, ages): logged again only when it changes."""
    rows = tuple((row.instance, row.title, row.mark, int(row.progress)) for row in board_rows(check))
    return check.get("tracked"), rows, _health_text(check)


def run_terminal_board(settings: Settings, stop: threading.Event, console: Console | None = None) -> None:
    """The board without Discord, printed whenever what it says changed; automatic cleanup after each look."""
    asyncio.run(_terminal_board(settings, stop, console or make_console()))


async def _terminal_board(settings: Settings, stop: threading.Event, console: Console) -> None:
    services = Services(settings)
    store = StateFile(settings.bot_state_file)
    state = load_state(settings.bot_state_file)

    async def save() -> None:
        await store.save(state)

    async def announce(announcement: Announcement) -> None:
        log.info("%s", announcement.text())  # the log is the terminal's channel: one line each

    auto = auto_cleaner(settings, services, state, save, announce)
    shown = None
    try:
        while not stop.is_set():
            try:
                check = await services.check()
                check["auto_cleanup"] = auto.report()
                if board_signature(check) != shown:
                    console.print(render_board(check))
                    shown = board_signature(check)
                await auto.run(check)
            except ServiceFailure as exc:
                if shown != str(exc):
                    console.print(Text(f"board not refreshed: {exc}", style="red"))
                    shown = str(exc)
            await _sleep_unless(stop, settings.check_interval)
    finally:
        await services.close()


async def _sleep_unless(stop: threading.Event, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def watch_board(settings: Settings, console: Console | None = None, interval: float | None = None) -> None:
    """`discarr watch`: the board live in this terminal, redrawn in place, until Ctrl-C."""
    console = console or make_console()
    check, offset = None, 0
    with RequestClient("tracker", settings.tracker_query_endpoint, settings.request_timeout_seconds,
                       curve=settings.curve) as tracker, Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                try:
                    check, offset = None, 0
                    while offset is not None:
                        check, offset = merge_check(check, tracker.request("check", check_page(offset)))
                    live.update(render_board(check), refresh=True)
                except (ServiceUnavailable, ServiceError) as exc:
                    live.update(Text(f"board not refreshed: {exc}; trying again", style="red"), refresh=True)
                time.sleep(interval or settings.check_interval)
        except KeyboardInterrupt:
            pass
