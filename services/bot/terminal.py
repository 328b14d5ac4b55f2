"""Terminal rendering with rich: the board without Discord, and the CLI's tables."""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from common.settings import Settings
from common.sockets import RequestClient, ServiceError, ServiceUnavailable
from common.units import human_duration, human_size
from services.bot.board import board_rows, health_lines, progress_bar

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
        cells = [item["instance"], item["title"], f"{progress_bar(item['progress'], 8)} {item['progress']:.1f}%",
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
        f"{config['min_progress_change']:g} points and {human_size(config['min_size_change'])} of progress")
    parts: list[Any] = [summary]
    for title, key in (("Stuck", "stuck"), ("Inactive", "inactive"), ("Slow", "slow"), ("Soon stuck", "soon_stuck"),
                       ("Needs attention", "attention")):
        if progress.get(key):
            parts.append(items_table(title, progress[key]))
    parts.append(Text(_health_text(progress)))
    return Group(*parts)


def run_terminal_board(settings: Settings, stop: threading.Event, console: Console | None = None) -> None:
    """The board without Discord: print it every CHECK_INTERVAL."""
    console = console or make_console()
    with RequestClient("tracker", settings.tracker_query_endpoint, settings.request_timeout_seconds,
                       curve=settings.curve) as tracker:
        while not stop.is_set():
            try:
                console.print(render_board(tracker.request("check")))
            except (ServiceUnavailable, ServiceError) as exc:
                console.print(Text(f"board not refreshed: {exc}", style="red"))
            stop.wait(settings.check_interval)
