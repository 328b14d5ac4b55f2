"""Keep from Discord (SPEC 4.2): /keep, /unkeep and the Keep buttons, without Discord's objects.

The tracker keeps the keep (it survives every restart, and removal requests carry it to the poller,
so a keep made after a preview still wins); then the download's poller tags it `discarr-keep` in its
client where discarr reads it, and writes who kept it in the audit log.
"""
from __future__ import annotations

import logging
from typing import Any

from services.bot.requests import ServiceFailure, Services

log = logging.getLogger(__name__)


def keep_request(instance: str, download_id: str, who: str, *, kept: bool, for_good: bool = False
                 ) -> tuple[str, dict[str, Any]]:
    """The "keep" or "unkeep" request for the tracker (and then the poller): (type, body)."""
    body = {"instance": instance, "download_id": download_id, "by": who}
    return ("keep", dict(body, for_good=for_good)) if kept else ("unkeep", body)


def kept_sentence(answer: dict[str, Any], tagged: dict[str, Any] | None, *, kept: bool,
                  for_good: bool = False) -> str:
    """What a keep did, for the user: the tracker's `answer`, the poller's (None: it did not answer)."""
    title = (answer.get("item") or {}).get("title") or answer["download_id"]
    done = (f"Kept **{title}** ({answer['instance']})" + (" for good" if for_good else " until it leaves the queue")
            if kept else f"**{title}** ({answer['instance']}) is no longer kept: it may be removed again")
    if tagged is None:  # the keep stands in the tracker: every removal request carries it
        return done + "; its poller did not answer, so it is not tagged in its download client."
    if tagged.get("tag_failure"):
        return done + f"; tagging it in its download client failed ({tagged['tag_failure']})."
    if tagged.get("tagged_in"):
        return done + (f"; tagged `discarr-keep` in {tagged['tagged_in']}." if kept
                       else f"; its `discarr-keep` tag is gone from {tagged['tagged_in']}.")
    return done + "."


async def set_kept(services: Services, instance: str, download_id: str, who: str, *, kept: bool,
                   for_good: bool = False) -> str:
    """Keep a download (or keep it no more); what happened, in one sentence for the user."""
    message_type, body = keep_request(instance, download_id, who, kept=kept, for_good=for_good)
    answer = await services.ask("tracker", message_type, body)
    try:
        tagged = await services.ask("poller", message_type, body, endpoint=answer.get("poller"))
    except ServiceFailure as exc:
        log.warning("the poller did not %s %s/%s in its client: %s", message_type, instance, download_id, exc)
        tagged = None
    return kept_sentence(answer, tagged, kept=kept, for_good=for_good)


def keep_label(item: dict[str, Any]) -> str:
    """A Keep button's label: Discord allows 80 characters."""
    title = item.get("title") or item["download_id"]
    return "Keep " + (title if len(title) <= 75 else title[:74] + "…")
