"""Plain functions from the tracker's and poller's answers to discord.Embed objects.

The board's content comes from `services.bot.board` (the terminal board shows
the same rows); these functions only lay it out for Discord. Every function
returns embeds that fit one message (`limits.fit_message`), and the board is
split into pages that each fit.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

import discord
from discord.utils import escape_markdown

from common.settings import CLIENT_KINDS
from common.version import VERSION
from common.units import human_duration, human_size
from services.bot.board import (BoardRow, auto_cleanup_candidates, auto_cleanup_line, board_rows, health_lines,
                                instance_threshold_lines,
                                kept_for_now, progress_bar, removal_consequences, result_groups,
                                unhealthy_services)
from services.bot.limits import DESCRIPTION, EMBEDS, TOTAL, clip, embed_length, fit_lines, fit_message, text_length

RED = discord.Colour.red()
DARK_RED = discord.Colour.dark_red()
ORANGE = discord.Colour.orange()
GOLD = discord.Colour.gold()
GREEN = discord.Colour.green()
BLURPLE = discord.Colour.blurple()
GREY = discord.Colour.light_grey()

ICONS = {2: "🔴", 1: "🟡", 0: "🟢"}
TITLE_WIDTH = 120   # a release title on one line of a list
REASON_WIDTH = 220
BOARD_TITLE = "discarr status board"
PAGE_PATTERN = re.compile(r"Page (\d+)/(\d+)")


# --- small pieces ----------------------------------------------------------------

def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def relative_time(moment: datetime | float | None) -> str:
    """A Discord timestamp that every reader sees in their own time: "in 2 hours"."""
    if moment is None:
        return "unknown"
    epoch = moment.timestamp() if isinstance(moment, datetime) else float(moment)
    return f"<t:{int(epoch)}:R>"


def title_text(title: str, width: int = TITLE_WIDTH) -> str:
    return escape_markdown(clip(title or "(no title)", width))


def row_line(row: BoardRow) -> str:
    """One download of the board on one line: state, title, bar, size, ETA, and how long it has not moved."""
    line = (f"{ICONS[row.severity]} **{title_text(row.title)}** `{row.bar}` {row.progress:.1f}% of {row.size}"
            f" · ETA {relative_time(row.eta)}")
    if row.mark:
        line += f" · {escape_markdown(clip(row.mark, REASON_WIDTH))}"
    return line


def _evidence(item: dict[str, Any]) -> str:
    evidence = item.get("evidence") or {}
    since = evidence.get("since")
    if since is None:
        return ""
    moved = max(0, int(evidence.get("end_bytes", 0)) - int(evidence.get("start_bytes", 0)))
    return (f" · evidence ({escape_markdown(str(evidence.get('source', 'queue')))}): "
            f"{float(evidence.get('start_progress', 0)):.1f}% → "
            f"{float(evidence.get('end_progress', 0)):.1f}%, {human_size(moved)} since {relative_time(since)}")


def item_line(item: dict[str, Any], *, detail: str | None = None, evidence: bool = False) -> str:
    """One ITEM (or RESULT) of the tracker or poller on one line."""
    severity = 2 if item.get("category") in ("stuck", "inactive") else 1
    text = (f"{ICONS[severity]} **{title_text(item.get('title', ''))}** · {escape_markdown(item.get('instance', '?'))}"
            f" · {float(item.get('progress', 0)):.1f}% of {human_size(item.get('size', 0))}"
            f" · {escape_markdown(clip(detail if detail is not None else item.get('reason', ''), REASON_WIDTH))}")
    if item.get("private"):
        text += " · 🔒 private torrent"
    if item.get("protected_by"):
        text += f" · 🛡️ protected ({escape_markdown(clip(str(item['protected_by']), REASON_WIDTH))})"
    return text + (_evidence(item) if evidence else "")


def _split_budget(needs: Sequence[int], budget: int) -> list[int]:
    """Share `budget` among parts: small parts get what they need, large ones split the rest evenly."""
    shares = [0] * len(needs)
    remaining, count = budget, len(needs)
    for need, index in sorted((need, index) for index, need in enumerate(needs)):
        share = min(need, remaining // count) if count else 0
        shares[index] = share
        remaining -= share
        count -= 1
    return shares


def _list_embeds(sections: Sequence[tuple[str, discord.Colour, list[str]]], budget: int) -> list[discord.Embed]:
    """One embed per non-empty section (title, colour, lines), all together within `budget` characters."""
    sections = [section for section in sections if section[2]][:EMBEDS]
    needs = [text_length(title) + text_length("\n".join(lines)) for title, _, lines in sections]
    embeds = []
    for (title, colour, lines), share in zip(sections, _split_budget(needs, budget)):
        room = min(DESCRIPTION, share - text_length(title))
        embeds.append(discord.Embed(title=title, colour=colour, description=fit_lines(lines, max(0, room)) or None))
    return embeds


# --- the status board ------------------------------------------------------------------

HEALTH_ICONS = {"ok": "✅", "down": "🔴", "outage": "⚠️", "auto": "🧹"}


def _health_lines(check: dict[str, Any]) -> list[str]:
    # A silent poller shows as "stale" here, an unreachable download client as unhealthy.
    return [f"{HEALTH_ICONS[level]} {escape_markdown(text)}" for level, text in health_lines(check)]


def _board_header(check: dict[str, Any], rows: list[BoardRow], now: datetime) -> discord.Embed:
    downloads = check.get("downloads", ())
    counts = {
        "stuck": sum(1 for item in downloads if item.get("category") == "stuck"),
        "failed": sum(1 for item in downloads if item.get("category") == "inactive"),
        "slow": sum(1 for item in downloads if item.get("category") == "slow"),
        "soon stuck": sum(1 for item in downloads if item.get("soon_stuck")),
        "need attention": sum(1 for item in downloads if item.get("category") == "attention"),
    }
    active = sum(1 for item in downloads if item.get("activity") == "active")
    summary = (f"**{check.get('tracked', len(downloads))}** downloads tracked, **{active}** active"
               + "".join(f" · **{count}** {name}" for name, count in counts.items() if count))
    unhealthy = bool(unhealthy_services(check))
    worst = max((row.severity for row in rows), default=0)
    colour = RED if worst == 2 or unhealthy else GOLD if worst == 1 else GREEN
    health = _health_lines(check) or ["no instance has reported yet"]
    description = summary + "\n" + fit_lines(health, 1500)
    if not rows:
        description += "\n\nNothing is downloading right now."
    return discord.Embed(title=BOARD_TITLE, description=description, colour=colour, timestamp=now)


def _numbered(header: discord.Embed, page: int, pages: int) -> discord.Embed:
    embed = header.copy()
    embed.set_footer(text=f"Page {page}/{pages} · updated")
    return embed


def _group_by_instance(rows: list[BoardRow]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for row in rows:  # board_rows puts the worst first; that order is kept inside each instance
        groups.setdefault(row.instance, []).append(row_line(row))
    return sorted(groups.items())


def board_pages(check: dict[str, Any], *, now: datetime | None = None) -> list[list[discord.Embed]]:
    """The board as pages; each page is the embeds of one message (a header, then one embed per instance)."""
    now = _now(now)
    rows = board_rows(check)
    header = _board_header(check, rows, now)
    header_room = embed_length(_numbered(header, 99999, 99999))
    budget = TOTAL - header_room - 8
    pages: list[list[tuple[str, list[str]]]] = []
    page: list[tuple[str, list[str]]] = []
    used = 0

    def close_page() -> None:
        nonlocal page, used
        if page:
            pages.append(page)
        page, used = [], 0

    for instance, lines in _group_by_instance(rows):
        title = escape_markdown(instance)
        chunk: list[str] = []
        chunk_size = 0  # characters of the chunk's description
        for line in lines:
            size = text_length(line)
            grown = chunk_size + size + (1 if chunk else 0)
            if chunk and grown <= DESCRIPTION and used + text_length(title) + grown <= budget:
                chunk.append(line)
                chunk_size = grown
                continue
            if chunk:  # the chunk is full: it becomes an embed, the line starts the next one
                page.append((title, chunk))
                used += text_length(title) + chunk_size
                title = f"{escape_markdown(instance)} (continued)"
            if len(page) >= EMBEDS - 1 or used + text_length(title) + size > budget:
                close_page()
            chunk, chunk_size = [line], size
        if chunk:
            page.append((title, chunk))
            used += text_length(title) + chunk_size
    close_page()
    if not pages:
        pages = [[]]
    total = len(pages)
    result = []
    for number, sections in enumerate(pages, start=1):
        embeds = [_numbered(header, number, total)]
        for title, lines in sections:
            severity_colour = RED if lines[0].startswith(ICONS[2]) else GOLD if lines[0].startswith(ICONS[1]) else BLURPLE
            embeds.append(discord.Embed(title=title, description="\n".join(lines), colour=severity_colour))
        result.append(fit_message(embeds))
    return result


def page_of(embeds: Iterable[discord.Embed | dict[str, Any]]) -> tuple[int, int]:
    """(page index from 0, page count) read from a board message's footer; (0, 1) when it has none."""
    for embed in embeds:
        footer = embed.get("footer", {}).get("text") if isinstance(embed, dict) else embed.footer.text
        match = PAGE_PATTERN.search(footer or "")
        if match:
            return max(0, int(match.group(1)) - 1), max(1, int(match.group(2)))
    return 0, 1


