"""`discarr doctor`: is this installation ready, and if not, what to do about it.

Plain functions, each returning `Check`s; the click command only renders them. Every
check runs with the settings the processes would load (the environment over `.env`).
No secret (API keys, passwords, the Discord token, CURVE secret keys) is ever put in
a check: the reasons are discarr's own words, and `run_checks` scrubs every secret
value from them once more before they are shown.
"""
from __future__ import annotations

import base64
import binascii
import getpass
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import requests

from common.http import ServiceHttpError, send
from common.protection import ProtectionRules
from common.settings import (ARR_KINDS, DISCORD_API_BASE, DISCORD_GATEWAY_URL, UNKNOWN_ITEMS_FLAG,
                             DownloadClientConfig, InstanceConfig, Settings, SettingsError, env_prefix,
                             load_settings)
from common.sockets import RequestClient, ServiceError, ServiceUnavailable
from common.torrent_clients import ClientError
from common.version import VERSION
from services.poller.arr_client import ArrClient, ArrError

APP_NAMES = {"sonarr": "Sonarr", "radarr": "Radarr", "lidarr": "Lidarr", "readarr": "Readarr"}
# What the bot needs in its channel: see it, post and edit the board, embeds, chart images, its own old board.
BOT_PERMISSIONS = ("view_channel", "send_messages", "embed_links", "attach_files", "read_message_history")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


# -- helpers ---------------------------------------------------------------------------


