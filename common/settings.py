"""Settings from the environment and `.env` (SPEC section 2).

Every process calls `load_settings()` once at start. A bad value raises
`SettingsError` whose message is one line naming the setting and the value;
the CLI prints it and exits, never a traceback. Secrets are never echoed.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from dotenv import dotenv_values

# kind -> (default URL, API version path)
ARR_KINDS: dict[str, tuple[str, str]] = {
    "sonarr": ("http://localhost:8989", "v3"),
    "radarr": ("http://localhost:7878", "v3"),
    "lidarr": ("http://localhost:8686", "v1"),
    "readarr": ("http://localhost:8787", "v1"),
}

# kind -> its query flag for queue items matched to no series, movie, artist or author (each *arr names its own)
UNKNOWN_ITEMS_FLAG: dict[str, str] = {
    "sonarr": "includeUnknownSeriesItems", "radarr": "includeUnknownMovieItems",
    "lidarr": "includeUnknownArtistItems", "readarr": "includeUnknownAuthorItems",
}

# kind -> default URL of a download client's API
CLIENT_KINDS: dict[str, str] = {
    "qbittorrent": "http://localhost:8080",
    "transmission": "http://localhost:9091/transmission/rpc",
    "deluge": "deluge://localhost:58846",
    "nzbget": "http://localhost:6789",
    "sabnzbd": "http://localhost:8080",
}
USENET_CLIENTS = ("nzbget", "sabnzbd")
DELUGE_PORT = 58846  # deluged's RPC port: Deluge's daemon, not its Web UI
CLEANUP_PRIVATE_CHOICES = ("keep", "remove")

SECRET_SETTINGS = ("DISCORD_TOKEN",)

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg"
# Discord rate-limits message edits (per channel, shared by the board, its warnings, /check and page turns).
DISCORD_MIN_CHECK_INTERVAL = 30.0


class SettingsError(ValueError):
    """A setting that cannot be used; str() is one line fit for the user."""


@dataclass(frozen=True)
class InstanceConfig:
    name: str
    kind: str
    url: str
    api_key: str = field(repr=False)

    @property
    def api_version(self) -> str:
        return ARR_KINDS[self.kind][1]


@dataclass(frozen=True)
class DownloadClientConfig:
    """A download client the poller asks for its own figures (optional). Deluge's `url` is
    deluge://host:port (its daemon's RPC); SABnzbd's `api_key` is its API key."""

    name: str
    kind: str
    url: str
    username: str = ""
    password: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)

    @property
    def protocol(self) -> str:
        """What it downloads: "usenet" or "torrent"."""
        return "usenet" if self.kind in USENET_CLIENTS else "torrent"


@dataclass(frozen=True)
class CurveKeys:
    """CurveZMQ keys (Z85): every socket encrypts, and servers accept only the client key."""

    server_public: str
    server_secret: str = field(repr=False)
    client_public: str
    client_secret: str = field(repr=False)


CURVE_SETTINGS = {"CURVE_SERVER_PUBLIC_KEY": "server_public", "CURVE_SERVER_SECRET_KEY": "server_secret",
                  "CURVE_CLIENT_PUBLIC_KEY": "client_public", "CURVE_CLIENT_SECRET_KEY": "client_secret"}


