"""The tracker's `stats` answer (SPEC 5 and 5.1) for the terminal, for Discord and as a chart.

Plain functions from plain data, no sockets: `discarr stats` prints `stats_table`,
`/stats` sends `stats_embeds` with the `render_stats_png` chart attached, and both
name the `worst_offender` when one key stands out.

The answer's rows come sorted worst first (by stuck-or-removed rate); every view
keeps that order. A row counts its stuck and its removed downloads apart and a
download can be both, so unless the tracker also sends `stuck_or_removed`, the
rate here counts the larger of the two: removals are mostly of downloads that
were stuck, so that is the close estimate, and never an overstatement.

discord, matplotlib and rich are imported when first used, so the `discarr`
command, which names `STATS_GROUPINGS` in its options, starts as fast as before.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from common.units import human_duration, human_size

if TYPE_CHECKING:
    import discord
    from rich.table import Table

STATS_GROUPINGS = ("indexer", "client", "instance", "group")
GROUPING_NAMES = {"indexer": "indexer", "client": "download client", "instance": "instance",
                  "group": "release group"}
STATS_CHART_NAME = "stats.png"
EMPTY = "no download has left the queue in this period"
CHART_KEYS = 20         # bars in the chart: the worst keys
CHART_KEY_WIDTH = 40    # characters of a key on the chart's axis
TABLE_KEY_WIDTH = 120   # characters of a key in the terminal table
FIELD_KEY_WIDTH = 100   # characters of a key in an embed field's name
OFFENDER_KEY_WIDTH = 100  # characters of a key in the worst-offender line
EMBED_FIELDS = 24       # key fields per embed; the 25th is for "…and N more"


# --- figures of one row and of the whole answer ------------------------------------------------

def _rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return list(answer.get("rows") or ())


def bad_count(row: dict[str, Any]) -> int:
    """How many of a key's downloads got stuck or were removed (see the module docstring)."""
    downloads = int(row.get("downloads") or 0)
    if isinstance(row.get("stuck_or_removed"), int):
        return min(downloads, row["stuck_or_removed"])
    return min(downloads, max(int(row.get("stuck") or 0), int(row.get("removed") or 0)))


def bad_rate(row: dict[str, Any]) -> float:
    """The stuck-or-removed share of a key's downloads, 0..1 (0 for a key without downloads)."""
    downloads = int(row.get("downloads") or 0)
    return bad_count(row) / downloads if downloads > 0 else 0.0


def overall(answer: dict[str, Any]) -> tuple[int, int, float]:
    """(downloads, stuck or removed, their share) over every row."""
    rows = _rows(answer)
    downloads = sum(int(row.get("downloads") or 0) for row in rows)
    bad = sum(bad_count(row) for row in rows)
    return downloads, bad, (bad / downloads if downloads else 0.0)


def percent(rate: float) -> str:
    """"20 %"; a share under 1 % keeps two significant digits ("0.06 %") rather than reading as none."""
    value = rate * 100
    return f"{value:.0f} %" if value >= 1 or value == 0 else f"{value:.2g} %"


def hours_text(hours: float | None) -> str:
    return "-" if hours is None else human_duration(float(hours) * 60)


def speed_text(bps: float | None) -> str:
    return "-" if bps is None else f"{human_size(float(bps))}/s"


def grouping_name(by: str | None) -> str:
    return GROUPING_NAMES.get(by or "", by or "key")


def since_moment(answer: dict[str, Any]) -> datetime | None:
    """The start of the period, from the answer's ISO 8601 `since` (naive means UTC)."""
    text = str(answer.get("since") or "")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def period_text(answer: dict[str, Any]) -> str:
    """"since 2024-05-01 12:00 UTC" (the raw text when it is not a date)."""
    moment = since_moment(answer)
    if moment is None:
        return f"since {answer.get('since') or '?'}"
    return f"since {moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def _ratio_text(ratio: float) -> str:
    if round(ratio, 1) == 2.0:
        return "twice"
    return f"{ratio:.1f} times" if ratio < 10 else f"{ratio:.0f} times"


