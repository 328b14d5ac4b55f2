"""The `stats` answer as a terminal table, Discord embeds, a PNG chart and one worst-offender line."""
import struct

import pytest
from rich.console import Console

from common.units import human_duration, human_size
from services.bot.chart import PNG_SIGNATURE
from services.bot.stats_view import (CHART_KEYS, EMPTY, STATS_GROUPINGS, render_stats_png, stats_embeds,
                                     stats_grouping_choices, stats_table, worst_offender)
from tests.test_bot_fakes import measure, text_of

SINCE = "2024-05-01T12:00:00+00:00"
MB = 1024 ** 2


def row(key, downloads, *, stuck=0, removed=0, completed=None, inactive=0, slow=0, recurring=0,
        hours=None, speed=None):
    return {"key": key, "downloads": downloads,
            "completed": downloads - removed if completed is None else completed, "removed": removed,
            "stuck": stuck, "inactive": inactive, "slow": slow, "recurring": recurring,
            "median_hours_to_complete": hours, "median_speed_bps": speed}


def answer(*rows, by="indexer", since=SINCE):
    return {"since": since, "by": by, "rows": list(rows)}


# Overall 12 of 60 stuck or removed (20 %); TorrentLeech 6 of 12 (50 %).
SAMPLE = answer(row("TorrentLeech", 12, stuck=6, removed=4, recurring=2, hours=3.5, speed=1.5 * MB),
                row("NZBgeek", 20, stuck=4, removed=1, inactive=2, slow=1, hours=0.5, speed=20 * MB),
                row("(none)", 28, stuck=2, hours=None, speed=None))


def table_text(table, width=220):
    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def png_size(png):
    """(width, height) from the PNG's IHDR chunk."""
    assert png.startswith(PNG_SIGNATURE)
    return struct.unpack(">II", png[16:24])


def many_rows(count, key_width=None):
    return answer(*(row(("k" * key_width + str(index)) if key_width else f"indexer-{index:05d}",
                        10 + index % 50, stuck=index % 7, removed=index % 3, hours=1 + index % 9,
                        speed=MB * (1 + index % 5))
                    for index in range(count)))


# --- the terminal table ------------------------------------------------------------------------------------

def test_the_groupings_are_the_four_of_the_spec():
    assert STATS_GROUPINGS == ("indexer", "client", "instance", "group")


def test_the_table_has_one_row_per_key_in_the_answers_order_with_every_figure():
    text = table_text(stats_table(SAMPLE))
    lines = [line for line in text.splitlines() if line.startswith("│")]
    assert [line.split("│")[1].strip() for line in lines] == ["TorrentLeech", "NZBgeek", "(none)"]
    cells = [cell.strip() for cell in lines[0].split("│")[1:-1]]
    assert cells == ["TorrentLeech", "12", "8", "4", "6", "0", "0", "2", "50 %", human_duration(3.5 * 60),
                     human_size(1.5 * MB) + "/s"]
    nzbgeek = [cell.strip() for cell in lines[1].split("│")[1:-1]]
    assert nzbgeek[1:9] == ["20", "19", "1", "4", "2", "1", "0", "20 %"]
    assert [cell.strip() for cell in lines[2].split("│")[1:-1]][-2:] == ["-", "-"]  # no median: a dash
    for header in ("downloads", "completed", "removed", "stuck", "inactive", "slow", "recurring",
                   "stuck or removed", "median time to complete", "median speed"):
        assert header in text


def test_the_table_title_names_the_period_and_the_grouping_and_the_caption_the_worst_offender():
    text = table_text(stats_table(dict(SAMPLE, by="client")))
    assert "Downloads by download client since 2024-05-01 12:00 UTC" in text
    assert "60 download(s) left the queue, 12 stuck or removed (20 %)" in text
    assert "download client TorrentLeech: 6 of 12 downloads stuck or removed" in text


def test_an_empty_period_says_no_download_left_the_queue():
    text = table_text(stats_table(answer(by="group")))
    assert "Downloads by release group since 2024-05-01 12:00 UTC" in text
    assert EMPTY in text


def test_a_long_key_is_clipped_not_spread_over_the_table():
    text = table_text(stats_table(answer(row("x" * 5000, 3, stuck=1))))
    assert text.count("x") < 200 and "…" in text


# --- Discord ------------------------------------------------------------------------------------------------

def test_the_embed_names_the_period_totals_worst_offender_and_keys_worst_first_with_the_chart():
    (embed,) = stats_embeds(SAMPLE, image="stats.png")
    assert embed.title == "Download statistics by indexer"
    assert "<t:1714564800:f>" in embed.description  # 2024-05-01 12:00 UTC, in every reader's own time
    assert "60 download(s) left the queue, 12 stuck or removed (20 %)" in embed.description
    assert "TorrentLeech: 6 of 12 downloads stuck or removed (50 %" in embed.description
    assert [field.name.split(" ", 1)[1] for field in embed.fields] == ["TorrentLeech", "NZBgeek", "(none)"]
    assert embed.fields[0].name.startswith("🔴")
    assert "**50 %** stuck or removed · 12 downloads" in embed.fields[0].value
    assert "4 removed · 2 recurring" in embed.fields[0].value and "stuck 6" in embed.fields[0].value
    assert human_duration(3.5 * 60) in embed.fields[0].value
    assert embed.image.url == "attachment://stats.png"
    assert measure([embed]) == []


def test_without_an_image_the_embed_has_none():
    (embed,) = stats_embeds(SAMPLE, image=None)
    assert embed.image.url is None


