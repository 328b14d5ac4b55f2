"""The slash commands: /check, /verbose, /progress, /stats and /cleanup, in one Cog.

The decorated methods only name the command and hand over to a plain method
(`run_check`, ...). Every tracker and poller request goes through
`Services` (zmq.asyncio, with a timeout), and every failure becomes an
ephemeral error naming the service, never "The application did not respond":
commands that ask a service defer first.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Protocol

import discord
from discord import app_commands
from discord.ext import commands

from common.protocol import cleanup_analysis
from common.settings import Settings
from services.bot.board import matching_downloads, several_downloads
from services.bot.chart import CHART_NAME, history_file, render_history_png
from services.bot.embeds import (GREEN, board_pages, cleanup_preview_embeds, cleanup_report_embeds,
                                 download_embed, error_embed, failure_embed, notice_embed, progress_embeds)
from services.bot.limits import clip
from services.bot.requests import ServiceFailure, Services, request_removal
from services.bot.stats_view import (STATS_CHART_NAME, STATS_GROUPINGS, first_offender, render_stats_png,
                                     stats_embeds, stats_grouping_choices, stats_requests)
from services.bot.keeps import set_kept
from services.bot.views import CONFIRM_TIMEOUT, CleanupConfirmView, is_admin, requested_by, send_ephemeral

log = logging.getLogger(__name__)

AUTOCOMPLETE_TIMEOUT = 0.8   # Discord drops an autocomplete answer after 3 seconds, network included
AUTOCOMPLETE_CACHE_SECONDS = 10.0
CHECK_COOLDOWN_SECONDS = 30.0  # one /check per channel: Discord rate-limits edits of the board message


# --- what the commands (and `discarr preview`) build --------------------------------------------

async def fetch_board_pages(services: Services) -> list[list[discord.Embed]]:
    check = await services.check()
    # A 10,000-download queue is a few hundred pages: lay them out off the event loop.
    return await asyncio.to_thread(board_pages, check)


async def fetch_progress(services: Services) -> list[discord.Embed]:
    progress = await services.ask("tracker", "progress")
    try:  # one line about an indexer, client or release group that keeps giving dead downloads
        progress["worst_offender"] = first_offender(
            [await services.ask("tracker", "stats", body) for body in stats_requests()])
    except ServiceFailure as exc:
        log.info("no worst offender for /progress: %s", exc)
    return await asyncio.to_thread(progress_embeds, progress)


async def cleanup_message(services: Services, *, owner_id: int, include_import_blocked: bool, dry_run: bool,
                          include_slow: bool = False
                          ) -> tuple[dict[str, Any], list[discord.Embed], CleanupConfirmView | None]:
    """The tracker's removal candidates, their preview, and (not for a dry run) the Confirm/Cancel view."""
    analysis = cleanup_analysis(await services.ask("tracker", "analyze", {
        "include_import_blocked": include_import_blocked, "include_slow": include_slow}),
        services.settings.cleanup_usenet_failed)
    preview = await asyncio.to_thread(
        cleanup_preview_embeds, analysis, include_import_blocked=include_import_blocked, dry_run=dry_run,
        include_slow=include_slow, blocklist=services.settings.cleanup_blocklist,
        keep_private=services.settings.cleanup_private == "keep", expires_in=CONFIRM_TIMEOUT)
    if dry_run or not analysis.get("candidates"):
        return analysis, preview, None

    async def execute(candidates: list[dict[str, Any]], who: str) -> list[dict[str, Any]]:
        return await request_removal(services, analysis, candidates, who, dry_run=False,
                                     include_import_blocked=include_import_blocked, include_slow=include_slow)

    async def keep(item: dict[str, Any], who: str) -> str:
        return await set_kept(services, item["instance"], item["download_id"], who, kept=True)

    keepable = [item for item in analysis["candidates"] if not item.get("client_history")]
    view = CleanupConfirmView(owner_id, analysis["candidates"], preview, execute, timeout=CONFIRM_TIMEOUT,
                              keep=keep if keepable == analysis["candidates"] else None)
    return analysis, preview, view