def safe_url(url: str) -> str:
    """The URL without any user:password@ part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _ago(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "uptime unknown"
    seconds = int(seconds)
    if seconds < 60:
        return f"up {seconds} s"
    if seconds < 3600:
        return f"up {seconds // 60} min"
    if seconds < 86400:
        return f"up {seconds // 3600} h {seconds % 3600 // 60} min"
    return f"up {seconds // 86400} d {seconds % 86400 // 3600} h"


def secrets_of(settings: Settings) -> list[str]:
    values = [instance.api_key for instance in settings.instances]
    values += [secret for client in settings.download_clients for secret in (client.password, client.api_key)]
    values.append(settings.discord_token or "")
    if settings.curve is not None:
        values += [settings.curve.server_secret, settings.curve.client_secret]
    return [value for value in values if value and len(value) >= 4]


def scrub(checks: list[Check], secrets: list[str]) -> list[Check]:
    """Every check with each secret value replaced by <hidden> (a last guard: none should be there)."""
    def clean(text: str) -> str:
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "<hidden>")
        return text
    return [Check(c.name, c.ok, clean(c.detail), clean(c.fix)) for c in checks]


# -- settings --------------------------------------------------------------------------


def check_settings(environ: Mapping[str, str] | None = None,
                   dotenv_path: str | None = ".env") -> tuple[Settings | None, Check]:
    try:
        settings = load_settings(environ, dotenv_path)
    except SettingsError as exc:
        return None, Check("settings", False, str(exc),
                           "correct that setting in the environment or in .env (.env.example lists every "
                           "setting with its default)")
    instances = ", ".join(i.name for i in settings.instances) or "none"
    clients = ", ".join(c.name for c in settings.download_clients) or "none"
    if not settings.instances:
        instances = "none here (fine on a host that runs no poller; a poller needs SONARR_API_KEY, ...)"
    return settings, Check("settings", True, f"loaded: *arr instances: {instances}; download clients: {clients}")


# -- *arr instances --------------------------------------------------------------------


class _ArrProblem(ServiceHttpError):
    pass


def _get(session: requests.Session, url: str, timeout: float, where: str, **params: Any) -> requests.Response:
    return send(session, "GET", url, timeout=timeout, where=where, error=_ArrProblem, params=params or None)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def check_instance(instance: InstanceConfig, timeout: float) -> Check:
    """Reachable, key accepted, the app it is configured as, its version, its queue readable."""
    prefix = env_prefix(instance.name)
    app = APP_NAMES[instance.kind]
    url = safe_url(instance.url)
    url_setting, key_setting = f"{prefix}_URL", f"{prefix}_API_KEY"
    session = requests.Session()
    session.headers.update({"X-Api-Key": instance.api_key, "Accept": "application/json"})
    root = f"{instance.url}/api/{instance.api_version}"
    try:
        try:
            status = _get(session, f"{root}/system/status", timeout, url)
        except _ArrProblem as exc:
            return Check(instance.name, False, exc.reason,
                         f"is {app} running and reachable from here? check {url_setting} "
                         f"(with its URL base, e.g. http://host:{urlsplit(ARR_KINDS[instance.kind][0]).port}/"
                         f"{instance.kind})")
        if status.status_code in (401, 403):
            return Check(instance.name, False,
                         f"{url} refused the API key: unauthorized (HTTP {status.status_code})",
                         f"set {key_setting} to the key in {app}: Settings > General > Security > API Key")
        if status.status_code == 404:
            return _not_found(session, instance, timeout, url, url_setting)
        body = _json_or_none(status) if status.status_code == 200 else None
        if not isinstance(body, dict) or not body.get("appName"):
            what = (f"HTTP {status.status_code}" if status.status_code != 200 else
                    status.headers.get("Content-Type", "unknown type").split(";")[0] + ", not an *arr status")
            return Check(instance.name, False,
                         f"{url}/api/{instance.api_version}/system/status answered {what}",
                         f"check {url_setting}: is it {app}'s address (a login page or proxy in front?)")
        name, version = str(body["appName"]), str(body.get("version", "unknown version"))
        if name.lower() != instance.kind:
            return Check(instance.name, False,
                         f"{url} is {name} {version}, but it is configured as a {app} ({url_setting})",
                         f"point {url_setting} at your {app}, or configure this {name} as "
                         f"{name.upper()}_URL and {name.upper()}_API_KEY")
        try:
            queue = _get(session, f"{root}/queue", timeout, url, page=1, pageSize=1,
                         **{UNKNOWN_ITEMS_FLAG[instance.kind]: "true"})
        except _ArrProblem as exc:
            return Check(instance.name, False, f"{name} {version}; queue: {exc.reason}",
                         f"is {app} overloaded? try again, or raise REQUEST_TIMEOUT_SECONDS")
        page = _json_or_none(queue) if queue.status_code == 200 else None
        total = page.get("totalRecords") if isinstance(page, dict) else None
        if isinstance(page, list):  # an old server without paging
            total = len(page)
        if isinstance(total, bool) or not isinstance(total, int):
            return Check(instance.name, False,
                         f"{name} {version}; its queue is not readable (HTTP {queue.status_code})",
                         f"look at {app}'s log (System > Logs); the poller needs GET /api/"
                         f"{instance.api_version}/queue")
        return Check(instance.name, True, f"{name} {version} at {url}; {total} queue records")
    finally:
        session.close()


def _not_found(session: requests.Session, instance: InstanceConfig, timeout: float, url: str,
               url_setting: str) -> Check:
    """No status at this API version: another kind of *arr (Lidarr/Readarr speak v1), or no *arr at all."""
    app = APP_NAMES[instance.kind]
    other = "v1" if instance.api_version == "v3" else "v3"
    try:
        response = _get(session, f"{instance.url}/api/{other}/system/status", timeout, url)
        body = _json_or_none(response) if response.status_code == 200 else None
    except _ArrProblem:
        body = None
    if isinstance(body, dict) and body.get("appName") and str(body["appName"]).lower() != instance.kind:
        name = str(body["appName"])
        return Check(instance.name, False,
                     f"{url} is {name} {body.get('version', '')}".rstrip()
                     + f", but it is configured as a {app} ({url_setting})",
                     f"point {url_setting} at your {app}, or configure this {name} as "
                     f"{name.upper()}_URL and {name.upper()}_API_KEY")
    return Check(instance.name, False,
                 f"{url} has no {app} API (HTTP 404 for /api/{instance.api_version}/system/status)",
                 f"check {url_setting}: host, port and URL base (e.g. http://host:8989/sonarr if {app} "
                 "runs under /sonarr)")


# -- download clients ------------------------------------------------------------------


def _caused_by_timeout(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, requests.Timeout) or "timed out" in type(exc).__name__.lower():
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


# kind -> (the Python package it is read with, the login it needs, the address it is asked at)
CLIENT_ACCESS = {
    "qbittorrent": ("qbittorrent-api", "{p}_USERNAME and {p}_PASSWORD (the Web UI login)", "Web UI"),
    "transmission": ("transmission-rpc", "{p}_USERNAME and {p}_PASSWORD (the RPC login)", "RPC"),
    "deluge": ("deluge-client", "{p}_USERNAME and {p}_PASSWORD (a user of deluged's auth file)",
               "daemon (deluged's port, 58846 by default, not the Web UI's)"),
    "nzbget": ("requests", "{p}_USERNAME and {p}_PASSWORD (Settings → Security → ControlUsername and "
                           "ControlPassword)", "Web UI"),
    "sabnzbd": ("requests", "{p}_API_KEY (Config → General → API Key)", "Web UI"),
}


def check_download_client(client: DownloadClientConfig, timeout: float) -> Check:
    prefix = env_prefix(client.name)
    url = safe_url(client.url)
    library, credentials, address = (text.format(p=prefix) for text in CLIENT_ACCESS[client.kind])
    try:
        if client.kind == "qbittorrent":
            version = _qbittorrent_version(client, timeout)
        elif client.kind == "transmission":
            version = _transmission_version(client, timeout)
        else:
            version = _client_version(client, timeout)
    except ImportError:
        return Check(client.name, False, f"cannot check it: the Python package {library} is not installed",
                     f"pip install {library} (in discarr's environment)")
    except _ClientProblem as problem:
        fix = {"unreachable": f"is it running and reachable from here? check {prefix}_URL",
               "unauthorized": f"check {credentials}",
               "bad_response": f"check {prefix}_URL: is it the client's {address} address?"}[problem.state]
        return Check(client.name, False, f"{url}: {problem.reason}", fix)
    return Check(client.name, True, f"{version} at {url}, logged in")


def _client_version(client: DownloadClientConfig, timeout: float) -> str:
    """A client read through discarr's own layer (Deluge, NZBGet, SABnzbd): its name and version."""
    from common.torrent_clients import DelugeApi
    from common.usenet_clients import NZBGetApi, SABnzbdApi

    kind, name = {"deluge": (DelugeApi, "Deluge"), "nzbget": (NZBGetApi, "NZBGet"),
                  "sabnzbd": (SABnzbdApi, "SABnzbd")}[client.kind]
    api = kind(client, timeout)
    try:
        if client.kind == "sabnzbd":
            api.queue()  # version answers without the key: the queue needs it
        return f"{name} {api.version()}"
    except ClientError as exc:
        raise _ClientProblem(exc.state, exc.reason.removeprefix(f"{api.where} ")) from None
    finally:
        api.close()


