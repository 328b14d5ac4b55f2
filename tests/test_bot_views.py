"""The cleanup confirmation and the board's page buttons, pressed through discord.py's own dispatch."""
import time

import pytest

from services.bot.commands import cleanup_message, fetch_board_pages
from services.bot.requests import Services
from services.bot.embeds import page_of
from services.bot.views import BoardPager, CleanupConfirmView
from tests.test_bot_fakes import (FakeInteraction, FakeMessage, bot_settings, measure, member, press,
                                  removal_handler, rep_server, run, text_of, tracker_handlers, tracker_with)

OWNER = 7


@pytest.fixture(scope="module")
def tracker():
    return tracker_with()


@pytest.fixture(scope="module")
def big_tracker():
    return tracker_with(moving=150, stuck=20, instances=("radarr",))


async def _preview(settings):
    """The real /cleanup preview and view, with the view's message recorded as /cleanup does."""
    services = Services(settings)
    _, preview, view = await cleanup_message(services, owner_id=OWNER, include_import_blocked=False, dry_run=False)
    view.message = FakeMessage(preview, view)
    return services, view


def test_only_the_caller_can_confirm(tmp_path, tracker):
    received = []
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint, \
            rep_server({"remove": removal_handler(received=received)}, "poller") as poller_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            services, view = await _preview(settings)
            intruder = FakeInteraction(member(8, manage_guild=True, name="mallory"))
            await press(view, view.confirm, intruder)
            view.stop()
            await services.close()
            return view, intruder
        view, intruder = run(scenario())
    assert [call for call, _ in intruder.calls] == ["send_message"]
    refusal = intruder.calls[0][1]
    assert refusal["ephemeral"] and f"Only <@{OWNER}>" in refusal["content"]
    assert view.outcome is None and received == []


def test_cancel_removes_nothing(tmp_path, tracker):
    received = []
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint, \
            rep_server({"remove": removal_handler(received=received)}, "poller") as poller_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            services, view = await _preview(settings)
            owner = FakeInteraction(member(OWNER))
            await press(view, view.cancel, owner)
            late = FakeInteraction(member(OWNER))
            await press(view, view.confirm, late)  # a stale second click
            await services.close()
            return view, owner, late
        view, owner, late = run(scenario())
    edit = owner.calls.named("edit_message")[0]
    assert edit["view"] is None and edit["embeds"][0].title == "Cleanup cancelled"
    assert "Nothing was removed" in text_of(edit["embeds"]) and measure(edit["embeds"]) == []
    assert view.outcome == "cancelled" and view.is_finished()
    assert "already answered" in late.calls[0][1]["content"] and received == []


def test_confirm_sends_the_removal_and_turns_the_message_into_the_report(tmp_path, tracker):
    received = []

    def outcome(item):
        return ("skipped", "progressed since analysis") if item["category"] == "inactive" else \
            ("removed", "removed and blocklisted")
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint, \
            rep_server({"remove": removal_handler(outcome, received)}, "poller") as poller_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            services, view = await _preview(settings)
            owner = FakeInteraction(member(OWNER, name="alice"), message=view.message)
            await press(view, view.confirm, owner)
            await services.close()
            return view, owner
        view, owner = run(scenario())
    first = owner.calls[0]
    assert first[0] == "edit_message"  # answered at once, buttons disabled while the poller works
    assert first[1]["embeds"][0].title.startswith("Removing 6 download(s)")
    assert all(item.disabled for item in first[1]["view"].children)
    report = owner.calls.named("edit_original_response")[-1]
    assert report["view"] is None
    assert report["embeds"][0].title == "Cleanup report: 4 removed, 2 skipped, 0 failed"
    assert "progressed since analysis" in text_of(report["embeds"]) and measure(report["embeds"]) == []
    (request,) = received
    assert request["dry_run"] is False and request["requested_by"] == f"discord:alice ({OWNER})"
    assert {item["download_id"] for item in request["downloads"]} == {item["download_id"] for item in view.candidates}
    assert request["expires_at"] > time.time()
    assert view.outcome == "confirmed"