@dataclass(frozen=True)
class Settings:
    instances: tuple[InstanceConfig, ...] = ()
    download_clients: tuple[DownloadClientConfig, ...] = ()
    curve: CurveKeys | None = None
    discord_token: str | None = field(default=None, repr=False)
    discord_channel_id: int | None = None
    discord_admin_role_id: int | None = None
    # Where the bot talks to Discord: its REST API and its gateway (a proxy, or the tests' stand-in).
    discord_api_base: str = DISCORD_API_BASE
    discord_gateway_url: str = DISCORD_GATEWAY_URL
    poll_interval_seconds: float = 30.0
    check_interval: float = 300.0
    stuck_threshold_minutes: float = 120.0
    min_progress_change: float = 1.0
    min_size_change: float = 104857600.0
    progress_history_hours: float = 4.0
    max_snapshots_per_download: int = 50
    cleanup_blocklist: bool = True
    cleanup_private: str = "keep"
    cleanup_usenet_failed: bool = False  # cleanup also offers usenet clients' failed history no *arr queues
    tracker_state_file: str = "data/tracker-state.msgpack"
    tracker_checkpoint_seconds: float = 60.0
    audit_log: str = "data/removals.jsonl"
    bot_state_file: str = "data/bot-state.json"
    tracker_ingest_endpoint: str = "tcp://127.0.0.1:5555"
    tracker_query_endpoint: str = "tcp://127.0.0.1:5556"
    poller_command_endpoint: str = "tcp://127.0.0.1:5557"
    poller_name: str = "poller"
    poller_advertised_endpoint: str | None = None  # where bots reach this poller; default: its command endpoint
    request_timeout_seconds: float = 5.0
    removal_timeout_seconds: float = 60.0
    arr_refresh_seconds: float = 60.0
    slow_max_eta_hours: float = 72.0
    auto_cleanup: tuple[str, ...] = ()  # categories removed without a human (SPEC 4.1); empty: off
    auto_cleanup_dry_run: bool = False
    auto_cleanup_confirmations: int = 2
    auto_cleanup_max_per_hour: int = 10
    stats_db: str = "data/discarr.sqlite3"
    # Protection (SPEC 4.2): what is never removed, and the rules each instance overrides.
    protect_tags: tuple[str, ...] = ()         # *arr tags (their labels) on the series, movie, artist or author
    protect_client_tags: tuple[str, ...] = ()  # the download client's tags, labels or categories
    protect_indexers: tuple[str, ...] = ()
    protect_titles: tuple[re.Pattern, ...] = ()
    overrides: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # (env prefix, ((field, value), ...))
    stats_retention_days: float = 365.0
    simarr_port: int = 8989
    simarr_host: str = "127.0.0.1"  # where simarr listens; beyond loopback it serves any host name (cli.simarr)
    log_level: str = "INFO"

    @property
    def poller_endpoint_for_clients(self) -> str:
        return self.poller_advertised_endpoint or self.poller_command_endpoint

    @property
    def stuck_threshold_seconds(self) -> float:
        return self.stuck_threshold_minutes * 60.0

    @property
    def removal_wait_seconds(self) -> float:
        """How long a sender waits for a poller's answer to a removal request: the poller's own budget
        (REMOVAL_TIMEOUT_SECONDS, its DELETEs included) and the time the messages take."""
        return self.removal_timeout_seconds + self.request_timeout_seconds

    @property
    def removal_effect_seconds(self) -> float:
        """How long after a removal request its DELETEs may still take effect: the request's own time,
        then an *arr that did not answer may still carry a DELETE out (SPEC section 4)."""
        return self.removal_wait_seconds + self.removal_timeout_seconds

    @property
    def effective_check_interval(self) -> float:
        """CHECK_INTERVAL, but with a Discord token at least DISCORD_MIN_CHECK_INTERVAL: a faster board
        would only collect 429s from Discord. The terminal board has no such limit (tests use fractions)."""
        if self.discord_token:
            return max(self.check_interval, DISCORD_MIN_CHECK_INTERVAL)
        return self.check_interval

    def for_instance(self, instance: str) -> "Settings":
        """These settings with an instance's overrides in force (its <INSTANCE>_STUCK_THRESHOLD_MINUTES and the
        others of OVERRIDABLE): the thresholds, automatic cleanup and its cap it is judged by."""
        changed = dict(dict(self.overrides).get(env_prefix(instance), ()))
        return replace(self, **changed) if changed else self

    def thresholds(self) -> dict:
        """The detection settings, as shown by `/progress` and `--json`."""
        return {
            "stuck_threshold_minutes": self.stuck_threshold_minutes,
            "min_progress_change": self.min_progress_change,
            "min_size_change": self.min_size_change,
            "progress_history_hours": self.progress_history_hours,
            "max_snapshots_per_download": self.max_snapshots_per_download,
            "poll_interval_seconds": self.poll_interval_seconds,
            "arr_refresh_seconds": self.arr_refresh_seconds,
            "slow_max_eta_hours": self.slow_max_eta_hours,
        }


def _bad(name: str, value: str, why: str) -> SettingsError:
    secret = name in SECRET_SETTINGS or name.endswith(("_API_KEY", "_SECRET_KEY", "_PASSWORD"))
    shown = "<hidden>" if secret else repr(value)
    return SettingsError(f"setting {name}={shown} is invalid: {why}")