class _ClientProblem(Exception):
    def __init__(self, state: str, reason: str) -> None:
        super().__init__(reason)
        self.state, self.reason = state, reason


def _qbittorrent_version(client: DownloadClientConfig, timeout: float) -> str:
    import qbittorrentapi

    api = qbittorrentapi.Client(host=client.url, username=client.username or None,
                                password=client.password or None, REQUESTS_ARGS={"timeout": timeout},
                                DISABLE_LOGGING_DEBUG_OUTPUT=True)
    try:
        version = api.app_version()
        web_api = api.app_web_api_version()
    except qbittorrentapi.LoginFailed:
        raise _ClientProblem("unauthorized", "qBittorrent refused the login (wrong username or password)") from None
    except (qbittorrentapi.Unauthorized401Error, qbittorrentapi.Forbidden403Error) as exc:
        code = 401 if isinstance(exc, qbittorrentapi.Unauthorized401Error) else 403
        raise _ClientProblem("unauthorized", f"qBittorrent refused access (HTTP {code}): wrong login, or this "
                                             "address is banned after too many failed logins") from None
    except qbittorrentapi.HTTPError as exc:
        code = getattr(exc, "http_status_code", None) or "error"
        raise _ClientProblem("bad_response", f"answered HTTP {code}: not a qBittorrent Web API") from None
    except qbittorrentapi.APIConnectionError as exc:
        if _caused_by_timeout(exc):
            raise _ClientProblem("unreachable", f"no answer within {timeout:g}s") from None
        raise _ClientProblem("unreachable", "cannot connect") from None
    except (qbittorrentapi.APIError, ValueError) as exc:
        raise _ClientProblem("bad_response", f"not a qBittorrent Web API ({type(exc).__name__})") from None
    finally:
        try:
            api.auth_log_out()
        except Exception:  # noqa: BLE001 - a failed logout says nothing about the client's health
            pass
    return f"qBittorrent {version} (Web API {web_api})"