def board_error_embed(detail: str, now: datetime | None = None) -> discord.Embed:
    embed = discord.Embed(title=BOARD_TITLE, colour=RED, timestamp=_now(now),
                          description=f"⚠️ The board could not be refreshed: {clip(detail, 1500)}\n"
                                      "It will be refreshed again as soon as the tracker answers.")
    embed.set_footer(text="Page 1/1 · tried")
    return embed


# --- /progress ---------------------------------------------------------------------------

def _threshold_lines(config: dict[str, Any]) -> list[str]:
    lines = []
    if "stuck_threshold_minutes" in config:
        lines.append(f"stuck after **{human_duration(float(config['stuck_threshold_minutes']))}** of less than "
                     f"**{float(config.get('min_progress_change', 0)):g} points** and "
                     f"**{human_size(float(config.get('min_size_change', 0)))}** of progress")
    if "progress_history_hours" in config:
        lines.append(f"history kept: {float(config['progress_history_hours']):g} h, "
                     f"at most {config.get('max_snapshots_per_download', '?')} points per download")
    if "poll_interval_seconds" in config:
        lines.append(f"queues read every {human_duration(float(config['poll_interval_seconds']) / 60)}")
    known = {"stuck_threshold_minutes", "min_progress_change", "min_size_change", "progress_history_hours",
             "max_snapshots_per_download", "poll_interval_seconds"}
    lines.extend(f"{key}: {value}" for key, value in sorted(config.items()) if key not in known)
    return lines or ["(the tracker sent no thresholds)"]


