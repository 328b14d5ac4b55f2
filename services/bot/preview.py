"""`discarr preview`: the payloads the bot would send now, from the live tracker, without Discord.

Built by the same functions the bot uses, so a server without Discord (or a
test) sees exactly what Discord would get.
"""
from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timezone
from typing import Any

from common.settings import Settings
from services.bot.commands import cleanup_message, fetch_board_pages, fetch_progress
from services.bot.requests import ServiceFailure, Services
from services.bot.views import pager_for

KINDS = ("board", "progress", "cleanup")


async def preview_payloads(kind: str, settings: Settings, *, services: Services | None = None) -> dict[str, Any]:
    """{"kind", "embeds": [embed dicts], "components": [component dicts]}, as the bot would send them now.

    "board" is the first page of the status board; "cleanup" the preview an
    admin would see (its Confirm/Cancel buttons included, when there is
    something to remove). A service that does not answer raises
    ServiceUnavailable, one that answers an error ServiceError.
    """
    if kind not in KINDS:
        raise ValueError(f"preview kind must be one of {', '.join(KINDS)}")
    own = services is None
    services = services or Services(settings)
    try:
        view = None
        if kind == "board":
            pages = await fetch_board_pages(services)
            embeds = pages[0]
            view = pager_for(lambda: fetch_board_pages(services), 0, len(pages))
        elif kind == "progress":
            embeds = await fetch_progress(services)
        else:
            _, embeds, view = await cleanup_message(services, owner_id=0, include_import_blocked=False,
                                                    dry_run=False)
        payload = {"kind": kind, "embeds": [embed.to_dict() for embed in embeds],
                   "components": view.to_components() if view is not None else []}
        if view is not None:
            view.stop()
        return payload
    except ServiceFailure as failure:
        raise failure.error from None
    finally:
        if own:
            await services.close()


def preview(kind: str, settings: Settings) -> dict[str, Any]:
    """The blocking version, for the CLI."""
    return asyncio.run(preview_payloads(kind, settings))


_TIMESTAMP = re.compile(r"<t:(\d+):R>")


def render_text(payload: dict[str, Any]) -> str:
    """A payload as plain text for a terminal (Discord's markdown left as it is)."""
    parts = []
    for embed in payload.get("embeds", ()):
        if embed.get("title"):
            parts.append(f"== {embed['title']} ==")
        if embed.get("description"):
            parts.append(embed["description"])
        for field in embed.get("fields", ()):
            parts.append(f"-- {field['name']}: {field['value']}")
        if (embed.get("footer") or {}).get("text"):
            parts.append(f"({embed['footer']['text']})")
        parts.append("")
    buttons = [component.get("label") or component.get("custom_id")
               for row in payload.get("components", ()) for component in row.get("components", ())]
    if buttons:
        parts.append("buttons: " + " | ".join(str(label) for label in buttons))
    text = "\n".join(parts).rstrip() + "\n"
    return _TIMESTAMP.sub(lambda m: datetime.fromtimestamp(int(m.group(1)), timezone.utc)
                          .strftime("%Y-%m-%d %H:%M UTC"), text)


def render_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False)