def _transmission_version(client: DownloadClientConfig, timeout: float) -> str:
    import transmission_rpc

    parts = urlsplit(client.url)
    try:
        api = transmission_rpc.Client(
            protocol=parts.scheme, host=parts.hostname or "127.0.0.1",
            port=parts.port or (443 if parts.scheme == "https" else 80), path=parts.path or "/transmission/rpc",
            username=client.username or None, password=client.password or None, timeout=timeout)
        session = api.get_session()
    except transmission_rpc.TransmissionAuthError:
        raise _ClientProblem("unauthorized", "Transmission refused the login (wrong username or password)") from None
    except transmission_rpc.TransmissionTimeoutError:
        raise _ClientProblem("unreachable", f"no answer within {timeout:g}s") from None
    except transmission_rpc.TransmissionConnectError:
        raise _ClientProblem("unreachable", "cannot connect") from None
    except (transmission_rpc.TransmissionError, ValueError) as exc:
        raise _ClientProblem("bad_response", f"not a Transmission RPC endpoint ({type(exc).__name__})") from None
    return f"Transmission {session.version} (RPC {session.rpc_version})"


# -- tracker and pollers ---------------------------------------------------------------


def _start_hint(process: str) -> str:
    return (f"start it: `discarr {process}` (or `honcho start {process}`, `systemctl start discarr-{process}-1`, "
            f"`docker compose up -d {process}`)")


def _ping(service: str, endpoint: str, settings: Settings) -> dict[str, Any]:
    with RequestClient(service, endpoint, settings.request_timeout_seconds, retries=0,
                       curve=settings.curve) as client:
        return client.request("ping")


def _answered(name: str, service: str, endpoint: str, answer: dict[str, Any]) -> Check:
    if answer.get("service") != service:
        return Check(name, False, f"{answer.get('service') or 'something else'} answers at {endpoint}, "
                                  f"not the {service}",
                     "each process needs its own endpoint: check TRACKER_*_ENDPOINT and POLLER_COMMAND_ENDPOINT")
    version = answer.get("version")
    words = f"answers at {endpoint}: discarr {version or '(older than 0.2, no version)'}, {_ago(answer.get('uptime_s'))}"
    if version and version != VERSION:
        words += f" (this doctor is {VERSION})"
    return Check(name, True, words)