def _number(name: str, value: str, minimum: float = 0.0, strict: bool = True) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, "expected a number (fractions such as 0.1 are allowed)") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise _bad(name, value, "expected a finite number")
    if number < minimum or (strict and number == minimum):
        raise _bad(name, value, f"must be {'greater than' if strict else 'at least'} {minimum:g}")
    return number


def _positive(name: str, value: str) -> float:
    return _number(name, value)


def _non_negative(name: str, value: str) -> float:
    return _number(name, value, strict=False)


def _port(name: str, value: str) -> int:
    number = _number(name, value, minimum=1, strict=False)
    if number != int(number) or number > 65535:
        raise _bad(name, value, "expected a port number 1-65535")
    return int(number)


def _snowflake(name: str, value: str) -> int:
    if not value.isdigit():
        raise _bad(name, value, "expected a Discord id (digits only)")
    return int(value)


def _boolean(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise _bad(name, value, "expected true or false")


def _endpoint(name: str, value: str) -> str:
    if not re.fullmatch(r"(tcp://[^\s:]+:\d+|ipc://\S+|inproc://\S+)", value):
        raise _bad(name, value, "expected a ZeroMQ endpoint such as tcp://127.0.0.1:5555")
    return value


def _name(name: str, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
        raise _bad(name, value, "expected a short name (letters, digits, . _ -)")
    return value


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _bad(name, value, "expected a URL with scheme, such as http://localhost:8989")
    return value.rstrip("/")


def _listen_host(name: str, value: str) -> str:
    """An address to bind: IPv4 (simarr's HTTP server is IPv4 only) or a host name; no scheme, no port."""
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        pass
    label = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    if re.fullmatch(rf"{label}(\.{label})*", value) and not value.replace(".", "").isdigit():
        return value
    raise _bad(name, value, "expected an IPv4 address or a host name to listen on, such as 127.0.0.1 or 0.0.0.0")


def _websocket_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise _bad(name, value, "expected a websocket URL, such as wss://gateway.discord.gg")
    return value


def _cleanup_private(name: str, value: str) -> str:
    choice = value.strip().lower()
    if choice not in CLEANUP_PRIVATE_CHOICES:
        raise _bad(name, value, "expected keep (remove from the *arr only, keep seeding) or remove")
    return choice


def _words(name: str, value: str) -> tuple[str, ...]:
    """A comma list of names, compared without regard to case."""
    return tuple(dict.fromkeys(part.strip().casefold() for part in value.split(",") if part.strip()))


def _patterns(name: str, value: str) -> tuple[re.Pattern, ...]:
    """Regular expressions, separated by commas outside their brackets and braces (so `S\\d{2,3}` stays one),
    matched anywhere in a title, without regard to case."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(value):
        if char in "([{" and (index == 0 or value[index - 1] != "\\"):
            depth += 1
        elif char in ")]}" and (index == 0 or value[index - 1] != "\\"):
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(value[start:index])
            start = index + 1
    parts.append(value[start:])
    compiled = []
    for part in filter(None, (part.strip() for part in parts)):
        try:
            compiled.append(re.compile(part, re.IGNORECASE))
        except re.error as exc:
            raise _bad(name, value, f"{part!r} is not a regular expression ({exc})") from None
    return tuple(compiled)


AUTO_CLEANUP_CATEGORIES = ("stuck", "inactive", "slow", "import_blocked")


def _categories(name: str, value: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [part for part in chosen if part not in AUTO_CLEANUP_CATEGORIES]
    if unknown:
        raise _bad(name, value, f"{unknown[0]!r} is not a category; choose from {', '.join(AUTO_CLEANUP_CATEGORIES)}")
    return chosen


def _whole(minimum: int) -> Callable[[str, str], int]:
    def parse(name: str, value: str) -> int:
        number = _number(name, value, minimum=minimum, strict=False)
        if number != int(number):
            raise _bad(name, value, "expected a whole number")
        return int(number)
    return parse


def _log_level(name: str, value: str) -> str:
    level = value.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _bad(name, value, "expected DEBUG, INFO, WARNING or ERROR")
    return level


# setting name -> (Settings field, parser)
_SCALARS: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "DISCORD_CHANNEL_ID": ("discord_channel_id", _snowflake),
    "DISCORD_ADMIN_ROLE_ID": ("discord_admin_role_id", _snowflake),
    "DISCORD_API_BASE": ("discord_api_base", _url),
    "DISCORD_GATEWAY_URL": ("discord_gateway_url", _websocket_url),
    "POLL_INTERVAL_SECONDS": ("poll_interval_seconds", _positive),
    "CHECK_INTERVAL": ("check_interval", _positive),
    "STUCK_THRESHOLD_MINUTES": ("stuck_threshold_minutes", _positive),
    "MIN_PROGRESS_CHANGE": ("min_progress_change", _non_negative),
    "MIN_SIZE_CHANGE": ("min_size_change", _non_negative),
    "PROGRESS_HISTORY_HOURS": ("progress_history_hours", _positive),
    "MAX_SNAPSHOTS_PER_DOWNLOAD": ("max_snapshots_per_download", _whole(2)),
    "CLEANUP_BLOCKLIST": ("cleanup_blocklist", _boolean),
    "CLEANUP_PRIVATE": ("cleanup_private", _cleanup_private),
    "CLEANUP_USENET_FAILED": ("cleanup_usenet_failed", _boolean),
    "TRACKER_STATE_FILE": ("tracker_state_file", lambda n, v: v),
    "TRACKER_CHECKPOINT_SECONDS": ("tracker_checkpoint_seconds", _positive),
    "AUDIT_LOG": ("audit_log", lambda n, v: v),
    "BOT_STATE_FILE": ("bot_state_file", lambda n, v: v),
    "TRACKER_INGEST_ENDPOINT": ("tracker_ingest_endpoint", _endpoint),
    "TRACKER_QUERY_ENDPOINT": ("tracker_query_endpoint", _endpoint),
    "POLLER_COMMAND_ENDPOINT": ("poller_command_endpoint", _endpoint),
    "POLLER_NAME": ("poller_name", _name),
    "POLLER_ADVERTISED_ENDPOINT": ("poller_advertised_endpoint", _endpoint),
    "REQUEST_TIMEOUT_SECONDS": ("request_timeout_seconds", _positive),
    "REMOVAL_TIMEOUT_SECONDS": ("removal_timeout_seconds", _positive),
    "ARR_REFRESH_SECONDS": ("arr_refresh_seconds", _non_negative),
    "SLOW_MAX_ETA_HOURS": ("slow_max_eta_hours", _non_negative),
    "AUTO_CLEANUP": ("auto_cleanup", _categories),
    "AUTO_CLEANUP_DRY_RUN": ("auto_cleanup_dry_run", _boolean),
    "AUTO_CLEANUP_CONFIRMATIONS": ("auto_cleanup_confirmations", _whole(1)),
    "AUTO_CLEANUP_MAX_PER_HOUR": ("auto_cleanup_max_per_hour", _whole(1)),
    "STATS_DB": ("stats_db", lambda n, v: v),
    "PROTECT_TAGS": ("protect_tags", _words),
    "PROTECT_CLIENT_TAGS": ("protect_client_tags", _words),
    "PROTECT_INDEXERS": ("protect_indexers", _words),
    "PROTECT_TITLES": ("protect_titles", _patterns),
    "STATS_RETENTION_DAYS": ("stats_retention_days", _positive),
    "SIMARR_PORT": ("simarr_port", _port),
    "SIMARR_HOST": ("simarr_host", _listen_host),
    "LOG_LEVEL": ("log_level", _log_level),
}


def env_prefix(name: str) -> str:
    """The settings prefix of an instance or client name: "radarr-4k" -> RADARR_4K."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


# What each instance may override as <INSTANCE>_<SETTING> (SPEC 4.2): a 4K Radarr whose downloads crawl.
OVERRIDABLE = ("STUCK_THRESHOLD_MINUTES", "MIN_PROGRESS_CHANGE", "MIN_SIZE_CHANGE", "SLOW_MAX_ETA_HOURS",
               "AUTO_CLEANUP", "AUTO_CLEANUP_MAX_PER_HOUR")
_OVERRIDE = re.compile(rf"([A-Z0-9][A-Z0-9_]*?)_({'|'.join(OVERRIDABLE)})")


def _overrides(env: Mapping[str, str]) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """Every <INSTANCE>_<SETTING> of OVERRIDABLE, checked as the setting itself is, by the instance's
    name as an environment prefix (any instance: this host may not know the others' API keys)."""
    found: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        match = _OVERRIDE.fullmatch(name)
        if match and raw.strip():
            attr, parse = _SCALARS[match.group(2)]
            found.setdefault(match.group(1), {})[attr] = parse(name, raw.strip())
    return tuple((prefix, tuple(sorted(values.items()))) for prefix, values in sorted(found.items()))


def _instances(env: Mapping[str, str]) -> tuple[InstanceConfig, ...]:
    """The four standard instances, plus any named in EXTRA_INSTANCES.

    EXTRA_INSTANCES="radarr4k,sonarr-anime" adds instances whose settings are
    RADARR4K_URL / RADARR4K_API_KEY / RADARR4K_KIND (the kind defaults to the
    standard kind the name starts with).
    """
    instances = []
    for kind, (default_url, _) in ARR_KINDS.items():
        key = env.get(f"{kind.upper()}_API_KEY", "").strip()
        if key:
            url = _url(f"{kind.upper()}_URL", env.get(f"{kind.upper()}_URL", "").strip() or default_url)
            instances.append(InstanceConfig(kind, kind, url, key))
    extra = env.get("EXTRA_INSTANCES", "").strip()
    for name in filter(None, (part.strip() for part in extra.split(","))):
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name) or name in ARR_KINDS:
            raise _bad("EXTRA_INSTANCES", extra, f"{name!r} must be a new lowercase name (letters, digits, - or _)")
        prefix = env_prefix(name)
        kind = env.get(f"{prefix}_KIND", "").strip().lower() or next(
            (k for k in ARR_KINDS if name.startswith(k)), "")
        if kind not in ARR_KINDS:
            raise _bad(f"{prefix}_KIND", kind, "expected sonarr, radarr, lidarr or readarr")
        url = env.get(f"{prefix}_URL", "").strip()
        if not url:
            raise _bad(f"{prefix}_URL", url, f"instance {name} needs a URL")
        key = env.get(f"{prefix}_API_KEY", "").strip()
        if not key:
            raise _bad(f"{prefix}_API_KEY", "", f"instance {name} needs an API key")
        instances.append(InstanceConfig(name, kind, _url(f"{prefix}_URL", url), key))
    return tuple(instances)


def _download_clients(env: Mapping[str, str]) -> tuple[DownloadClientConfig, ...]:
    """QBITTORRENT_URL, TRANSMISSION_URL, DELUGE_URL (or DELUGE_HOST), NZBGET_URL and SABNZBD_URL (a client
    is configured when its URL is set), plus any named in EXTRA_DOWNLOAD_CLIENTS, with NAME_URL,
    NAME_USERNAME, NAME_PASSWORD (SABnzbd: NAME_API_KEY) and NAME_KIND (the kind defaults to the one the
    name starts with)."""
    names = [kind for kind in CLIENT_KINDS
             if env.get(f"{kind.upper()}_URL", "").strip() or env.get(f"{kind.upper()}_HOST", "").strip()]
    extra = env.get("EXTRA_DOWNLOAD_CLIENTS", "").strip()
    for name in filter(None, (part.strip() for part in extra.split(","))):
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name) or name in CLIENT_KINDS or name in names:
            raise _bad("EXTRA_DOWNLOAD_CLIENTS", extra,
                       f"{name!r} must be a new lowercase name (letters, digits, - or _)")
        names.append(name)
    clients = []
    for name in names:
        prefix = env_prefix(name)
        kind = env.get(f"{prefix}_KIND", "").strip().lower() or next(
            (k for k in CLIENT_KINDS if name.startswith(k[:4])), "")
        if kind not in CLIENT_KINDS:
            raise _bad(f"{prefix}_KIND", kind, f"expected one of {', '.join(CLIENT_KINDS)}")
        url = _deluge_url(env, prefix, name) if kind == "deluge" else _client_url(env, prefix, name)
        if kind == "transmission" and urlsplit(url).path in ("", "/"):
            url += "/transmission/rpc"  # Transmission's RPC path, when only host and port were given
        api_key = env.get(f"{prefix}_API_KEY", "").strip()
        if kind == "sabnzbd" and not api_key:
            raise _bad(f"{prefix}_API_KEY", "", f"download client {name} needs SABnzbd's API key "
                                                "(Config → General → API Key)")
        clients.append(DownloadClientConfig(name, kind, url,
                                            env.get(f"{prefix}_USERNAME", "").strip(),
                                            env.get(f"{prefix}_PASSWORD", ""), api_key))
    return tuple(clients)