def worst_offender(answer: dict[str, Any], min_downloads: int = 10) -> str | None:
    """One line about the key that stands out, or None when none does.

    The worst key among those with at least `min_downloads` downloads stands out
    when its stuck-or-removed rate is at least twice the overall rate.
    """
    eligible = [row for row in _rows(answer) if int(row.get("downloads") or 0) >= min_downloads]
    if not eligible:
        return None
    worst = max(eligible, key=bad_rate)  # the first of equals: the answer's order
    _, _, overall_rate = overall(answer)
    rate = bad_rate(worst)
    if rate <= 0 or overall_rate <= 0 or rate < 2 * overall_rate:
        return None
    return (f"{grouping_name(answer.get('by'))} {_clip_key(worst['key'], OFFENDER_KEY_WIDTH)}: "
            f"{bad_count(worst)} of {worst['downloads']} "
            f"downloads stuck or removed ({percent(rate)}, {_ratio_text(rate / overall_rate)} "
            f"the overall {percent(overall_rate)})")


def summary_text(answer: dict[str, Any]) -> str:
    downloads, bad, rate = overall(answer)
    keys = len(_rows(answer))
    return (f"{downloads} download(s) left the queue, {bad} stuck or removed ({percent(rate)}), "
            f"from {keys} {grouping_name(answer.get('by'))}(s)")


# --- the terminal -------------------------------------------------------------------------------