def check_tracker(settings: Settings) -> tuple[Check, bool]:
    endpoint = settings.tracker_query_endpoint
    try:
        answer = _ping("tracker", endpoint, settings)
    except ServiceUnavailable:
        return Check("tracker", False, f"no answer at {endpoint} within {settings.request_timeout_seconds:g}s",
                     _start_hint("tracker") + "; TRACKER_QUERY_ENDPOINT must be the one it listens on"), False
    except ServiceError as exc:
        return Check("tracker", False, f"answered an error at {endpoint}: {exc}",
                     "look at the tracker's log; is something else listening there?"), False
    check = _answered("tracker", "tracker", endpoint, answer)
    return check, check.ok


def poller_endpoints(settings: Settings, tracker_up: bool) -> tuple[dict[str, str], str]:
    """{endpoint: poller name}: this host's poller, and every poller the tracker knows."""
    endpoints = {settings.poller_endpoint_for_clients: settings.poller_name}
    if not tracker_up:
        return endpoints, ""
    try:
        with RequestClient("tracker", settings.tracker_query_endpoint, settings.request_timeout_seconds,
                           curve=settings.curve) as client:
            analysis = client.request("analyze", {"include_import_blocked": False})
    except (ServiceUnavailable, ServiceError) as exc:
        return endpoints, f"the tracker did not list its pollers: {exc}"
    names = analysis.get("poller_names") or {}
    known = {endpoint: names.get(endpoint, endpoint) for endpoint in (analysis.get("pollers") or {}).values()}
    known.update(names)
    if known and not settings.instances and settings.poller_endpoint_for_clients not in known:
        endpoints = {}  # a host without *arrs (tracker and bot only): no poller is expected at the default endpoint
    endpoints.update(known)
    return endpoints, ""


def check_pollers(settings: Settings, tracker_up: bool) -> list[Check]:
    endpoints, problem = poller_endpoints(settings, tracker_up)
    checks = []
    for endpoint, poller in endpoints.items():
        name = "poller" if poller == "poller" else f"poller {poller}"
        try:
            checks.append(_answered(name, "poller", endpoint, _ping("poller", endpoint, settings)))
        except ServiceUnavailable:
            checks.append(Check(name, False,
                                f"no answer at {endpoint} within {settings.request_timeout_seconds:g}s",
                                _start_hint("poller") + " on the host that reaches the *arrs; POLLER_COMMAND_ENDPOINT "
                                "(POLLER_ADVERTISED_ENDPOINT when it binds 0.0.0.0) must be where it listens"))
        except ServiceError as exc:
            checks.append(Check(name, False, f"answered an error at {endpoint}: {exc}",
                                "look at the poller's log"))
    if problem:
        checks.append(Check("pollers", False, problem, "look at the tracker's log"))
    return checks


# -- data paths ------------------------------------------------------------------------


def data_directories(settings: Settings) -> dict[Path, list[str]]:
    """{directory: the settings whose files live there}."""
    paths = {"TRACKER_STATE_FILE": settings.tracker_state_file, "AUDIT_LOG": settings.audit_log,
             "BOT_STATE_FILE": settings.bot_state_file}
    stats_db = getattr(settings, "stats_db", None)
    if stats_db:
        paths["STATS_DB"] = stats_db
    directories: dict[Path, list[str]] = {}
    for setting, value in paths.items():
        directories.setdefault(Path(os.path.abspath(Path(value).expanduser())).parent, []).append(setting)
    return directories


def check_directory(directory: Path, settings_named: list[str]) -> Check:
    name = f"data {directory}"
    who = ", ".join(settings_named)
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name for this uid (a container): say the uid
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "this user"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".discarr-doctor-", delete=True) as probe:
            probe.write(b"discarr doctor\n")
            probe.flush()
            os.fsync(probe.fileno())
    except (FileExistsError, NotADirectoryError):
        return Check(name, False, f"cannot be a directory: a file is in the way ({who})",
                     f"move that file away, or set {settings_named[0]} to a file in a writable directory")
    except PermissionError:
        return Check(name, False, f"not writable by {user} ({who})",
                     f"give {user} write access (chown/chmod), or point {who} elsewhere")
    except OSError as exc:
        return Check(name, False, f"cannot write there: {exc.strerror or type(exc).__name__} ({who})",
                     "free some space or remount it read-write, or point these settings elsewhere")
    return Check(name, True, f"writable by {user} ({who})")