def progress_embeds(progress: dict[str, Any], *, now: datetime | None = None) -> list[discord.Embed]:
    """/progress: statistics and thresholds, then stuck, inactive, slow, soon-stuck and attention downloads."""
    stats = discord.Embed(title="Tracker statistics", timestamp=_now(now),
                          colour=RED if progress.get("stuck") or progress.get("inactive") else
                          GOLD if progress.get("soon_stuck") or progress.get("attention") or progress.get("slow")
                          else GREEN)
    health = _health_lines(progress)
    if progress.get("worst_offender"):
        health.append(f"📉 {escape_markdown(progress['worst_offender'])}")
    stats.description = fit_lines(health, 1200) if health else "no instance has reported yet"
    for name, value in (("Tracked", progress.get("tracked", 0)), ("Stuck", len(progress.get("stuck", ()))),
                        ("Inactive", len(progress.get("inactive", ()))),
                        ("Slow", len(progress.get("slow", ()))),
                        ("Soon stuck", len(progress.get("soon_stuck", ()))),
                        ("Needs attention", len(progress.get("attention", ())))):
        stats.add_field(name=name, value=str(value), inline=True)
    stats.add_field(name="Thresholds", value=fit_lines(_threshold_lines(progress.get("config") or {})
                                                       + instance_threshold_lines(progress), 1024),
                    inline=False)
    stats.set_footer(text=f"discarr {VERSION}")
    sections = [
        (f"Stuck ({len(progress.get('stuck', ()))})", RED,
         [item_line(item) for item in progress.get("stuck", ())]),
        (f"Inactive: the *arr gave up ({len(progress.get('inactive', ()))})", DARK_RED,
         [item_line(item) for item in progress.get("inactive", ())]),
        (f"Slow: too slow to finish in time ({len(progress.get('slow', ()))})", ORANGE,
         [item_line(item) for item in progress.get("slow", ())]),
        (f"Soon stuck ({len(progress.get('soon_stuck', ()))})", ORANGE,
         [item_line(item) for item in progress.get("soon_stuck", ())]),
        (f"Needs attention: import blocked or not imported ({len(progress.get('attention', ()))})", GOLD,
         [item_line(item) for item in progress.get("attention", ())]),
    ]
    auto = progress.get("auto_cleanup")
    if auto:
        sections.append((f"Automatic cleanup ({escape_markdown(auto['state'])})", BLURPLE,
                         [escape_markdown(auto_cleanup_line(auto))] + [
                             f"{escape_markdown(line)} · removed {relative_time(when) if when else 'next hour'}"
                             for line, when in auto_cleanup_candidates(auto)]))
    budget = TOTAL - embed_length(stats) - 16
    return fit_message([stats, *_list_embeds(sections, budget)])


