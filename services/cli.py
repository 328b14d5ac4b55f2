"""The `discarr` command: run each process, and ask what the bot asks.

Exit codes (SPEC section 5): 0 done; 1 a service did not answer or failed;
2 bad usage or a bad setting.
"""
from __future__ import annotations

import json
import logging
import sys
from typing import Any, Callable
from urllib.parse import urlsplit

import click

from common.runtime import ProcessFailed, configure_logging, stop_event_on_signals
from common.settings import Settings, SettingsError, load_settings
from common.sockets import RequestClient, ServiceError, ServiceUnavailable
from common.version import VERSION
from services.bot.stats_view import STATS_GROUPINGS  # light: its discord, rich and matplotlib load on use


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        click.echo(f"discarr: {exc}", err=True)
        sys.exit(2)


def _run_process(name: str, body: Callable[[Settings], None]) -> None:
    settings = _settings()
    configure_logging(name, settings.log_level)
    if name != "simarr":  # the simulator is not discarr: a usage error of it stays one line
        logging.getLogger("discarr").info("discarr %s %s starting", VERSION, name)
    try:
        body(settings)
    except (ServiceUnavailable, ProcessFailed) as exc:  # e.g. an endpoint already in use; a dead poll thread
        click.echo(f"discarr {name}: {exc}", err=True)
        sys.exit(1)


def _ask(settings: Settings, service: str, message_type: str, body: dict[str, Any] | None = None,
         endpoint: str | None = None) -> dict[str, Any]:
    """One request to the tracker or a poller; no answer or an error reply exits 1 naming it."""
    default_endpoint, timeout = {
        "tracker": (settings.tracker_query_endpoint, settings.request_timeout_seconds),
        "poller": (settings.poller_endpoint_for_clients, settings.removal_wait_seconds),
    }[service]
    endpoint = endpoint or default_endpoint
    try:
        with RequestClient(service, endpoint, timeout, curve=settings.curve) as client:
            return client.request(message_type, body)
    except (ServiceUnavailable, ServiceError) as exc:
        click.echo(f"discarr: {exc}", err=True)
        sys.exit(1)


def _worst_offender(settings: Settings) -> str | None:
    """One line about an indexer, client or release group that keeps giving dead downloads (or None)."""
    from services.bot.stats_view import first_offender, stats_requests
    try:
        with RequestClient("tracker", settings.tracker_query_endpoint, settings.request_timeout_seconds,
                           curve=settings.curve) as client:
            return first_offender([client.request("stats", body) for body in stats_requests()])
    except (ServiceUnavailable, ServiceError):
        return None  # no statistics (yet): progress is still worth showing


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@click.group()
@click.version_option(VERSION, "--version", prog_name="discarr", message="%(prog)s %(version)s")
def main() -> None:
    """discarr: find and clean up stuck Sonarr/Radarr/Lidarr/Readarr downloads."""


@main.command()
def poller() -> None:
    """Run the poller: read every *arr queue, send snapshots to the tracker."""
    from services.poller.service import run_poller
    _run_process("poller", lambda s: run_poller(s, stop_event_on_signals()))


@main.command()
def tracker() -> None:
    """Run the tracker: keep progress history, answer analysis requests."""
    from services.tracker.service import run_tracker
    _run_process("tracker", lambda s: run_tracker(s, stop_event_on_signals()))


@main.command()
@click.option("--print-commands", is_flag=True, help="Print the slash commands synced to Discord (JSON) and exit.")
def bot(print_commands: bool) -> None:
    """Run the bot: the Discord bot with DISCORD_TOKEN, else the terminal board."""
    if print_commands:
        from services.bot.app import command_tree_json
        _print_json(command_tree_json(_settings()))
        return

    def body(settings: Settings) -> None:
        stop = stop_event_on_signals()
        if settings.discord_token:
            from services.bot.app import run_discord_bot
            run_discord_bot(settings, stop)
        else:
            from services.bot.terminal import run_terminal_board
            run_terminal_board(settings, stop)
    _run_process("bot", body)


@main.command()
@click.argument("kind", type=click.Choice(["board", "progress", "cleanup"]))
@click.option("--json", "as_json", is_flag=True, help="Print the Discord payload as JSON.")
def preview(kind: str, as_json: bool) -> None:
    """What the Discord bot would send now (embeds and buttons), from the live tracker."""
    from services.bot.preview import preview as build
    from services.bot.preview import render_json, render_text
    settings = _settings()
    try:
        payload = build(kind, settings)
    except (ServiceUnavailable, ServiceError) as exc:
        click.echo(f"discarr: {exc}", err=True)
        sys.exit(1)
    click.echo(render_json(payload) if as_json else render_text(payload), nl=as_json)