# -- Discord ---------------------------------------------------------------------------


def bot_permissions() -> int:
    import discord
    return discord.Permissions(**{name: True for name in BOT_PERMISSIONS}).value


def invite_url(application_id: str) -> str:
    return (f"https://discord.com/oauth2/authorize?client_id={application_id}"
            f"&scope=bot+applications.commands&permissions={bot_permissions()}")


def token_application_id(token: str) -> str | None:
    """The application (bot user) id a well-formed bot token starts with; None if it is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not all(re.fullmatch(r"[A-Za-z0-9_-]+", part) for part in parts):
        return None
    try:
        first = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return first if re.fullmatch(r"[0-9]{15,22}", first) else None


def check_discord(settings: Settings) -> list[Check]:
    token = settings.discord_token
    if not token:
        return [Check("discord", True, "no DISCORD_TOKEN: the bot shows the board in the terminal")]
    application_id = token_application_id(token)
    if application_id is None:
        return [Check("discord", False,
                      "DISCORD_TOKEN is not a bot token (expected three dot-separated parts, the first being "
                      "the bot's id in base64)",
                      "copy it again: Developer Portal > your application > Bot > Reset Token (not the client "
                      "secret, not the public key)")]
    checks = [Check("discord", True,
                    f"token well-formed for application {application_id} (not checked with Discord); "
                    f"invite: {invite_url(application_id)}")]
    if (settings.discord_api_base, settings.discord_gateway_url) != (DISCORD_API_BASE, DISCORD_GATEWAY_URL):
        checks.append(Check("discord endpoints", True, f"REST calls go to {safe_url(settings.discord_api_base)} "
                                                       f"(DISCORD_API_BASE), the gateway is "
                                                       f"{safe_url(settings.discord_gateway_url)} "
                                                       "(DISCORD_GATEWAY_URL): not Discord's own"))
    if settings.discord_channel_id is None:
        checks.append(Check("discord channel", False, "DISCORD_CHANNEL_ID is not set: the board has nowhere to go",
                            "in Discord: User Settings > Advanced > Developer Mode on, then right-click the "
                            "channel > Copy Channel ID, and set DISCORD_CHANNEL_ID"))
    return checks


# -- protection ------------------------------------------------------------------------


def check_protection(settings: Settings, tracker_up: bool) -> list[Check]:
    """The protection rules in force and how many downloads each protects now (SPEC 4.2); a PROTECT_TAGS
    name that no *arr has is a warning: that rule protects nothing."""
    rules = ProtectionRules.from_settings(settings).describe()
    if not rules:
        return [Check("protection", True, "no protection rules (PROTECT_TAGS, PROTECT_CLIENT_TAGS, PROTECT_INDEXERS, "
                                          "PROTECT_TITLES); /keep and discarr keep keep a download by hand")]
    protected: list[str] = []
    if tracker_up:
        try:
            protected = [str(item.get("protected_by") or "").casefold() for item in _tracked(settings)]
        except (ServiceUnavailable, ServiceError):
            tracker_up = False
    counts = [f"{rule} protects {protected.count(rule.casefold())} now" if tracker_up else rule for rule in rules]
    kept = sum(why.startswith("kept by") for why in protected)
    detail = "; ".join(counts) + (f"; {kept} kept by hand" if tracker_up else
                                  " (the tracker did not answer: how many each protects now is not known)")
    checks = [Check("protection", True, detail)]
    if settings.protect_tags and settings.instances:
        known, unread = set(), []
        for instance in settings.instances:
            client = ArrClient(instance, settings.request_timeout_seconds)
            try:
                known |= {label.casefold() for label in client.tags().values()}
            except ArrError:
                unread.append(instance.name)
            finally:
                client.close()
        missing = [tag for tag in settings.protect_tags if tag not in known]
        if missing and not unread:
            checks.append(Check("protection tags", True,
                                f"warning: no *arr has the tag{'s' if len(missing) > 1 else ''} "
                                f"{', '.join(f'`{tag}`' for tag in missing)} (PROTECT_TAGS): that rule protects "
                                "nothing; create it in Sonarr/Radarr (Settings > Tags) and put it on the series or "
                                "movie, or correct PROTECT_TAGS"))
    return checks


def _tracked(settings: Settings) -> list[dict[str, Any]]:
    """Every download the tracker tracks now (its "check" answer, every page)."""
    from common.protocol import check_page, merge_check
    with RequestClient("tracker", settings.tracker_query_endpoint, settings.request_timeout_seconds,
                       curve=settings.curve) as client:
        check, offset = None, 0
        while offset is not None:
            check, offset = merge_check(check, client.request("check", check_page(offset)))
    return check["downloads"]


# -- CURVE -----------------------------------------------------------------------------


def check_curve(settings: Settings) -> Check:
    if settings.curve is None:
        return Check("curve", True, "no CURVE keys: every endpoint stays on this machine (loopback or ipc)")
    import zmq
    if not zmq.has("curve"):
        return Check("curve", False, "this pyzmq/libzmq has no CURVE support",
                     "install pyzmq from PyPI (its wheels include libsodium/CURVE)")
    curve = settings.curve
    for role, public, secret in (("SERVER", curve.server_public, curve.server_secret),
                                 ("CLIENT", curve.client_public, curve.client_secret)):
        try:
            derived = zmq.curve_public(secret.encode())
        except (zmq.ZMQError, ValueError):
            derived = b""
        if derived != public.encode():
            return Check("curve", False, f"CURVE_{role}_SECRET_KEY does not match CURVE_{role}_PUBLIC_KEY",
                         "run `discarr keys generate` once and put the same four lines in every host's .env")
    if curve.server_public == curve.client_public:
        return Check("curve", False, "the server and client keys are the same pair",
                     "run `discarr keys generate`: it makes two pairs")
    return Check("curve", True, "all four CURVE keys set, each secret key matches its public key")


# -- all of it -------------------------------------------------------------------------


def run_checks(environ: Mapping[str, str] | None = None, dotenv_path: str | None = ".env") -> list[Check]:
    """Every check, in the order they are shown."""
    settings, settings_check = check_settings(environ, dotenv_path)
    if settings is None:
        return [settings_check]
    checks = [settings_check]
    timeout = settings.request_timeout_seconds
    work: list[Callable[[], Check]] = [lambda i=i: check_instance(i, timeout) for i in settings.instances]
    work += [lambda c=c: check_download_client(c, timeout) for c in settings.download_clients]
    with ThreadPoolExecutor(max_workers=8) as pool:
        http_checks = pool.map(lambda job: job(), work)
        tracker, tracker_up = check_tracker(settings)
        checks += list(http_checks)
    checks.append(tracker)
    checks += check_pollers(settings, tracker_up)
    checks += [check_directory(directory, names) for directory, names in data_directories(settings).items()]
    checks += check_protection(settings, tracker_up)
    checks += check_discord(settings)
    checks.append(check_curve(settings))
    return scrub(checks, secrets_of(settings))


def report(checks: list[Check]) -> dict[str, Any]:
    """The `--json` answer."""
    return {"ok": all(check.ok for check in checks), "version": VERSION,
            "checks": [asdict(check) for check in checks]}


def render_text(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"    fix: {check.fix}")
    failed = sum(not check.ok for check in checks)
    lines.append(f"discarr {VERSION}: " + (f"{failed} of {len(checks)} checks failed" if failed
                                           else f"all {len(checks)} checks passed"))
    return "\n".join(lines)
