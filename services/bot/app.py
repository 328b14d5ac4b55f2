"""The Discord bot: the client, the status board that edits one message in place, and warnings.

`run_discord_bot(settings, stop_event)` runs it until the event is set (or
SIGTERM); `command_tree_json()` is the command payload it syncs, built
without logging in. The board's message id lives in BOT_STATE_FILE
(`settings.bot_state_file`, JSON written atomically off the event loop), so a
restarted bot edits the same message; so does the memory of what it already
warned about, so a restart does not warn twice.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands, tasks

from common.settings import Settings, load_settings
from common.sockets import ServiceUnavailable
from services.bot.autoclean import Announcement, AutoCleaner, auto_cleaner
from services.bot.board import unhealthy_services
from services.bot.commands import DiscarrCog, fetch_board_pages
from services.bot.embeds import auto_cleanup_embeds, board_error_embed, board_pages, page_of, warning_embed
from services.bot.requests import ServiceFailure, Services
from services.bot.state_file import StateFile, load_state
from services.bot.views import BoardPager, KeepButton, keep_buttons, pager_for

log = logging.getLogger(__name__)

STOP_POLL_SECONDS = 0.2


# --- the status board ---------------------------------------------------------------------------

@dataclass(frozen=True)
class BoardResult:
    message_id: int
    pages: int
    tracked: int
    warned: bool

    @property
    def summary(self) -> str:
        return (f"{self.tracked} downloads tracked, {self.pages} page(s)."
                + (" A warning was posted." if self.warned else ""))


ChannelResolver = Callable[[], Awaitable[Any]]


class StatusBoard:
    """One message in DISCORD_CHANNEL_ID, edited in place; and one warning per breakage."""

    def __init__(self, settings: Settings, services: Services, resolve_channel: ChannelResolver) -> None:
        self.settings = settings
        self.services = services
        self.resolve_channel = resolve_channel
        self.store = StateFile(settings.bot_state_file)
        self.state = load_state(settings.bot_state_file)
        self._unsaved = False  # the state changed, or its last save failed
        self._lock = asyncio.Lock()
        self.auto = auto_cleaner(settings, services, self.state, self._save_changed, self._announce)
        self.seen: Callable[[list[dict[str, Any]]], None] | None = None  # told the downloads of each refresh

    async def _save_changed(self) -> None:
        self._unsaved = True
        await self._save_if_unsaved()

    async def _announce(self, announcement: Announcement) -> None:
        """Automatic cleanup's message in the channel (and its line in the log)."""
        log.info("%s", announcement.text())
        channel = await self.resolve_channel()
        try:
            await channel.send(embeds=auto_cleanup_embeds(announcement),
                               allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("could not post an automatic cleanup message: %s", exc)

    async def _save_if_unsaved(self) -> None:
        if self._unsaved:
            self._unsaved = not await self.store.save(self.state)

    async def load_pages(self) -> list[list[discord.Embed]]:
        return await asyncio.to_thread(board_pages, await self._check())

    async def _check(self) -> dict[str, Any]:
        """The tracker's queue, with automatic cleanup's state for the board's header."""
        check = await self.services.check()
        check["auto_cleanup"] = self.auto.report()
        return check

    async def refresh(self) -> BoardResult:
        """Fetch the queue, edit the board message (or post it), and warn about what newly broke."""
        async with self._lock:
            channel = await self.resolve_channel()
            try:
                check = await self._check()
            except ServiceFailure as exc:
                await self._show_error(channel, str(exc))
                raise
            if self.seen is not None:
                self.seen(check.get("downloads", []))
            pages = await asyncio.to_thread(board_pages, check)
            message_id = await self._edit_or_post(channel, pages)
            warned = await self._warn(channel, check)
            await self._save_if_unsaved()
            try:  # after each board refresh (SPEC 4.1)
                await self.auto.run(check)
            except ServiceFailure as exc:
                log.warning("automatic cleanup did not run: %s", exc)
            return BoardResult(message_id, len(pages), check.get("tracked", 0), warned)

    async def _show_error(self, channel: Any, detail: str) -> None:
        """While the tracker is away the board says so (it never posts a second message for it)."""
        message_id = self._message_id(channel)
        if message_id is None:
            return
        try:
            await channel.get_partial_message(message_id).edit(embeds=[board_error_embed(detail)], view=None)
        except discord.HTTPException as exc:
            log.info("could not mark the board as stale: %s", exc)

    def _message_id(self, channel: Any) -> int | None:
        if self.state.get("channel_id") == channel.id and isinstance(self.state.get("message_id"), int):
            return self.state["message_id"]
        return None

    async def _edit_or_post(self, channel: Any, pages: list[list[discord.Embed]]) -> int:
        message_id = self._message_id(channel)
        if message_id is not None:
            try:
                message = await channel.fetch_message(message_id)
            except discord.NotFound:
                log.info("the board message %s is gone; posting a new one", message_id)
                message = None
            except discord.Forbidden:
                message = channel.get_partial_message(message_id)  # no Read Message History: edit blind
            if message is not None:
                page, _ = page_of(getattr(message, "embeds", None) or [])
                page = min(page, len(pages) - 1)
                try:
                    await message.edit(content=None, embeds=pages[page],
                                       view=pager_for(self.load_pages, page, len(pages)))
                    return message_id
                except discord.NotFound:
                    log.info("the board message %s is gone; posting a new one", message_id)
                except discord.Forbidden as exc:
                    log.warning("cannot edit the board message %s (%s); posting a new one", message_id, exc.text)
        message = await channel.send(embeds=pages[0], view=pager_for(self.load_pages, 0, len(pages)))
        self.state.update(channel_id=channel.id, message_id=message.id)
        self._unsaved = True
        log.info("posted the status board as message %s in channel %s", message.id, channel.id)
        return message.id

    async def _warn(self, channel: Any, check: dict[str, Any]) -> bool:
        """One message for downloads that became stuck and services that became unhealthy since the last look.

        What was warned about is remembered; it is warned about again only
        after it recovered and broke again.
        """
        stuck = {f"{item['instance']}/{item['download_id']}": item
                 for item in check.get("downloads", ()) if item.get("category") == "stuck"}
        unhealthy = {service["name"]: service for service in unhealthy_services(check)}
        warned_stuck = set(self.state.get("warned_stuck", ()))
        warned_unhealthy = set(self.state.get("warned_unhealthy", ()))
        new_stuck = [item for key, item in stuck.items() if key not in warned_stuck]
        new_unhealthy = [instance for name, instance in unhealthy.items() if name not in warned_unhealthy]
        posted = False
        if new_stuck or new_unhealthy:
            try:
                # Keep, under each stuck download that nothing protects yet (admins only, SPEC 4.2).
                await channel.send(embed=warning_embed(new_stuck, new_unhealthy),
                                   view=keep_buttons([item for item in new_stuck if not item.get("protected_by")]),
                                   allowed_mentions=discord.AllowedMentions.none())
                posted = True
            except discord.HTTPException as exc:
                log.warning("could not post a warning: %s", exc)
        # Forget what recovered; remember what was warned about (what failed to post is tried again).
        if posted:
            warned_stuck, warned_unhealthy = set(stuck), set(unhealthy)
        else:
            warned_stuck &= set(stuck)
            warned_unhealthy &= set(unhealthy)
        if (sorted(warned_stuck) != self.state.get("warned_stuck", [])
                or sorted(warned_unhealthy) != self.state.get("warned_unhealthy", [])):
            self.state.update(warned_stuck=sorted(warned_stuck), warned_unhealthy=sorted(warned_unhealthy))
            self._unsaved = True
        return posted


# --- the client -------------------------------------------------------------------------------------

def bot_intents() -> discord.Intents:
    """Slash commands need no privileged intent; guilds lets the bot see its channels."""
    intents = discord.Intents.none()
    intents.guilds = True
    return intents


class DiscarrBot(commands.Bot):
    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=bot_intents(), help_command=None)
        self.settings = settings
        self.services = services or Services(settings)
        self.board: StatusBoard | None = None
        self.auto: AutoCleaner | None = None  # automatic cleanup on its own timer, when there is no board
        if settings.discord_channel_id is not None:
            self.board = StatusBoard(settings, self.services, self._board_channel)
        else:
            self.store, self.state = StateFile(settings.bot_state_file), load_state(settings.bot_state_file)
            self.auto = auto_cleaner(settings, self.services, self.state, self._save_state, self._announce_in_log)
            self.auto_loop.change_interval(seconds=settings.effective_check_interval)
        self.cog = DiscarrCog(settings, self.services, self.board)
        if self.board is not None:
            self.board.seen = self.cog.remember_downloads
        self.sync_task: asyncio.Task[None] | None = None

    async def _save_state(self) -> None:
        await self.store.save(self.state)

    @staticmethod
    async def _announce_in_log(announcement: Announcement) -> None:
        log.info("%s", announcement.text())  # no channel to post in: the log is where it is told

    async def _board_channel(self) -> Any:
        channel_id = self.settings.discord_channel_id
        return self.get_channel(channel_id) or self.get_partial_messageable(channel_id)

    async def setup_hook(self) -> None:
        await self.add_cog(self.cog)
        self.add_view(BoardPager(self.board.load_pages if self.board else self._pages_without_board))
        self.add_dynamic_items(KeepButton)  # a warning's Keep works after any restart
        # In the background: setup_hook holds up the gateway connection (and so the board), and a
        # sync may wait out a rate limit for minutes.
        self.sync_task = asyncio.create_task(self.sync_commands(), name="sync-commands")
        if self.board is None:
            log.warning("DISCORD_CHANNEL_ID is not set: no status board and no /check")
            if self.auto is not None and self.auto.config.enabled:
                log.warning("automatic cleanup (%s) runs every %g s without a board and announces in this log only",
                            self.auto.config.describe(), self.auto_loop.seconds)
                self.auto_loop.start()
        else:
            interval = self.settings.effective_check_interval
            if interval != self.settings.check_interval:
                log.warning("CHECK_INTERVAL=%g is too often for Discord, which rate-limits message edits: "
                            "the board is edited every %g s", self.settings.check_interval, interval)
            self.board_loop.change_interval(seconds=interval)
            self.board_loop.start()

    async def _pages_without_board(self) -> list[list[discord.Embed]]:
        return await fetch_board_pages(self.services)

    async def sync_commands(self) -> None:
        """Sync the slash commands when they changed since the last sync (Discord rate-limits syncs).

        A failed sync is logged and leaves Discord the commands it had; the next start tries again.
        """
        payload = command_payload(self.tree)
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        store, state = (self.board.store, self.board.state) if self.board else (self.store, self.state)
        synced = {"application_id": self.application_id, "digest": digest}
        if state.get("commands") == synced:
            log.info("slash commands unchanged since the last sync")
            return
        try:
            await self.tree.sync()
        except discord.HTTPException as exc:
            log.error("%s", sync_failure(exc, self.application_id))
            return
        except Exception:  # in a background task: it would otherwise go unseen
            log.exception("could not sync the slash commands; Discord keeps the ones it had")
            return
        log.info("synced %d slash commands", len(payload))
        state["commands"] = synced
        await store.save(state)

    @tasks.loop(seconds=300)
    async def board_loop(self) -> None:
        assert self.board is not None
        try:
            await self.board.refresh()
        except ServiceFailure as exc:
            log.warning("status board not refreshed: %s", exc)
        except discord.HTTPException as exc:
            log.warning("status board not refreshed: Discord answered %s %s", exc.status, exc.text)
        except Exception:
            log.exception("status board not refreshed")

    @board_loop.before_loop
    async def _before_board_loop(self) -> None:
        await self.wait_until_ready()

    @tasks.loop(seconds=300)
    async def auto_loop(self) -> None:
        """Automatic cleanup without a board (SPEC 4.1: with a token but no DISCORD_CHANNEL_ID)."""
        try:
            await self.run_auto_cleanup()
        except Exception:
            log.exception("automatic cleanup did not run")

    async def run_auto_cleanup(self) -> None:
        assert self.auto is not None
        try:
            await self.auto.run(await self.services.check())
        except ServiceFailure as exc:
            log.warning("automatic cleanup did not run: %s", exc)

    @auto_loop.before_loop
    async def _before_auto_loop(self) -> None:
        await self.wait_until_ready()

    async def on_ready(self) -> None:
        log.info("logged in to Discord as %s (id %s)", self.user, getattr(self.user, "id", "?"))

    async def close(self) -> None:
        for loop in (self.board_loop, self.auto_loop):
            if loop.is_running():
                loop.cancel()
        if self.sync_task is not None:
            self.sync_task.cancel()
        await super().close()
        await self.services.close()