@main.command()
@click.option("--scenario", type=click.Choice(["demo", "empty"]), default="demo", show_default=True,
              help="The downloads the simulated instances start with.")
@click.option("--speed", type=click.FloatRange(min=0.0, min_open=True), default=1.0, show_default=True,
              help="Simulated seconds per real second.")
@click.option("--downloads-from", metavar="NAME",
              help="Also list the jobs of this configured download client (qBittorrent, Deluge, NZBGet or SABnzbd, "
                   "e.g. nzbget) in each instance's category (tv-sonarr, radarr, lidarr, readarr).")
@click.option("--refresh-seconds", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Show queue figures as of the latest refresh, every N seconds, as the *arrs do (0: live).")
@click.option("--frozen", "frozen", metavar="NAME=FILE", multiple=True,
              help="Also serve, unchanged, the queue records in FILE (a JSON list of records, or an object "
                   "with `records`, e.g. a captured queue page) at instance NAME. Repeatable.")
def simarr(scenario: str, speed: float, downloads_from: str | None, refresh_seconds: float,
           frozen: tuple[str, ...]) -> None:
    """Run the Sonarr/Radarr simulator for every configured instance at SIMARR_PORT.

    An instance whose URL is http://127.0.0.1:SIMARR_PORT/sonarr is served at
    the URL base /sonarr with its configured API key and kind. simarr listens
    on SIMARR_HOST (default 127.0.0.1). On loopback it serves only URLs at
    127.0.0.1 or localhost, so a real *arr elsewhere on that port is never
    simulated; listening beyond loopback (0.0.0.0 in a container) it serves
    every instance whose URL port is SIMARR_PORT, whatever its host name.
    """
    from common.clock import SystemClock
    from services.simarr.scenarios import build_instances
    from services.simarr.server import SimarrServer
    from services.simarr.client_source import SOURCES, mirror_client

    def body(settings: Settings) -> None:
        host, port = settings.simarr_host, settings.simarr_port
        # Beyond loopback the URL's host is whatever name others reach simarr by (a compose service
        # name), which simarr cannot check: the port alone says the instance is its own.
        local_only = host == "localhost" or host.startswith("127.")
        specs, elsewhere = [], []
        for instance in settings.instances:
            parts = urlsplit(instance.url)
            if parts.port != port:
                continue
            if local_only and parts.hostname not in ("127.0.0.1", "localhost"):
                elsewhere.append(instance.name)
                continue
            specs.append((instance.name, instance.kind, parts.path.rstrip("/"), instance.api_key))
        if not specs:
            where = f"127.0.0.1:{port} or localhost:{port}" if local_only else f"port {port}"
            hint = (f"{', '.join(elsewhere)} at another host name is served only when SIMARR_HOST is not loopback, "
                    "e.g. SIMARR_HOST=0.0.0.0 in a container" if elsewhere
                    else f"set e.g. SONARR_URL=http://127.0.0.1:{port}/sonarr and SONARR_API_KEY")
            click.echo(f"discarr simarr: no configured instance has a URL at {where} ({hint})", err=True)
            sys.exit(2)
        instances = build_instances(specs, scenario, SystemClock(), speed)
        if downloads_from is not None:
            client = next((c for c in settings.download_clients if c.name == downloads_from), None)
            if client is None or client.kind not in SOURCES:
                why = (f"is a {client.kind} client; simarr reads {', '.join(SOURCES)}" if client
                       else "is not a configured download client (set e.g. QBITTORRENT_URL or NZBGET_URL)")
                click.echo(f"discarr simarr: --downloads-from {downloads_from} {why}", err=True)
                sys.exit(2)
            mirror_client(instances, client)
        by_name = {instance.name: instance for instance in instances}
        for instance in instances:
            instance.set_refresh(refresh_seconds)
        for option in frozen:
            name, _, path = option.partition("=")
            try:
                if name not in by_name:
                    raise ValueError(f"{name!r} is not an instance served here ({', '.join(by_name)})")
                with open(path, encoding="utf-8") as file:
                    loaded = json.load(file)
                by_name[name].load_frozen(loaded.get("records") if isinstance(loaded, dict) else loaded)
            except (OSError, ValueError) as exc:
                click.echo(f"discarr simarr: --frozen {option}: {exc}", err=True)
                sys.exit(2)
        try:
            server = SimarrServer(instances, host=host, port=port)
        except OSError as exc:  # the port is taken, or SIMARR_HOST is no address of this machine
            click.echo(f"discarr simarr: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
            sys.exit(1)
        stop = stop_event_on_signals()
        server.start_background()
        click.echo(f"simarr serving {', '.join(s[0] for s in specs)} on {host}:{server.port}", err=True)
        stop.wait()
        server.shutdown()
    _run_process("simarr", body)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def doctor(as_json: bool) -> None:
    """Check this installation: *arrs, download clients, tracker, pollers, data paths, Discord, settings.

    One line per check, with what to do about each that fails; exit 1 if any fails.
    """
    from services.doctor import render_text, report, run_checks
    checks = run_checks()
    if as_json:
        _print_json(report(checks))
    else:
        click.echo(render_text(checks))
    sys.exit(0 if all(check.ok for check in checks) else 1)


@main.group()
def keys() -> None:
    """CurveZMQ keys for running discarr across several hosts."""


@keys.command()
def generate() -> None:
    """Print a new set of CURVE_* settings: put the same four lines in every host's .env."""
    import zmq
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    for name, key in (("CURVE_SERVER_PUBLIC_KEY", server_public), ("CURVE_SERVER_SECRET_KEY", server_secret),
                      ("CURVE_CLIENT_PUBLIC_KEY", client_public), ("CURVE_CLIENT_SECRET_KEY", client_secret)):
        click.echo(f"{name}={key.decode()}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def check(as_json: bool) -> None:
    """The current queue as the tracker sees it."""
    from common.protocol import check_page, merge_check
    from services.bot.terminal import make_console, render_board
    settings = _settings()
    answer, offset = None, 0
    while offset is not None:  # in pages: a whole queue of 100,000 downloads is too big for one message
        answer, offset = merge_check(answer, _ask(settings, "tracker", "check", check_page(offset)))
    if as_json:
        _print_json(answer)
    else:
        make_console().print(render_board(answer))


@main.command()
@click.option("--interval", type=click.FloatRange(min=0.5), help="Seconds between refreshes (default CHECK_INTERVAL).")
def watch(interval: float | None) -> None:
    """The status board, live in this terminal (refreshed in place), until Ctrl-C."""
    from services.bot.terminal import watch_board
    watch_board(_settings(), interval=interval)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def progress(as_json: bool) -> None:
    """Tracker statistics: stuck, inactive and soon-stuck downloads, thresholds, automatic cleanup."""
    from services.bot.autoclean import AutoConfig
    from services.bot.terminal import make_console, render_progress
    settings = _settings()
    answer = _ask(settings, "tracker", "progress")
    answer["worst_offender"] = _worst_offender(settings)
    if answer.get("auto_cleanup") is None:  # no bot has reported yet: this host's configuration
        config = AutoConfig.from_settings(settings)
        answer["auto_cleanup"] = {"config": config.as_dict(), "state": config.describe(), "removed_this_hour": {},
                                  "held": {}, "candidates": []}
    if as_json:
        _print_json(answer)
    else:
        make_console().print(render_progress(answer))


@main.command()
@click.option("--days", type=click.FloatRange(min=0.0, min_open=True), default=30.0, show_default=True,
              help="How many days back to look.")
@click.option("--by", type=click.Choice(STATS_GROUPINGS), default="indexer", show_default=True,
              help="Group by indexer, download client, *arr instance or release group.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def stats(days: float, by: str, as_json: bool) -> None:
    """Per indexer, client, instance or release group: how the downloads that left the queue fared."""
    from services.bot.stats_view import stats_table
    from services.bot.terminal import make_console
    answer = _ask(_settings(), "tracker", "stats", {"days": days, "by": by})
    if as_json:
        _print_json(answer)
    else:
        make_console().print(stats_table(answer))


@main.command()
@click.option("--dry-run", is_flag=True, help="Make every check, remove nothing, say what would happen.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--include-import-blocked", is_flag=True, help="Also remove downloads whose import is blocked.")
@click.option("--include-slow", is_flag=True, help="Also remove downloads too slow to finish in SLOW_MAX_ETA_HOURS.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def cleanup(dry_run: bool, yes: bool, include_import_blocked: bool, include_slow: bool, as_json: bool) -> None:
    """Remove stuck and inactive downloads, after a preview and a confirmation."""
    from common.protocol import cleanup_analysis
    from services.bot.board import kept_for_now, removal_consequences
    from services.bot.terminal import items_table, make_console
    settings = _settings()
    if not (dry_run or yes or sys.stdin.isatty()):
        click.echo("discarr cleanup: no terminal to confirm on; pass --yes (or --dry-run)", err=True)
        sys.exit(2)
    analysis = cleanup_analysis(_ask(settings, "tracker", "analyze", {"include_import_blocked": include_import_blocked,
                                                                      "include_slow": include_slow}),
                                settings.cleanup_usenet_failed)
    candidates = analysis["candidates"]
    console = make_console()
    if not as_json:
        console.print(items_table("Would be removed", candidates))
        if candidates:
            console.print(removal_consequences(candidates, blocklist=settings.cleanup_blocklist,
                                               keep_private=settings.cleanup_private == "keep")
                          + (" Dry run: the poller checks each one again and removes nothing." if dry_run else
                             " The poller checks every download again before removing it."))
        for title, items in kept_for_now(analysis, include_import_blocked, include_slow):
            console.print(items_table(title, items))
    if candidates and not (dry_run or yes):
        if not click.confirm(f"Remove these {len(candidates)} downloads?", err=True):
            click.echo("cancelled; nothing was removed", err=True)
            return
    results = _remove(settings, analysis, dry_run=dry_run, include_import_blocked=include_import_blocked,
                      include_slow=include_slow)
    if as_json:
        _print_json({"dry_run": dry_run, "candidates": candidates, "results": results,
                     "attention": analysis["attention"], "withheld": analysis.get("withheld", []),
                     "slow": analysis.get("slow", []), "protected": analysis.get("protected", [])})
    else:
        console.print(items_table("Dry run" if dry_run else "Results", results, result=True))
    if any(result["result"] == "failed" for result in results):
        sys.exit(1)


@main.command()
@click.argument("download")
@click.option("--for-good", is_flag=True, help="Keep it even when it comes back after leaving the queue.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def keep(download: str, for_good: bool, as_json: bool) -> None:
    """Never remove DOWNLOAD (a title, part of one, or a download id): until it leaves the queue, or for good."""
    _keep(download, kept=True, for_good=for_good, as_json=as_json)


@main.command()
@click.argument("download")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def unkeep(download: str, as_json: bool) -> None:
    """Let DOWNLOAD (a title, part of one, or a download id) be removed again."""
    _keep(download, kept=False, for_good=False, as_json=as_json)


def _keep(download: str, *, kept: bool, for_good: bool, as_json: bool) -> None:
    import getpass

    from common.protocol import check_page, merge_check
    from services.bot.keeps import keep_request, kept_sentence
    settings = _settings()
    check, offset = None, 0
    while offset is not None:
        check, offset = merge_check(check, _ask(settings, "tracker", "check", check_page(offset)))
    instance, download_id = _one_download(check["downloads"], download)
    message_type, body = keep_request(instance, download_id, f"cli:{getpass.getuser()}", kept=kept,
                                      for_good=for_good)
    answer = _ask(settings, "tracker", message_type, body)
    try:
        with RequestClient("poller", answer.get("poller") or settings.poller_endpoint_for_clients,
                           settings.removal_wait_seconds, retries=0, curve=settings.curve) as client:
            tagged = client.request(message_type, body)
    except (ServiceUnavailable, ServiceError) as exc:
        click.echo(f"discarr: {exc}", err=True)
        tagged = None
    if as_json:
        _print_json(dict(answer, tagged=tagged))
    else:
        click.echo(kept_sentence(answer, tagged, kept=kept, for_good=for_good).replace("**", ""))


def _one_download(downloads: list[dict[str, Any]], wanted: str) -> tuple[str, str]:
    """(instance, download id) of the one download `wanted` names: its id (or instance/id), else the one
    title that contains it; anything else is a usage error naming the choices."""
    from services.bot.board import matching_downloads, several_downloads
    found = matching_downloads(downloads, wanted)
    if len(found) == 1:
        return found[0]["instance"], found[0]["download_id"]
    if not found:
        click.echo(f"discarr: no tracked download matches {wanted!r} (discarr check lists them)", err=True)
    else:
        click.echo(f"discarr: {several_downloads(found, wanted)}; name one by its id", err=True)
    sys.exit(2)


def _remove(settings: Settings, analysis: dict, **request: bool) -> list[dict]:
    """Send each poller the removals of its instances; the results of all of them."""
    import getpass
    import time

    from common.protocol import protection_query, removal_requests, unanswered
    # Kept since the analysis? The tracker says so now, and the poller skips it (SPEC 4.2).
    protected = _ask(settings, "tracker", "protection", protection_query(analysis["candidates"]))["protected"]
    requests = removal_requests(analysis, settings.poller_endpoint_for_clients,
                                requested_by=f"cli:{getpass.getuser()}", now=time.time(),
                                valid_for=settings.request_timeout_seconds, protected=protected, **request)
    results = []
    for endpoint, body in requests.items():
        try:  # a poller that does not answer fails its own downloads, never the others' results
            with RequestClient("poller", endpoint, settings.removal_wait_seconds, retries=0,
                               curve=settings.curve) as client:
                results.extend(client.request("remove", body)["results"])
        except (ServiceUnavailable, ServiceError) as exc:
            click.echo(f"discarr: {exc}", err=True)
            results.extend(unanswered(body, analysis.get("poller_names", {}).get(endpoint, endpoint)))
    return results