# --- who may do what ---------------------------------------------------------------------------

def admin_default_permissions(admin_role_id: int | None) -> discord.Permissions | None:
    """Who Discord lists the admin commands for (default_member_permissions).

    It can name permissions only, not a role: Manage Server there would hide
    the commands from the members of DISCORD_ADMIN_ROLE_ID. With that role the
    commands are listed for everyone and `is_admin` refuses the others.
    """
    return None if admin_role_id is not None else discord.Permissions(manage_guild=True)


class BoardRefresher(Protocol):
    async def refresh(self) -> Any: ...


def _choice_name(item: dict[str, Any]) -> str:
    state = ("STUCK" if item.get("category") == "stuck" else "failed" if item.get("category") == "inactive"
             else "soon stuck" if item.get("soon_stuck") else f"{float(item.get('progress', 0)):.0f}%")
    suffix = f" ({item['instance']}, {state})"
    return clip(item.get("title") or item["download_id"], 100 - len(suffix)) + suffix


class DiscarrCog(commands.Cog):
    """discarr's slash commands."""

    def __init__(self, settings: Settings, services: Services | None, board: BoardRefresher | None = None) -> None:
        self.settings = settings
        self.services = services
        self.board = board
        self._downloads_cache: tuple[float, list[dict[str, Any]]] | None = None
        self._refresh: asyncio.Task[None] | None = None  # the choices' refresh in the background
        self.clock = time.monotonic
        self._checked: dict[int, float] = {}  # channel id -> when /check last refreshed the board there
        # Set per cog (each holds its own copies of the commands), because it depends on the settings.
        for command in (self.verbose_command, self.progress_command, self.stats_command, self.cleanup_command,
                        self.keep_command, self.unkeep_command):
            command.default_permissions = admin_default_permissions(settings.discord_admin_role_id)

    # --- the commands: names and options only (who Discord lists them for: __init__) -------

    @app_commands.command(name="check", description="Refresh the status board now")
    @app_commands.guild_only()
    async def check_command(self, interaction: discord.Interaction) -> None:
        await self.run_check(interaction)

    @app_commands.command(name="verbose", description="Toggle debug logging of the bot, tracker and poller")
    @app_commands.guild_only()
    async def verbose_command(self, interaction: discord.Interaction) -> None:
        await self.run_verbose(interaction)

    @app_commands.command(name="progress", description="Stuck and soon-stuck downloads and thresholds, "
                                                       "or one download's history as a chart")
    @app_commands.describe(download="A tracked download: show its progress history as a chart")
    @app_commands.guild_only()
    async def progress_command(self, interaction: discord.Interaction, download: str | None = None) -> None:
        await self.run_progress(interaction, download)

    @progress_command.autocomplete("download")
    async def progress_download_autocomplete(self, interaction: discord.Interaction,
                                             current: str) -> list[app_commands.Choice[str]]:
        return await self.download_choices(current)

    @app_commands.command(name="stats", description="Which indexers, download clients, instances or release groups "
                                                    "give stuck downloads, with a chart")
    @app_commands.describe(days="How many days back to look (default 30)",
                           by="Group by indexer (default), download client, instance or release group")
    @app_commands.guild_only()
    async def stats_command(self, interaction: discord.Interaction,
                            days: app_commands.Range[float, 0.1, 3650.0] = 30.0, by: str = "indexer") -> None:
        await self.run_stats(interaction, days, by)

    @stats_command.autocomplete("by")
    async def stats_by_autocomplete(self, interaction: discord.Interaction,
                                    current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=name, value=value) for name, value in stats_grouping_choices(current)]

    @app_commands.command(name="cleanup", description="Preview the stuck and failed downloads, then remove them "
                                                      "after you confirm")
    @app_commands.describe(dry_run="Check everything again and remove nothing",
                           include_import_blocked="Also remove completed downloads whose import is blocked",
                           include_slow="Also remove downloads too slow to finish within SLOW_MAX_ETA_HOURS")
    @app_commands.guild_only()
    async def cleanup_command(self, interaction: discord.Interaction, dry_run: bool = False,
                              include_import_blocked: bool = False, include_slow: bool = False) -> None:
        await self.run_cleanup(interaction, dry_run, include_import_blocked, include_slow)

    @app_commands.command(name="keep", description="Never remove this download: until it leaves the queue, "
                                                   "or for good")
    @app_commands.describe(download="A tracked download", for_good="Keep it even when it comes back later")
    @app_commands.guild_only()
    async def keep_command(self, interaction: discord.Interaction, download: str, for_good: bool = False) -> None:
        await self.run_keep(interaction, download, kept=True, for_good=for_good)

    @keep_command.autocomplete("download")
    async def keep_download_autocomplete(self, interaction: discord.Interaction,
                                         current: str) -> list[app_commands.Choice[str]]:
        return await self.download_choices(current)

    @app_commands.command(name="unkeep", description="Let a kept download be removed again")
    @app_commands.describe(download="A kept download")
    @app_commands.guild_only()
    async def unkeep_command(self, interaction: discord.Interaction, download: str) -> None:
        await self.run_keep(interaction, download, kept=False)

    @unkeep_command.autocomplete("download")
    async def unkeep_download_autocomplete(self, interaction: discord.Interaction,
                                           current: str) -> list[app_commands.Choice[str]]:
        return await self.download_choices(current, kept_only=True)

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        log.error("/%s failed", getattr(interaction.command, "name", "?"), exc_info=original)
        await send_ephemeral(interaction, failure_embed(original))

    # --- what they do ------------------------------------------------------------------------

    @asynccontextmanager
    async def answering(self, interaction: discord.Interaction) -> AsyncIterator[None]:
        """Turn a failed request or a refused Discord call into an ephemeral error for the user."""
        try:
            yield
        except ServiceFailure as exc:
            log.warning("%s", exc)
            await send_ephemeral(interaction, failure_embed(exc))
        except discord.HTTPException as exc:
            log.warning("Discord refused a message: %s %s", exc.status, exc.text)
            await send_ephemeral(interaction, failure_embed(exc))

    async def refuse_non_admin(self, interaction: discord.Interaction, command: str) -> bool:
        if is_admin(interaction.user, self.settings.discord_admin_role_id):
            return False
        role = self.settings.discord_admin_role_id
        who = "the Manage Server permission" + (f" or the <@&{role}> role" if role else "")
        await interaction.response.send_message(
            embed=error_embed(f"/{command} is for admins", f"You need {who}."), ephemeral=True)
        return True

    async def run_check(self, interaction: discord.Interaction) -> None:
        channel_id = self.settings.discord_channel_id
        if channel_id is None or self.board is None:
            await interaction.response.send_message(
                embed=error_embed("The status board is not set up", "Set DISCORD_CHANNEL_ID to the channel "
                                  "where the board should live, and restart the bot."), ephemeral=True)
            return
        if interaction.channel_id != channel_id:
            await interaction.response.send_message(
                f"/check works in <#{channel_id}>, where the status board is.", ephemeral=True)
            return
        since = self.clock() - self._checked.get(channel_id, -math.inf)
        if since < CHECK_COOLDOWN_SECONDS:
            await interaction.response.send_message(
                f"The status board was refreshed {int(since)} s ago; try again in "
                f"{math.ceil(CHECK_COOLDOWN_SECONDS - since)} s.", ephemeral=True)
            return
        self._checked[channel_id] = self.clock()
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.answering(interaction):
            result = await self.board.refresh()
            text = getattr(result, "summary", None) or "The status board is up to date."
            await interaction.followup.send(embed=notice_embed("Status board refreshed", text, GREEN),
                                            ephemeral=True)

    async def run_verbose(self, interaction: discord.Interaction) -> None:
        if await self.refuse_non_admin(interaction, "verbose"):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        level = "INFO" if logging.getLogger().getEffectiveLevel() <= logging.DEBUG else "DEBUG"
        answers = await asyncio.gather(
            *(self.services.ask(service, "log_level", {"level": level},
                                timeout=self.settings.request_timeout_seconds)
              for service in ("tracker", "poller")),
            return_exceptions=True)
        set_bot_log_level(level)
        lines = ["bot: ✅"]
        failed = []
        for service, answer in zip(("tracker", "poller"), answers):
            if isinstance(answer, ServiceFailure):
                lines.append(f"{service}: ❌ {answer}")
                failed.append(service)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                lines.append(f"{service}: ✅")
        title = f"Debug logging {'on' if level == 'DEBUG' else 'off'} (level {level})"
        if failed:
            embed = error_embed(f"{title}; not set on the {' and '.join(failed)}", "\n".join(lines))
        else:
            embed = notice_embed(title, "\n".join(lines), GREEN)
        await interaction.followup.send(embed=embed, ephemeral=True)

    async def run_progress(self, interaction: discord.Interaction, download: str | None) -> None:
        if await self.refuse_non_admin(interaction, "progress"):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.answering(interaction):
            if not download:
                await interaction.followup.send(embeds=await fetch_progress(self.services), ephemeral=True)
                return
            key = await self.resolve_download(download)
            if key is None:
                await self.no_such_download(interaction, download)
                return
            instance, download_id = key
            history = await self.services.ask("tracker", "history", {"instance": instance, "download_id": download_id})
            png = await asyncio.to_thread(render_history_png, history)
            await interaction.followup.send(embed=download_embed(history, image=CHART_NAME),
                                            file=history_file(png), ephemeral=True)

    async def run_stats(self, interaction: discord.Interaction, days: float = 30.0, by: str = "indexer") -> None:
        if await self.refuse_non_admin(interaction, "stats"):
            return
        by = (by or "indexer").strip().lower()
        if by not in STATS_GROUPINGS:  # autocomplete only suggests: anything can be typed
            await interaction.response.send_message(
                embed=error_embed("No such grouping", f"{clip(by, 100)!r} is not one of: "
                                  f"{', '.join(STATS_GROUPINGS)}."), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.answering(interaction):
            answer = await self.services.ask("tracker", "stats", {"days": float(days), "by": by})
            if not answer.get("rows"):
                await interaction.followup.send(embeds=stats_embeds(answer, image=None), ephemeral=True)
                return
            embeds = await asyncio.to_thread(stats_embeds, answer, image=STATS_CHART_NAME)
            png = await asyncio.to_thread(render_stats_png, answer)
            await interaction.followup.send(embeds=embeds, file=history_file(png, STATS_CHART_NAME), ephemeral=True)

    async def run_cleanup(self, interaction: discord.Interaction, dry_run: bool, include_import_blocked: bool,
                          include_slow: bool = False) -> None:
        if await self.refuse_non_admin(interaction, "cleanup"):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.answering(interaction):
            analysis, preview, view = await cleanup_message(
                self.services, owner_id=interaction.user.id, include_import_blocked=include_import_blocked,
                dry_run=dry_run, include_slow=include_slow)
            if view is None:
                await interaction.followup.send(embeds=preview, ephemeral=True)
                if dry_run and analysis.get("candidates"):
                    results = await request_removal(self.services, analysis, analysis["candidates"],
                                                    requested_by(interaction.user), dry_run=True,
                                                    include_import_blocked=include_import_blocked,
                                                    include_slow=include_slow)
                    report = await asyncio.to_thread(cleanup_report_embeds, results, dry_run=True,
                                                     requested_by=requested_by(interaction.user))
                    await interaction.followup.send(embeds=report, ephemeral=True)
                return
            view.message = await interaction.followup.send(embeds=preview, view=view, ephemeral=True, wait=True)

    async def run_keep(self, interaction: discord.Interaction, download: str, *, kept: bool,
                       for_good: bool = False) -> None:
        if await self.refuse_non_admin(interaction, "keep" if kept else "unkeep"):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        async with self.answering(interaction):
            # Keeping (or unkeeping) the wrong one of several would be worse than asking again.
            found = matching_downloads(await self.tracked_downloads(), download)
            if not found:
                await self.no_such_download(interaction, download)
                return
            if len(found) > 1:
                await interaction.followup.send(embed=error_embed(
                    "Which one?", f"{several_downloads(found, clip(download, 200))}; pick one from the list."),
                    ephemeral=True)
                return
            text = await set_kept(self.services, found[0]["instance"], found[0]["download_id"],
                                  requested_by(interaction.user), kept=kept, for_good=for_good)
            self._downloads_cache = None  # its protection changed: the next choices ask again
            await interaction.followup.send(embed=notice_embed("Kept" if kept else "No longer kept", text, GREEN),
                                            ephemeral=True)

    @staticmethod
    async def no_such_download(interaction: discord.Interaction, typed: str) -> None:
        await interaction.followup.send(
            embed=error_embed("No such download", f"No tracked download matches {clip(typed, 200)!r}; "
                              "pick one from the list."), ephemeral=True)

    # --- download options: the choices and what a typed value means ------------------------

    def remember_downloads(self, downloads: list[dict[str, Any]]) -> None:
        """The downloads of the latest look at the queue (the board's refresh): choices come from these."""
        self._downloads_cache = (time.monotonic(), downloads)

    async def tracked_downloads(self, timeout: float | None = None) -> list[dict[str, Any]]:
        now = time.monotonic()
        if self._downloads_cache and now - self._downloads_cache[0] < AUTOCOMPLETE_CACHE_SECONDS:
            return self._downloads_cache[1]
        check = await self.services.check(timeout)
        self.remember_downloads(check.get("downloads", []))
        return self._downloads_cache[1]

    async def download_choices(self, current: str, kept_only: bool = False) -> list[app_commands.Choice[str]]:
        """Up to 25 tracked downloads matching what was typed, the worst first; value "instance/download_id".

        Discord gives an autocomplete 3 s in all, network included: what the bot holds answers at once
        (a stale list is refreshed meanwhile, for the next keystroke); only with nothing held is the
        tracker asked, for AUTOCOMPLETE_TIMEOUT at most.
        """
        if self._downloads_cache is not None:
            downloads = self._downloads_cache[1]
            if time.monotonic() - self._downloads_cache[0] >= AUTOCOMPLETE_CACHE_SECONDS and self._refresh is None:
                self._refresh = asyncio.create_task(self._refresh_downloads(), name="download-choices")
        else:
            try:
                downloads = await self.tracked_downloads(timeout=AUTOCOMPLETE_TIMEOUT)
            except ServiceFailure as exc:
                log.info("no download choices: %s", exc)
                return []
        needle = current.strip().lower()
        ranked = sorted(
            (item for item in downloads
             if (not needle or needle in (item.get("title") or "").lower() or needle in item["download_id"].lower())
             and (not kept_only or str(item.get("protected_by") or "").startswith("kept"))),
            key=lambda item: (item.get("category") not in ("stuck", "inactive"), not item.get("soon_stuck"),
                              item["instance"], item.get("title") or ""))
        choices = []
        for item in ranked:
            value = f"{item['instance']}/{item['download_id']}"
            if len(value) > 100:
                continue  # Discord refuses longer values
            choices.append(app_commands.Choice(name=_choice_name(item), value=value))
            if len(choices) == 25:
                break
        return choices

    async def _refresh_downloads(self) -> None:
        try:
            await self.tracked_downloads(timeout=self.settings.request_timeout_seconds)
        except ServiceFailure as exc:
            log.info("download choices not refreshed: %s", exc)
        finally:
            self._refresh = None

    async def resolve_download(self, value: str) -> tuple[str, str] | None:
        """(instance, download_id) from a chosen "instance/download_id", or from a typed title."""
        matches = matching_downloads(await self.tracked_downloads(), value)
        return (matches[0]["instance"], matches[0]["download_id"]) if matches else None


def set_bot_log_level(level: str) -> None:
    """The bot's own level; discord.py stays at INFO, its debug output is every gateway event."""
    logging.getLogger().setLevel(level)
    logging.getLogger("discord").setLevel(max(logging.INFO, logging.getLevelName(level)))