def download_embed(history: dict[str, Any], *, image: str | None = "history.png") -> discord.Embed:
    """/progress download: what the history says, with the chart attached as `image`."""
    points = history.get("points") or []
    embed = discord.Embed(title=clip(history.get("title") or history.get("download_id", "download"), 256),
                          colour=BLURPLE)
    embed.add_field(name="Instance", value=escape_markdown(str(history.get("instance", "?"))), inline=True)
    if points:
        last, first = points[-1], points[0]
        embed.add_field(name="Progress", value=f"`{progress_bar(last['progress'])}` {last['progress']:.1f}%",
                        inline=True)
        embed.add_field(name="Downloaded", value=human_size(last["bytes"]), inline=True)
        embed.add_field(name="Activity", value=str(last.get("activity", "?")), inline=True)
        embed.add_field(name="Last change", value=relative_time(last["t"]), inline=True)
        embed.add_field(name="History", value=f"{len(points)} change points since {relative_time(first['t'])}",
                        inline=True)
        if history.get("reason"):
            embed.add_field(name="Now", value=escape_markdown(clip(str(history["reason"]), REASON_WIDTH)), inline=False)
    else:
        embed.description = "No history recorded yet."
    embed.set_footer(text=f"download id {clip(str(history.get('download_id', '')), 200)}")
    if image and points:
        embed.set_image(url=f"attachment://{image}")
    return fit_message([embed])[0]


# --- /cleanup ------------------------------------------------------------------------------

def _kept_sections(analysis: dict[str, Any], include_import_blocked: bool, include_slow: bool
                   ) -> list[tuple[str, discord.Colour, list[str]]]:
    """What a cleanup keeps although the analysis found it, and why."""
    return [(f"{title} ({len(items)})", GOLD, [item_line(item, detail=item.get("withheld")) for item in items])
            for title, items in kept_for_now(analysis, include_import_blocked, include_slow)]


def cleanup_preview_embeds(analysis: dict[str, Any], *, include_import_blocked: bool, dry_run: bool,
                           include_slow: bool = False, blocklist: bool = True, keep_private: bool = True,
                           expires_in: float | None = None) -> list[discord.Embed]:
    """What a cleanup would remove and why (with the progress evidence), and what it keeps."""
    candidates = analysis.get("candidates") or []
    if not candidates:
        head = discord.Embed(title="Nothing to clean up", colour=GREEN,
                             description="No download is stuck or failed right now.")
        head.description += "".join(f"\n{title}: {len(items)}"
                                    for title, items in kept_for_now(analysis, include_import_blocked, include_slow))
        return fit_message([head])
    verb = "would be removed (dry run)" if dry_run else "would be removed"
    head = discord.Embed(title=f"Cleanup preview: {len(candidates)} download(s) {verb}", colour=ORANGE)
    consequence = removal_consequences(candidates, blocklist=blocklist, keep_private=keep_private)
    if dry_run:
        consequence = "Dry run: the poller checks each one again and removes nothing."
    elif expires_in:
        consequence += f" Only you can confirm; the buttons expire in {human_duration(expires_in / 60)}."
    head.set_footer(text=consequence + " The poller checks every download again before removing it.")
    lines = [item_line(item, evidence=True) for item in candidates]
    kept = _kept_sections(analysis, include_import_blocked, include_slow)
    budget = TOTAL - embed_length(head) - 16
    if kept:
        needs = [text_length("\n".join(lines)),
                 sum(text_length(title) + text_length("\n".join(kept_lines)) for title, _, kept_lines in kept)]
        shares = _split_budget(needs, budget)
        head.description = fit_lines(lines, min(DESCRIPTION, shares[0]))
        return fit_message([head, *_list_embeds(kept, shares[1])])
    head.description = fit_lines(lines, min(DESCRIPTION, budget))
    return fit_message([head])


