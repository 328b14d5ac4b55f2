"""The bot's views: the cleanup confirmation (with Keep beside each candidate), the status board's page
buttons, and Keep under a stuck-download warning.

Views get what they need as plain async callables (`execute` sends the
removal to the poller, `load_pages` builds the board from the tracker), so
they hold no socket and are tested with recorded interactions.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import discord

from services.bot.embeds import (GREEN, GREY, ORANGE, board_error_embed, cleanup_report_embeds, failure_embed,
                                 notice_embed, page_of)
from services.bot.keeps import keep_label, set_kept
from services.bot.limits import fit_message

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 180.0  # seconds a cleanup preview can be confirmed

Execute = Callable[[list[dict[str, Any]], str], Awaitable[list[dict[str, Any]]]]
Keep = Callable[[dict[str, Any], str], Awaitable[str]]  # keep this candidate, asked by whom: what happened
LoadPages = Callable[[], Awaitable[list[list[discord.Embed]]]]


def requested_by(user: Any) -> str:
    return f"discord:{getattr(user, 'name', '?')} ({getattr(user, 'id', '?')})"


def is_admin(user: Any, admin_role_id: int | None) -> bool:
    """Manage Server (or Administrator), or the DISCORD_ADMIN_ROLE_ID role."""
    permissions = getattr(user, "guild_permissions", None)
    if permissions is not None and (permissions.manage_guild or permissions.administrator):
        return True
    if admin_role_id is not None:
        return any(getattr(role, "id", None) == admin_role_id for role in getattr(user, "roles", ()) or ())
    return False


KEEP_ID = "discarr:keep:{instance}:{download_id}"
KEEP_ID_PATTERN = r"discarr:keep:(?P<instance>[a-z0-9_-]+):(?P<download_id>.+)"


class KeepButton(discord.ui.DynamicItem[discord.ui.Button], template=KEEP_ID_PATTERN):
    """Keep, under a stuck-download warning (admins only, SPEC 4.2). Its download is in its custom id, so
    the button works after any restart; the bot holds what it needs (`settings`, `services`)."""

    def __init__(self, instance: str, download_id: str, label: str = "Keep") -> None:
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.secondary, emoji="🛡️",
                                           custom_id=KEEP_ID.format(instance=instance, download_id=download_id)))
        self.instance, self.download_id = instance, download_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button,
                             match: Any) -> "KeepButton":
        return cls(match["instance"], match["download_id"], item.label or "Keep")

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        if not is_admin(interaction.user, bot.settings.discord_admin_role_id):
            await interaction.response.send_message("Only admins can keep a download.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        await report_keep(interaction, set_kept(bot.services, self.instance, self.download_id,
                                                requested_by(interaction.user), kept=True))


async def report_keep(interaction: discord.Interaction, keeping: Awaitable[str]) -> None:
    """Await a keep and tell the one who pressed Keep what it did (or why it failed), in a follow-up."""
    try:
        text = await keeping
    except Exception as exc:
        if not getattr(exc, "service", None):
            log.exception("keep failed")
        await interaction.followup.send(embed=failure_embed(exc), ephemeral=True)
        return
    await interaction.followup.send(embed=notice_embed("Kept", text, GREEN), ephemeral=True)


def keep_buttons(items: list[dict[str, Any]]) -> discord.ui.View | None:
    """A Keep button for each stuck download a warning names (up to Discord's 25 a message)."""
    view = discord.ui.View(timeout=None)
    for item in items:
        custom_id = KEEP_ID.format(instance=item["instance"], download_id=item["download_id"])
        if len(custom_id) <= 100 and len(view.children) < 25:  # longer ids: /keep still keeps them
            view.add_item(KeepButton(item["instance"], item["download_id"], keep_label(item)))
    return view if view.children else None


class CleanupConfirmView(discord.ui.View):
    """Confirm / Cancel under a cleanup preview; only the admin who asked may press them."""

    def __init__(self, owner_id: int, candidates: list[dict[str, Any]], preview: list[discord.Embed],
                 execute: Execute, *, timeout: float = CONFIRM_TIMEOUT, keep: Keep | None = None) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.candidates = list(candidates)
        self.preview = preview
        self.execute = execute
        self.message: Any = None   # the preview message, so the view can mark it expired
        self.outcome: str | None = None  # "confirmed", "cancelled", "expired"
        if keep is not None:  # a Keep button beside each candidate (rows 1-4: up to 20)
            for index, item in enumerate(candidates[:20]):
                self.add_item(PreviewKeepButton(item, keep, row=1 + index // 5))

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


class PreviewKeepButton(discord.ui.Button):
    """Keep, beside a candidate of a cleanup preview: it is kept, and not removed when the preview is
    confirmed (the poller would skip it anyway: the removal request carries the keep)."""

    def __init__(self, item: dict[str, Any], keep: Keep, row: int) -> None:
        super().__init__(label=keep_label(item), style=discord.ButtonStyle.secondary, emoji="🛡️", row=row)
        self.item, self.keep = item, keep

    async def callback(self, interaction: discord.Interaction) -> None:
        view: CleanupConfirmView = self.view
        self.disabled = True
        if self.item in view.candidates:
            view.candidates.remove(self.item)
        await interaction.response.edit_message(view=view)  # within Discord's 3 seconds; the keep may take longer
        await report_keep(interaction, self.keep(self.item, requested_by(interaction.user)))


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