def sync_failure(error: discord.HTTPException, application_id: int | None) -> str:
    """One log line for a refused sync: what failed, what stays, what to do."""
    what = f"could not sync the slash commands (Discord answered {error.status} {error.text or ''}".rstrip() + ")"
    if error.status == 429:
        advice = "Discord limits how often commands are synced: restart the bot later to try again"
    elif error.status == 403:
        invite = ("https://discord.com/oauth2/authorize?scope=bot+applications.commands"
                  + (f"&client_id={application_id}" if application_id else ""))
        advice = f"re-invite the bot with the applications.commands scope ({invite}), then restart it"
    else:
        advice = "the next restart tries again"
    return f"{what}; Discord keeps the commands it had and the board runs on; {advice}"


def command_payload(tree: app_commands.CommandTree) -> list[dict[str, Any]]:
    """The commands as tree.sync() sends them (Command.to_dict(tree) needs discord.py 2.4)."""
    return [command.to_dict(tree) for command in tree.get_commands()]


# --- running it -------------------------------------------------------------------------------------

class RedactToken(logging.Filter):
    """Replaces the bot token wherever it would reach a log line, tracebacks included."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.token:
            return True
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "<DISCORD_TOKEN>"), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, "<DISCORD_TOKEN>")
        return True


def _explain(error: BaseException) -> str:
    if isinstance(error, discord.LoginFailure):
        return "Discord refused DISCORD_TOKEN: check the bot token in the Developer Portal"
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return "Discord asked for a privileged intent the bot does not use; check the application's settings"
    if isinstance(error, (aiohttp.ClientError, OSError)):
        return f"cannot reach Discord ({type(error).__name__})"
    if isinstance(error, discord.HTTPException):
        return f"Discord answered {error.status} at log in"
    return f"the bot stopped: {type(error).__name__}"


async def _wait_for(stop: threading.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(STOP_POLL_SECONDS)


def _stop_on_sigterm(loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
    """Unless the caller already handles SIGTERM (the CLI does), let it set the stop event."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return
    try:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):
        pass