def _client_url(env: Mapping[str, str], prefix: str, name: str) -> str:
    url = env.get(f"{prefix}_URL", "").strip()
    if not url:
        raise _bad(f"{prefix}_URL", url, f"download client {name} needs a URL")
    return _url(f"{prefix}_URL", url)


def _deluge_url(env: Mapping[str, str], prefix: str, name: str) -> str:
    """deluge://host:port from NAME_URL (deluge://host:port, or host:port) or NAME_HOST and NAME_PORT."""
    url = env.get(f"{prefix}_URL", "").strip()
    if url:
        parts = urlsplit(url if "://" in url else f"deluge://{url}")
        try:
            port = parts.port or DELUGE_PORT
        except ValueError:
            port = 0
        if parts.scheme != "deluge" or not parts.hostname or not 0 < port < 65536 or parts.path not in ("", "/"):
            raise _bad(f"{prefix}_URL", url,
                       f"expected deluged's RPC address, such as deluge://localhost:{DELUGE_PORT}")
        return f"deluge://{parts.hostname}:{port}"
    host = env.get(f"{prefix}_HOST", "").strip()
    if not host:
        raise _bad(f"{prefix}_URL", url, f"download client {name} needs DELUGE_URL or DELUGE_HOST")
    port = env.get(f"{prefix}_PORT", "").strip()
    return f"deluge://{host}:{_port(f'{prefix}_PORT', port) if port else DELUGE_PORT}"