def test_confirm_with_the_poller_down_says_so(tmp_path, tracker):
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, removal_timeout_seconds=0.5)

        async def scenario():
            services, view = await _preview(settings)
            owner = FakeInteraction(member(OWNER))
            started = time.monotonic()
            await press(view, view.confirm, owner)
            await services.close()
            return owner, time.monotonic() - started
        owner, elapsed = run(scenario())
    report = owner.calls.named("edit_original_response")[-1]
    assert report["view"] is None
    head = report["embeds"][0].title
    assert head.startswith("Cleanup report: 0 removed, 0 skipped,") and head.endswith("failed")
    assert "did not answer; nothing of it was removed" in text_of(report["embeds"])  # each download says why
    assert elapsed < 2.0


def test_an_unanswered_preview_expires_and_says_so(tmp_path, tracker):
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint)

        async def scenario():
            services, view = await _preview(settings)
            await view.on_timeout()
            late = FakeInteraction(member(OWNER))
            await press(view, view.confirm, late)
            await services.close()
            return view, late
        view, late = run(scenario())
    (edit,) = view.message.edits
    assert edit["embeds"][0].title == "Cleanup expired" and "nothing was removed" in edit["embeds"][0].description
    assert all(item.disabled for item in edit["view"].children)
    assert view.outcome == "expired" and "already answered" in late.calls[0][1]["content"]


def test_the_confirmation_times_out_after_a_few_minutes():
    async def scenario():
        return CleanupConfirmView(OWNER, [], [], None)
    view = run(scenario())
    assert 60 <= view.timeout <= 600


# --- the board's pages ---------------------------------------------------------------------------------------

def test_the_board_pager_is_persistent_with_stable_ids():
    async def scenario():
        return BoardPager(None)
    view = run(scenario())
    assert view.timeout is None and view.is_persistent()
    assert [item.custom_id for item in view.children] == ["discarr:board:prev", "discarr:board:next"]


def test_next_and_previous_turn_pages_read_from_the_footer_after_a_restart(tmp_path, big_tracker):
    with rep_server(tracker_handlers(big_tracker)) as tracker_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint)

        async def scenario():
            services = Services(settings)
            pages = await fetch_board_pages(services)
            # A freshly started bot: a new pager, and a message that only carries its footer.
            pager = BoardPager(lambda: fetch_board_pages(services))
            message = FakeMessage(pages[0])
            forward = FakeInteraction(member(manage_guild=False), message=message)
            await press(pager, pager.next, forward)
            back = FakeInteraction(member(manage_guild=False), message=message)
            await press(pager, pager.previous, back)
            before = FakeInteraction(member(manage_guild=False), message=message)
            await press(pager, pager.previous, before)
            await services.close()
            return pages, forward, back, before
        pages, forward, back, before = run(scenario())
    assert len(pages) >= 3
    assert forward.calls[0] == ("defer", {})
    turned = forward.calls.named("edit_original_response")[0]
    assert page_of(turned["embeds"]) == (1, len(pages)) and measure(turned["embeds"]) == []
    assert not turned["view"].previous.disabled and not turned["view"].next.disabled
    assert page_of(back.calls.named("edit_original_response")[0]["embeds"]) == (0, len(pages))
    first = before.calls.named("edit_original_response")[0]
    assert page_of(first["embeds"]) == (0, len(pages)) and first["view"].previous.disabled


def test_a_page_turn_with_the_tracker_down_is_an_ephemeral_error(tmp_path):
    settings = bot_settings(tmp_path, timeout=0.5)

    async def scenario():
        services = Services(settings)
        pager = BoardPager(lambda: fetch_board_pages(services))
        interaction = FakeInteraction(message=FakeMessage())
        await press(pager, pager.next, interaction)
        await services.close()
        return interaction
    interaction = run(scenario())
    error = interaction.calls.named("followup.send")[0]
    assert error["ephemeral"] and error["embed"].title == "The tracker is not answering"