async def serve(settings: Settings, stop: threading.Event, bot: DiscarrBot | None = None) -> None:
    """Log in and run until `stop` is set; a refused token or no network raises ServiceUnavailable."""
    bot = bot or DiscarrBot(settings)
    _stop_on_sigterm(asyncio.get_running_loop(), stop)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_token or ""), name="discord")
        watcher = asyncio.create_task(_wait_for(stop), name="stop-watcher")
        done, _ = await asyncio.wait({runner, watcher}, return_when=asyncio.FIRST_COMPLETED)
        watcher.cancel()
        if runner in done:
            error = runner.exception()
            if error is not None:
                log.debug("the Discord client stopped", exc_info=error)
                raise ServiceUnavailable(f"discord: {_explain(error)}") from None
            return
        log.info("stopping the Discord bot")
        await bot.close()  # closes the gateway connection; what is left of start() has nothing more to do
        runner.cancel()
        outcome = (await asyncio.gather(runner, return_exceptions=True))[0]
        if outcome is not None:
            log.debug("the Discord client ended with %r", outcome)


def use_discord_endpoints(settings: Settings) -> None:
    """Send REST calls to DISCORD_API_BASE and open the gateway at DISCORD_GATEWAY_URL (a proxy, or the
    tests' stand-in). discord.py keeps both in class attributes: its client opens Discord's own gateway
    whatever the REST base is, and goes back to that default after a session it cannot resume."""
    discord.http.Route.BASE = settings.discord_api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def run_discord_bot(settings: Settings, stop_event: threading.Event) -> None:
    """Run the Discord bot until `stop_event` is set or SIGTERM; blocking.

    Raises ServiceUnavailable (naming "discord", never the token) when the
    token is missing or refused or Discord cannot be reached.
    """
    if not settings.discord_token:
        raise ServiceUnavailable("discord: DISCORD_TOKEN is not set")
    use_discord_endpoints(settings)
    redactor = RedactToken(settings.discord_token)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(redactor)
    try:
        asyncio.run(serve(settings, stop_event))
    finally:
        for handler in handlers:
            handler.removeFilter(redactor)


def command_tree_json(settings: Settings | None = None) -> list[dict[str, Any]]:
    """The slash commands as the bot syncs them to Discord with these settings (by default the
    environment's: the admin role decides their default permissions), built without logging in."""
    client = discord.Client(intents=bot_intents())
    tree = app_commands.CommandTree(client)
    for command in DiscarrCog(settings or load_settings(), None).get_app_commands():
        tree.add_command(command)
    return command_payload(tree)