def cleanup_report_embeds(results: list[dict[str, Any]], *, dry_run: bool, requested_by: str | None = None,
                          heading: str = "Cleanup") -> list[discord.Embed]:
    """The poller's answer: removed, skipped and failed downloads, each with the reason."""
    groups = result_groups(results, dry_run=dry_run)
    if dry_run:
        title = (f"{heading} dry run: {len(groups['would'])} would be removed, {len(groups['skipped'])} skipped, "
                 f"{len(groups['failed'])} failed")
    else:
        title = (f"{heading} report: {len(groups['removed'])} removed, {len(groups['skipped'])} skipped, "
                 f"{len(groups['failed'])} failed")
    head = discord.Embed(title=title, colour=RED if groups["failed"] else GREEN if not dry_run else BLURPLE,
                         description="Nothing was removed." if dry_run or not groups["removed"] else None)
    if not results:
        head.description = "The poller had nothing to do."
    if requested_by:
        head.set_footer(text=f"requested by {requested_by}")
    sections = [
        (f"Removed ({len(groups['removed'])})", GREEN,
         [item_line(r, detail=f"{r.get('reason', '')}: {r.get('detail', '')}") for r in groups["removed"]]),
        (f"Would be removed ({len(groups['would'])})", BLURPLE,
         [item_line(r, detail=r.get("reason", "")) for r in groups["would"]]),
        (f"Skipped ({len(groups['skipped'])})", GREY,
         [item_line(r, detail=r.get("detail", "")) for r in groups["skipped"]]),
        (f"Failed ({len(groups['failed'])})", RED,
         [item_line(r, detail=r.get("detail", "")) for r in groups["failed"]]),
    ]
    budget = TOTAL - embed_length(head) - 16
    return fit_message([head, *_list_embeds(sections, budget)])


# --- warnings, notices and errors ----------------------------------------------------------

def warning_embed(stuck: list[dict[str, Any]], unhealthy: list[dict[str, Any]],
                  now: datetime | None = None) -> discord.Embed:
    """One message for what broke since the last look: newly stuck downloads, newly unhealthy instances
    and download clients."""
    parts = []
    clients = sum(1 for service in unhealthy if service.get("kind") in CLIENT_KINDS)
    if len(unhealthy) > clients:
        parts.append(f"{len(unhealthy) - clients} instance(s) unhealthy")
    if clients:
        parts.append(f"{clients} download client(s) unhealthy")
    if stuck:
        parts.append(f"{len(stuck)} download(s) stuck")
    lines = [f"🔴 **{escape_markdown(i['name'])}** is unhealthy ({i.get('state', 'error')}): "
             f"{escape_markdown(clip(str(i.get('error') or 'no reason given'), REASON_WIDTH))}" for i in unhealthy]
    lines += [f"🔴 **{title_text(item.get('title', ''))}** · {escape_markdown(item['instance'])} · "
              f"no progress for {human_duration(float(item.get('stalled_minutes', 0)))}" for item in stuck]
    embed = discord.Embed(title="⚠️ " + ", ".join(parts), colour=RED, timestamp=_now(now),
                          description=fit_lines(lines, DESCRIPTION))
    embed.set_footer(text="/progress shows the details; /cleanup removes stuck downloads")
    return fit_message([embed])[0]


def notice_embed(title: str, text: str | None = None, colour: discord.Colour = BLURPLE) -> discord.Embed:
    return fit_message([discord.Embed(title=title, description=text, colour=colour)])[0]


def error_embed(title: str, detail: str | None = None) -> discord.Embed:
    return notice_embed(title, detail, RED)


def failure_embed(error: BaseException) -> discord.Embed:
    """An error for the user; a failed service request names the service (see commands.ServiceFailure)."""
    service = getattr(error, "service", None)
    if service and getattr(error, "unavailable", False):
        return error_embed(f"The {service} is not answering", f"{error}\nNothing was changed.")
    if service:
        return error_embed(f"The {service} reported an error", str(error))
    if isinstance(error, discord.HTTPException):
        return error_embed("Discord refused the message", f"{error.status}: {clip(error.text, 1000)}")
    return error_embed("Something went wrong", "The bot's log has the details.")


# --- automatic cleanup ---------------------------------------------------------------------------

def auto_cleanup_embeds(announcement: Any) -> list[discord.Embed]:
    """One message per automatic cleanup event (services.bot.autoclean.Announcement)."""
    if announcement.kind == "removed":
        return cleanup_report_embeds(list(announcement.results), dry_run=announcement.dry_run,
                                     requested_by="automatic cleanup (AUTO_CLEANUP)", heading="Automatic cleanup")
    if announcement.kind == "held":
        return [error_embed(f"⏸️ Automatic cleanup holds {clip(announcement.instance, 100)}",
                            f"{clip(announcement.why, 1500)}\nNothing of it is removed automatically until this "
                            "clears. To clean up by hand, look at /progress and run /cleanup.")]
    return [notice_embed(f"▶️ Automatic cleanup resumes on {clip(announcement.instance, 100)}",
                         "The hold is over; its stuck downloads are confirmed again before any removal.", GREEN)]
