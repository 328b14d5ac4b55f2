"""The bot's two views: the cleanup confirmation, and the status board's page buttons.

Views get what they need as plain async callables (`execute` sends the
removal to the poller, `load_pages` builds the board from the tracker), so
they hold no socket and are tested with recorded interactions.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import discord

from services.bot.embeds import (GREY, ORANGE, board_error_embed, cleanup_report_embeds, failure_embed,
                                 notice_embed, page_of)
from services.bot.limits import fit_message

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 180.0  # seconds a cleanup preview can be confirmed

Execute = Callable[[list[dict[str, Any]], str], Awaitable[list[dict[str, Any]]]]
LoadPages = Callable[[], Awaitable[list[list[discord.Embed]]]]


def requested_by(user: Any) -> str:
    return f"discord:{getattr(user, 'name', '?')} ({getattr(user, 'id', '?')})"


class CleanupConfirmView(discord.ui.View):
    """Confirm / Cancel under a cleanup preview; only the admin who asked may press them."""

    def __init__(self, owner_id: int, candidates: list[dict[str, Any]], preview: list[discord.Embed],
                 execute: Execute, *, timeout: float = CONFIRM_TIMEOUT) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.candidates = candidates
        self.preview = preview
        self.execute = execute
        self.message: Any = None   # the preview message, so the view can mark it expired
        self.outcome: str | None = None  # "confirmed", "cancelled", "expired"

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            f"Only <@{self.owner_id}> can confirm or cancel this cleanup; run /cleanup to get your own.",
            ephemeral=True)
        return False

    def _close(self, outcome: str) -> bool:
        """Mark the view done once; False when it already was (a double click)."""
        if self.outcome is not None:
            return False
        self.outcome = outcome
        for item in self.children:
            item.disabled = True
        self.stop()
        return True

    def _with_status(self, title: str, text: str, colour: discord.Colour) -> list[discord.Embed]:
        return fit_message([notice_embed(title, text, colour), *self.preview])

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger, emoji="🗑️")
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        if not self._close("confirmed"):
            await interaction.response.send_message("This cleanup was already answered.", ephemeral=True)
            return
        count = len(self.candidates)
        # Answer within Discord's 3 seconds; the poller may take up to REMOVAL_TIMEOUT_SECONDS.
        await interaction.response.edit_message(
            embeds=self._with_status(f"Removing {count} download(s)…",
                                     "The poller checks each one again before removing it.", ORANGE),
            view=self)
        try:
            results = await self.execute(self.candidates, requested_by(interaction.user))
        except Exception as exc:  # a service failure, or anything else: the user must hear of it
            if not getattr(exc, "service", None):
                log.exception("cleanup failed")
            await interaction.edit_original_response(embeds=fit_message([failure_embed(exc), *self.preview]),
                                                     view=None)
            return
        report = await asyncio.to_thread(cleanup_report_embeds, results, dry_run=False,
                                         requested_by=requested_by(interaction.user))
        await interaction.edit_original_response(embeds=report, view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        if not self._close("cancelled"):
            await interaction.response.send_message("This cleanup was already answered.", ephemeral=True)
            return
        await interaction.response.edit_message(
            embeds=self._with_status("Cleanup cancelled", "Nothing was removed.", GREY), view=None)

    async def on_timeout(self) -> None:
        if not self._close("expired"):
            return
        if self.message is None:
            return
        minutes = (self.timeout or 0) / 60
        try:
            await self.message.edit(
                embeds=self._with_status("Cleanup expired",
                                         f"Nobody confirmed within {minutes:g} min; nothing was removed. "
                                         "Run /cleanup again for a fresh preview.", GREY),
                view=self)
        except discord.HTTPException as exc:
            log.info("could not mark an expired cleanup preview: %s", exc)

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        log.exception("cleanup button failed", exc_info=error)
        await send_ephemeral(interaction, failure_embed(error))


class BoardPager(discord.ui.View):
    """Previous / Next under the status board. Persistent: the buttons keep working after a restart.

    The page shown is read from the board message's footer ("Page 2/7"), so
    the view keeps no state that a restart could lose.
    """

    PREVIOUS_ID = "discarr:board:prev"
    NEXT_ID = "discarr:board:next"

    def __init__(self, load_pages: LoadPages, page: int = 0, pages: int = 1) -> None:
        super().__init__(timeout=None)
        self.load_pages = load_pages
        self.previous.disabled = page <= 0 and pages > 1
        self.next.disabled = page >= pages - 1 and pages > 1

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary,
                       custom_id="discarr:board:prev")
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self.turn(interaction, -1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary,
                       custom_id="discarr:board:next")
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self.turn(interaction, +1)

    async def turn(self, interaction: discord.Interaction, step: int) -> None:
        await interaction.response.defer()  # the tracker may take longer than Discord's 3 seconds
        current, _ = page_of(getattr(interaction.message, "embeds", None) or [])
        try:
            pages = await self.load_pages()
        except Exception as exc:
            if not getattr(exc, "service", None):
                log.exception("board page could not be built")
            await interaction.followup.send(embed=failure_embed(exc), ephemeral=True)
            return
        target = max(0, min(len(pages) - 1, current + step))
        await interaction.edit_original_response(embeds=pages[target], view=pager_for(self.load_pages, target,
                                                                                         len(pages)))

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        log.exception("board button failed", exc_info=error)
        await send_ephemeral(interaction, board_error_embed("the page could not be turned"))


def pager_for(load_pages: LoadPages, page: int, pages: int) -> BoardPager | None:
    """The buttons a board page carries: none when everything fits on one page."""
    return BoardPager(load_pages, page, pages) if pages > 1 else None


async def send_ephemeral(interaction: discord.Interaction, embed: discord.Embed) -> None:
    """An ephemeral message, whether or not the interaction was answered (deferred) already."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(embed=embed, ephemeral=True)
        else:
            await interaction.response.send_message(embed=embed, ephemeral=True)
    except discord.HTTPException as exc:
        log.info("could not tell the user about an error: %s", exc)