def _curve(env: Mapping[str, str]) -> CurveKeys | None:
    values = {name: env.get(name, "").strip() for name in CURVE_SETTINGS}
    if not any(values.values()):
        return None
    for name, value in values.items():
        if not re.fullmatch(r"[0-9A-Za-z.:+=^!/*?&<>()\[\]{}@%$#-]{40}", value):
            raise _bad(name, value, "expected a 40-character Z85 key (discarr keys generate makes them); "
                                    "set all four CURVE_* keys or none")
    return CurveKeys(**{attr: values[name] for name, attr in CURVE_SETTINGS.items()})


def is_loopback(endpoint: str) -> bool:
    if not endpoint.startswith("tcp://"):
        return True  # ipc:// and inproc:// never leave the machine
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _check_exposure(values: dict[str, object], curve: CurveKeys | None) -> None:
    """Messages that leave the machine must be encrypted and authenticated."""
    if curve is not None:
        return
    for name in ("TRACKER_INGEST_ENDPOINT", "TRACKER_QUERY_ENDPOINT", "POLLER_COMMAND_ENDPOINT",
                 "POLLER_ADVERTISED_ENDPOINT"):
        endpoint = str(values.get(_SCALARS[name][0]) or getattr(Settings, _SCALARS[name][0]) or "")
        if endpoint and not is_loopback(endpoint):
            raise SettingsError(
                f"setting {name}={endpoint!r} reaches beyond this machine: set the CURVE_* keys "
                "(discarr keys generate) or use a 127.0.0.1 endpoint")


def read_environment(dotenv_path: str | os.PathLike | None = ".env",
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over the values of `.env` (the environment wins)."""
    values: dict[str, str] = {}
    if dotenv_path and Path(dotenv_path).is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def load_settings(environ: Mapping[str, str] | None = None,
                  dotenv_path: str | os.PathLike | None = ".env") -> Settings:
    env = read_environment(dotenv_path, environ)
    values: dict[str, object] = {}
    for name, (attr, parse) in _SCALARS.items():
        raw = env.get(name, "").strip()
        if raw:
            values[attr] = parse(name, raw)
    token = env.get("DISCORD_TOKEN", "").strip()
    curve = _curve(env)
    _check_exposure(values, curve)
    return Settings(instances=_instances(env), download_clients=_download_clients(env), curve=curve,
                    discord_token=token or None, overrides=_overrides(env), **values)