def test_an_empty_period_is_one_embed_saying_so():
    (embed,) = stats_embeds(answer(), image="stats.png")
    assert EMPTY in embed.description and not embed.fields
    assert embed.image.url is None  # nothing to chart


@pytest.mark.parametrize("count", [1, 24, 25, 26, 200, 10_000])
def test_any_number_of_keys_fits_one_message_and_the_rest_is_counted(count):
    embeds = stats_embeds(many_rows(count), image="stats.png")
    assert measure(embeds) == []
    fields = embeds[0].fields
    keys = [field for field in fields if field.name != "\u200b"]
    assert [field.name.split(" ", 1)[1] for field in keys] == [f"indexer-{index:05d}" for index in range(len(keys))]
    if len(keys) < count:
        assert fields[-1].value == f"…and {count - len(keys)} more"
    else:
        assert "more" not in text_of(embeds)


def test_ten_thousand_long_markdown_keys_still_fit():
    rows = many_rows(10_000, key_width=2000)
    for item in rows["rows"]:
        item["key"] = "*_`|" * 300 + item["key"]
    embeds = stats_embeds(rows, image="stats.png")
    assert measure(embeds) == []
    assert embeds[0].fields[-1].value.startswith("…and ")
    shown = sum(field.name != "\u200b" for field in embeds[0].fields)
    assert embeds[0].fields[-1].value == f"…and {10_000 - shown} more"


# --- the chart ------------------------------------------------------------------------------------------------

def test_the_chart_is_a_png_of_a_sensible_size():
    png = render_stats_png(SAMPLE)
    width, height = png_size(png)
    assert 600 <= width <= 1200 and 200 <= height <= 1200
    assert len(png) > 5_000


def test_the_chart_shows_at_most_the_20_worst_keys_whatever_their_number_and_length():
    twenty = png_size(render_stats_png(many_rows(CHART_KEYS)))
    many = render_stats_png(many_rows(10_000, key_width=500))
    assert png_size(many) == twenty  # as tall as 20 bars, and as wide: long keys are clipped
    assert png_size(many)[1] <= 1200


def test_the_chart_of_an_empty_period_and_of_odd_keys_renders():
    assert png_size(render_stats_png(answer()))[0] > 0
    odd = answer(row("$x^2$ and $$ money", 12, stuck=6), row("line\nbreak\ttab", 12), row("", 1))
    assert render_stats_png(odd).startswith(PNG_SIGNATURE)


# --- the worst offender --------------------------------------------------------------------------------------

def test_a_key_with_twice_the_overall_rate_and_enough_downloads_is_named():
    line = worst_offender(SAMPLE)
    assert line == "indexer TorrentLeech: 6 of 12 downloads stuck or removed (50 %, 2.5 times the overall 20 %)"


def test_exactly_twice_says_twice_and_the_grouping_is_named():
    # 6 of 12 (50 %) against 10 of 40 overall (25 %)
    data = answer(row("TorrentLeech", 12, stuck=6), row("NZBgeek", 28, stuck=4), by="client")
    assert worst_offender(data) == ("download client TorrentLeech: 6 of 12 downloads stuck or removed "
                                    "(50 %, twice the overall 25 %)")


def test_a_long_key_is_clipped_in_the_line_and_the_line_shows_in_the_embed():
    data = answer(row("x" * 5000, 12, stuck=6), row("NZBgeek", 28, stuck=4))
    line = worst_offender(data)
    assert line.startswith("indexer " + "x" * 99 + "…: 6 of 12 downloads stuck or removed (50 %")
    (embed,) = stats_embeds(data, image=None)
    assert "6 of 12 downloads stuck or removed" in embed.description


def test_removed_counts_as_bad_as_well_as_stuck():
    data = answer(row("A", 10, removed=8), row("B", 90, stuck=2))
    assert worst_offender(data).startswith("indexer A: 8 of 10 downloads stuck or removed (80 %")


def test_a_key_with_fewer_than_ten_downloads_never_stands_out():
    data = answer(row("Tiny", 9, stuck=9), row("Big", 100, stuck=5))
    assert worst_offender(data) is None
    assert worst_offender(data, min_downloads=5).startswith("indexer Tiny: 9 of 9")


def test_under_twice_the_overall_rate_nothing_stands_out():
    data = answer(row("A", 20, stuck=6), row("B", 20, stuck=4))  # 30 % against 25 %
    assert worst_offender(data) is None


def test_the_worst_eligible_key_is_judged_not_just_the_first_row():
    # The first row is too small to count; the second stands out.
    data = answer(row("Tiny", 3, stuck=3), row("Bad", 10, stuck=5), row("Good", 87, stuck=2))
    assert worst_offender(data).startswith("indexer Bad: 5 of 10 downloads")


@pytest.mark.parametrize("data", [
    answer(),
    answer(row("Only", 50, stuck=25)),                      # one key is the overall rate
    answer(row("A", 20), row("B", 30)),                     # nothing stuck anywhere
    answer(row("A", 0), row("B", 0)),                       # no downloads at all
])
def test_nothing_stands_out_without_a_contrast(data):
    assert worst_offender(data) is None


# --- /stats `by` choices -----------------------------------------------------------------------------------

@pytest.mark.parametrize("typed, values", [
    ("", ["indexer", "client", "instance", "group"]),
    ("in", ["indexer", "instance"]),
    ("  IN ", ["indexer", "instance"]),
    ("download", ["client"]),
    ("release", ["group"]),
    ("nothing", []),
])
def test_grouping_choices_match_what_was_typed(typed, values):
    assert [value for _, value in stats_grouping_choices(typed)] == values