def stats_table(answer: dict[str, Any]) -> "Table":
    """`discarr stats`: one row per key, worst first; the totals and the worst offender (or that the period
    is empty) as the caption."""
    from rich.table import Table

    from services.bot.limits import clip
    rows = _rows(answer)
    name = grouping_name(answer.get("by"))
    table = Table(title=f"Downloads by {name} {period_text(answer)}", title_justify="left",
                  caption="\n".join(filter(None, [summary_text(answer), worst_offender(answer)])) if rows else EMPTY,
                  caption_justify="left")
    table.add_column(name, overflow="fold", min_width=12)
    for column in ("downloads", "completed", "removed", "stuck", "inactive", "slow", "recurring",
                   "stuck or removed", "median time to complete", "median speed"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(clip(str(row.get("key")), TABLE_KEY_WIDTH),
                      *(str(int(row.get(column) or 0)) for column in
                        ("downloads", "completed", "removed", "stuck", "inactive", "slow", "recurring")),
                      percent(bad_rate(row)), hours_text(row.get("median_hours_to_complete")),
                      speed_text(row.get("median_speed_bps")))
    return table


# --- Discord ----------------------------------------------------------------------------------------

def _field(row: dict[str, Any], overall_rate: float) -> tuple[str, str]:
    from discord.utils import escape_markdown

    from services.bot.limits import clip
    rate = bad_rate(row)
    icon = "🔴" if rate > 0 and rate >= 2 * overall_rate else "🟡" if rate > 0 else "🟢"
    name = f"{icon} {escape_markdown(clip(str(row.get('key')), FIELD_KEY_WIDTH))}"
    value = "\n".join([
        f"**{percent(rate)}** stuck or removed · {int(row.get('downloads') or 0)} downloads",
        f"{int(row.get('completed') or 0)} completed · {int(row.get('removed') or 0)} removed · "
        f"{int(row.get('recurring') or 0)} recurring",
        f"stuck {int(row.get('stuck') or 0)} · inactive {int(row.get('inactive') or 0)} · "
        f"slow {int(row.get('slow') or 0)}",
        f"median {hours_text(row.get('median_hours_to_complete'))} to complete · "
        f"{speed_text(row.get('median_speed_bps'))}",
    ])
    return name, value


def stats_embeds(answer: dict[str, Any], *, image: str | None) -> list["discord.Embed"]:
    """/stats: the period and totals, the worst offender, one field per key (worst first), the chart.

    Keys that do not fit one message are counted in a last "…and N more" field.
    """
    import discord

    from services.bot.embeds import GOLD, GREEN, RED
    from services.bot.limits import FIELD_VALUE, TOTAL, embed_length, fit_lines, fit_message, more_note, text_length
    rows = _rows(answer)
    _, _, overall_rate = overall(answer)
    offender = worst_offender(answer)
    moment = since_moment(answer)
    since = f"since <t:{int(moment.timestamp())}:f> (<t:{int(moment.timestamp())}:R>)" if moment else \
        period_text(answer)
    lines = [since]
    if rows:
        lines.append(summary_text(answer))
        if offender:
            lines.append(f"⚠️ {discord.utils.escape_markdown(offender)}")
    else:
        lines.append(EMPTY)
    embed = discord.Embed(title=f"Download statistics by {grouping_name(answer.get('by'))}",
                          description=fit_lines(lines, 1500),
                          colour=RED if offender else GOLD if overall_rate > 0 else GREEN)
    if rows and image:
        embed.set_image(url=f"attachment://{image}")
    # Fields while they fit, leaving room for the note that counts the rest.
    budget = TOTAL - embed_length(embed) - 16
    note_room = 1 + text_length(more_note(len(rows)))
    shown = 0
    for row in rows:
        if shown == EMBED_FIELDS:
            break
        name, value = _field(row, overall_rate)
        value = fit_lines(value.split("\n"), FIELD_VALUE)
        length = text_length(name) + text_length(value)
        if length + note_room > budget:
            break
        embed.add_field(name=name, value=value, inline=True)
        budget -= length
        shown += 1
    if shown < len(rows):
        embed.add_field(name="\u200b", value=more_note(len(rows) - shown), inline=False)
    return fit_message([embed])


# --- the chart ------------------------------------------------------------------------------------------

def _clip_key(key: str, width: int = CHART_KEY_WIDTH) -> str:
    key = " ".join(str(key).split())  # no line breaks on an axis
    return key if len(key) <= width else key[:width - 1] + "…"


def _bar_colours(rates: Sequence[float], overall_rate: float) -> list[str]:
    return ["#c0392b" if rate > 0 and rate >= 2 * overall_rate else "#f39c12" if rate > overall_rate
            else "#2e86de" for rate in rates]


def render_stats_png(answer: dict[str, Any]) -> bytes:
    """Stuck-or-removed rate per key (the 20 worst), each bar labelled with its downloads; PNG bytes.

    matplotlib's object API on the Agg backend, as services.bot.chart: safe in a worker thread.
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = _rows(answer)[:CHART_KEYS]
    _, _, overall_rate = overall(answer)
    figure = Figure(figsize=(10, 1.8 + 0.32 * max(len(rows), 3)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    name = grouping_name(answer.get("by"))
    more = len(_rows(answer)) - len(rows)
    axes.set_title(f"Stuck or removed by {name}, {period_text(answer)}"
                   + (f"\nthe {len(rows)} worst of {len(rows) + more}" if more else ""), fontsize=10)
    if rows:
        rates = [bad_rate(row) * 100 for row in rows]
        positions = list(range(len(rows)))
        bars = axes.barh(positions, rates, color=_bar_colours([r / 100 for r in rates], overall_rate))
        axes.bar_label(bars, labels=[f"{int(row.get('downloads') or 0)} downloads" for row in rows],
                       padding=3, fontsize=8)
        axes.set_yticks(positions)
        # parse_math off: a key with "$" in it is a name, not a formula.
        axes.set_yticklabels([_clip_key(row.get("key", "")) for row in rows], fontsize=8, parse_math=False)
        axes.invert_yaxis()  # the worst on top
        if overall_rate > 0:
            axes.axvline(overall_rate * 100, color="#7f8c8d", linestyle="--", linewidth=1,
                         label=f"overall {percent(overall_rate)}")
            axes.legend(loc="lower right", fontsize=8)
        axes.set_xlim(0, 125)  # room for the labels right of a 100 % bar
        axes.set_xticks([0, 20, 40, 60, 80, 100])
    else:
        axes.text(0.5, 0.5, EMPTY, ha="center", va="center", transform=axes.transAxes)
        axes.set_yticks([])
        axes.set_xlim(0, 100)
    axes.set_xlabel("stuck or removed (% of downloads)")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def stats_grouping_choices(current: str) -> list[tuple[str, str]]:
    """(name, value) of the groupings matching what was typed, for /stats `by`."""
    needle = current.strip().lower()
    return [(GROUPING_NAMES[value], value) for value in STATS_GROUPINGS
            if not needle or needle in value or needle in GROUPING_NAMES[value]]


OFFENDER_DAYS = 7.0  # the board and /progress name the worst offender of the last week


def stats_requests() -> list[dict[str, Any]]:
    """The "stats" requests whose answers `first_offender` looks through, in order."""
    return [{"days": OFFENDER_DAYS, "by": by} for by in ("indexer", "client", "group")]


def first_offender(answers: Sequence[dict[str, Any]]) -> str | None:
    """The worst offender of the first grouping where one stands out."""
    return next((line for line in map(worst_offender, answers) if line), None)
