"""Embeds from real tracker answers: the board, /progress, the cleanup preview and report, the chart.

Every payload is measured against Discord's limits, for a small queue and a
10,000-download one.
"""
import re
from datetime import datetime, timezone

import discord
import pytest

from services.bot import board
from services.bot.chart import PNG_SIGNATURE, history_file, render_history_png
from services.bot.embeds import (board_pages, cleanup_preview_embeds, cleanup_report_embeds, download_embed,
                                 failure_embed, page_of, progress_embeds, warning_embed)
from common.clock import ManualClock
from services.poller.download_clients import unreachable_figures
from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker
from tests.records import GB, client_figures, record, snapshot
from tests.test_bot_fakes import T0, measure, text_of, tracker_with

NOW = datetime(2023, 11, 14, 22, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def small():
    tracker = tracker_with(unhealthy=("lidarr",))
    return {"check": tracker.check(), "progress": tracker.progress({"stuck_threshold_minutes": 120.0,
                                                                    "min_progress_change": 1.0,
                                                                    "min_size_change": 104857600.0}),
            "analysis": tracker.analyze(False), "tracker": tracker}


@pytest.fixture(scope="module")
def huge():
    """10,000 downloads on two instances: every kind, long titles full of markdown characters."""
    tracker = tracker_with(moving=2000, stuck=1500, soon=500, failed=500, blocked=250, paused=250)
    check = tracker.check()
    assert check["tracked"] == 10_000
    analysis = tracker.analyze(True)
    outcomes = ("removed", "skipped", "failed")
    results = [dict(item, result=outcomes[n % 3], detail=f"detail {n} " + "why " * 80)
               for n, item in enumerate(analysis["candidates"])]
    return {"check": check, "progress": tracker.progress({"stuck_threshold_minutes": 120.0}),
            "analysis": analysis, "results": results}


def test_the_board_shows_bars_sizes_relative_etas_and_stuck_marks(small):
    pages = board_pages(small["check"], now=NOW)
    assert len(pages) == 1
    text = text_of(pages[0])
    assert board.progress_bar(10.0) in text  # the shared bar
    assert re.search(r"ETA <t:\d+:R>", text)  # moving downloads: a Discord relative timestamp
    assert "STUCK, no progress for 2 h 1 min" in text
    assert "soon stuck: no progress for" in text
    assert "FAILED" in text and "import blocked" in text
    assert "paused" not in text.lower().split("queue records")[-1]  # paused downloads are not the board's
    assert "lidarr: UNHEALTHY (unreachable): connection refused" in text
    assert "Show.moving.1" in text and r"WEB\\_DL\\*x264\\*" in text  # markdown in titles is escaped
    assert pages[0][0].footer.text.startswith("Page 1/1")
    assert measure(pages[0]) == []


def test_the_board_groups_rows_by_instance_worst_first(small):
    embeds = board_pages(small["check"], now=NOW)[0]
    assert [embed.title for embed in embeds[1:]] == ["radarr", "sonarr"]
    first_lines = embeds[1].description.split("\n")
    assert first_lines[0].startswith("🔴") and first_lines[-1].startswith("🟢")


def test_an_empty_queue_says_so():
    pages = board_pages({"instances": [], "outages": [], "downloads": [], "tracked": 0}, now=NOW)
    assert len(pages) == 1 and "Nothing is downloading" in pages[0][0].description


def test_a_huge_board_is_paginated_and_every_page_fits(huge):
    pages = board_pages(huge["check"], now=NOW)
    assert len(pages) > 10
    for number, page in enumerate(pages, start=1):
        assert measure(page) == [], number
        assert page_of(page) == (number - 1, len(pages))
    shown = sum(embed.description.count("\n") + 1 for page in pages for embed in page[1:])
    assert shown == len(board.board_rows(huge["check"]))  # every row is on some page, none is dropped


def test_progress_shows_statistics_thresholds_and_lists(small):
    embeds = progress_embeds(small["progress"], now=NOW)
    assert measure(embeds) == []
    stats = {field.name: field.value for field in embeds[0].fields}
    assert stats["Tracked"] == "18" and stats["Stuck"] == "4" and stats["Soon stuck"] == "2"
    assert "stuck after **2 h**" in stats["Thresholds"]
    titles = [embed.title for embed in embeds[1:]]
    assert titles[0] == "Stuck (4)" and any(title.startswith("Soon stuck") for title in titles)


def test_a_huge_progress_fits_and_says_how_many_were_left_out(huge):
    embeds = progress_embeds(huge["progress"], now=NOW)
    assert measure(embeds) == []
    stuck = next(embed for embed in embeds if embed.title.startswith("Stuck"))
    shown = stuck.description.count("\n")
    assert stuck.description.endswith(f"…and {3000 - shown} more")


def test_the_cleanup_preview_says_what_why_and_the_evidence(small):
    embeds = cleanup_preview_embeds(small["analysis"], include_import_blocked=False, dry_run=False, expires_in=180)
    assert measure(embeds) == []
    text = text_of(embeds)
    assert "6 download(s) would be removed" in text
    assert "evidence (queue):" in text and "no progress for 2 h 1 min" in text and "failed" in text
    assert "Kept: import blocked" in text
    assert "blocklisted" in embeds[0].footer.text and "3 min" in embeds[0].footer.text


def test_nothing_to_clean_up():
    embeds = cleanup_preview_embeds({"candidates": [], "attention": []}, include_import_blocked=False,
                                    dry_run=False)
    assert embeds[0].title == "Nothing to clean up"


def test_huge_cleanup_preview_and_report_fit(huge):
    preview = cleanup_preview_embeds(huge["analysis"], include_import_blocked=True, dry_run=False, expires_in=180)
    assert measure(preview) == [] and "more" in preview[0].description
    report = cleanup_report_embeds(huge["results"], dry_run=False, requested_by="discord:alice (1)")
    assert measure(report) == []
    assert report[0].title == "Cleanup report: 1500 removed, 1500 skipped, 1500 failed"
    dry = cleanup_report_embeds([dict(r, result="skipped", detail="dry run: would remove 1 queue record(s)")
                                 for r in huge["results"]], dry_run=True)
    assert measure(dry) == [] and dry[0].title.startswith("Cleanup dry run: 4500 would be removed")


def test_the_report_gives_each_result_with_its_reason(small):
    candidates = small["analysis"]["candidates"]
    results = [dict(candidates[0], result="removed", detail="removed and blocklisted"),
               dict(candidates[1], result="skipped", detail="progressed since analysis"),
               dict(candidates[2], result="failed", detail="sonarr answered 500")]
    embeds = cleanup_report_embeds(results, dry_run=False)
    text = text_of(embeds)
    assert "1 removed, 1 skipped, 1 failed" in text
    assert "progressed since analysis" in text and "sonarr answered 500" in text
    assert embeds[0].colour == discord.Colour.red()


def test_a_warning_names_the_stuck_downloads_and_unhealthy_instances(small):
    stuck = small["progress"]["stuck"]
    embed = warning_embed(stuck, [{"name": "lidarr", "state": "unreachable", "error": "connection refused"}])
    text = text_of([embed])
    assert "1 instance(s) unhealthy, 4 download(s) stuck" in text and "connection refused" in text
    assert measure([embed]) == []


def test_a_failure_names_the_service():
    class Failure(Exception):
        service, unavailable = "tracker", True
    embed = failure_embed(Failure("tracker did not answer at tcp://127.0.0.1:1 within 0.5s"))
    assert embed.title == "The tracker is not answering" and "0.5s" in embed.description


def test_the_chart_is_a_png_of_the_history(small):
    tracker = small["tracker"]
    history = tracker.history("radarr", "moving-radarr-1")
    png = render_history_png(history)
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5000
    assert render_history_png({"title": "empty", "points": []}).startswith(PNG_SIGNATURE)
    file = history_file(png)
    assert isinstance(file, discord.File) and file.filename == "history.png"
    embed = download_embed(history)
    assert embed.image.url == "attachment://history.png" and measure([embed]) == []


def test_download_client_evidence_health_and_kept_torrents_are_shown():
    """A stuck private torrent, a recurring one, one whose client went away, and that client's health."""
    clock = ManualClock(T0)
    tracker = Tracker(DetectionConfig(threshold_s=600), clock)
    qbit_down = [{"name": "qbittorrent", "kind": "qbittorrent", "state": "unreachable",
                  "error": "cannot connect to qbittorrent at http://127.0.0.1:8080"}]
    for _ in range(12):
        tracker.ingest(snapshot("sonarr", [
            record(1, "PRIVATE", title="Private.Show.S01E01", client=client_figures(GB, private=True)),
            record(2, "AGAIN", title="Came.Back.S01E02", removed_before=1),
            record(3, "AWAY", title="Client.Away.S01E03", client=client_figures(GB))]))
        clock.advance(60)
    tracker.ingest(snapshot("sonarr", [
        record(1, "PRIVATE", title="Private.Show.S01E01", client=client_figures(GB, private=True)),
        record(2, "AGAIN", title="Came.Back.S01E02", removed_before=1),
        record(3, "AWAY", title="Client.Away.S01E03", client=unreachable_figures(["qbittorrent"]))],
        clients=qbit_down))

    board_text = text_of(board_pages(tracker.check())[0])
    assert "qbittorrent: UNHEALTHY (unreachable)" in board_text
    assert "stuck, but download client qbittorrent cannot be reached" in board_text
    assert "(recurring: it came back after a removal)" in board_text
    embeds = cleanup_preview_embeds(tracker.analyze(False), include_import_blocked=False, dry_run=False)
    text = text_of(embeds)
    assert "2 download(s) would be removed" in text
    assert "🔒 private torrent" in text and "evidence (qbittorrent)" in text
    assert "recurring (removed 1x before)" in text
    assert "Private torrents are removed from the *arr only and keep seeding" in embeds[0].footer.text
    assert "Recurring ones are always blocklisted" in embeds[0].footer.text
    assert "Kept: download client unreachable, no fresh evidence (1)" in text and "Client.Away" in text
    unhealthy = board.unhealthy_services(tracker.check())
    warning = text_of([warning_embed([], unhealthy)])
    assert "1 download client(s) unhealthy" in warning and "instance(s)" not in warning


# --- ETAs as the *arrs send them ------------------------------------------------------------------------------

ETA = datetime(2022, 1, 19, 18, 34, 57, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("2022-01-19T18:34:57Z", ETA),
    ("2022-01-19T18:34:57.7144951Z", ETA.replace(microsecond=714495)),  # .NET writes 7 digits
    ("2022-01-19T18:34:57.7Z", ETA.replace(microsecond=700000)),
    ("2022-01-19T18:34:57.71449Z", ETA.replace(microsecond=714490)),
    ("2022-01-19T18:34:57.714495Z", ETA.replace(microsecond=714495)),
    ("2022-01-19T20:34:57.7144951+02:00", ETA.replace(microsecond=714495)),
    ("2022-01-19T13:34:57-0500", ETA),
    ("2022-01-19T18:34:57+00:00", ETA),
    ("2022-01-19T18:34:57", ETA),  # no offset: the *arrs keep their times in UTC
])
def test_parse_eta_reads_every_form_the_arrs_send(text, expected):
    parsed = board.parse_eta(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None  # never naive: it is compared with aware times and turned into epochs


@pytest.mark.parametrize("text", [None, "", "soon", "2022-01-19T18:34:57.Z", "2022-13-19T18:34:57Z",
                                  "2022-01-19T25:34:57Z", "2022-01-19T18:34:57Z trailing", "2022-01-19T18:34:57+25:00"])
def test_parse_eta_returns_none_only_for_garbage(text):
    assert board.parse_eta(text) is None


class Python310Datetime(datetime):
    """datetime.fromisoformat as Python 3.10 has it: no "Z", fractions of exactly 3 or 6 digits."""

    @classmethod
    def fromisoformat(cls, text):
        if not re.fullmatch(r"\d{4}-\d\d-\d\d([T ]\d\d:\d\d:\d\d(\.(\d{3}|\d{6}))?([+-]\d\d:\d\d)?)?", text):
            raise ValueError(f"Invalid isoformat string: {text!r}")
        return super().fromisoformat(text)


def test_parse_eta_does_not_depend_on_the_pythons_fromisoformat(monkeypatch):
    # pyproject allows Python 3.10, whose fromisoformat refused these: the ETAs silently vanished.
    monkeypatch.setattr(board, "datetime", Python310Datetime)
    assert board.parse_eta("2022-01-19T18:34:57.7144951Z") == ETA.replace(microsecond=714495)
    assert board.parse_eta("2022-01-19T18:34:57Z") == ETA
