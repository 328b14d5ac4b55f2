"""Thin layers over the download clients' own APIs: qBittorrent's Web API through qbittorrent-api,
Transmission's RPC through transmission-rpc, Deluge's daemon RPC through deluge-client.

Shared by the poller (which reads a client's figures and tags kept torrents) and simarr
(which, like Sonarr, reads its queue from a real client). The libraries keep the sessions;
these layers keep discarr's timeout and turn every failure into `ClientError` with a health
state and a one-line reason in discarr's words, which never contain the username or password
(the libraries' own messages and exceptions are never passed on).
"""
from __future__ import annotations

import logging
import ssl
import time
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

import deluge_client
import qbittorrentapi
import requests
import transmission_rpc
from deluge_client.client import CallTimeoutException, ConnectionLostException, RemoteException
from transmission_rpc.error import TransmissionAuthError, TransmissionConnectError, TransmissionError

from common.http import ServiceHttpError, no_answer
from common.settings import DELUGE_PORT, DownloadClientConfig


class ClientError(ServiceHttpError):
    """A download client that failed a request (see common.http)."""


class _OneAttemptClient(qbittorrentapi.Client):
    """qbittorrentapi.Client sending each request once.

    The library tries a request again, on a fresh session, after no answer or a 5xx: a hung
    qBittorrent would hold the poller for twice discarr's timeout. Its login (at the first 403,
    and once more at a 403 when the session has expired) is kept: that lives in `_auth_request`.
    """

    def _request_manager(self, http_method: str, api_namespace: str, api_method: str, _retries: int = 1,
                         _retry_backoff_factor: float = 0.3, version_introduced: str = "", version_removed: str = "",
                         **kwargs: Any) -> Any:
        # The retry arguments are taken and ignored: in **kwargs they would be sent as form fields.
        # Raises NotImplementedError for an endpoint this qBittorrent is too old for (see QBittorrentApi).
        self._is_endpoint_supported_for_version(f"{api_namespace}/{api_method}", version_introduced, version_removed)
        return self._request(http_method, api_namespace, api_method, **kwargs)


class QBittorrentApi:
    """qBittorrent's Web API v2: the library logs in at the first 403 and keeps the session cookie,
    whatever qBittorrent calls it (SID, or QBT_SID_<port> since 5.x)."""

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self.where = f"{config.name} at {config.url}"
        self.client = _OneAttemptClient(
            host=config.url, username=config.username, password=config.password,
            REQUESTS_ARGS={"timeout": timeout},
            HTTPADAPTER_ARGS={"max_retries": 0},  # urllib3 would retry a read that timed out
            FORCE_SCHEME_FROM_HOST=True,  # the URL says http or https: no probing requests
            SIMPLE_RESPONSES=True,  # plain JSON: the callers check its shape
            RAISE_NOTIMPLEMENTEDERROR_FOR_UNIMPLEMENTED_API_ENDPOINTS=True,  # not a silent no-op
        )

    @contextmanager
    def _failures(self, endpoint: str) -> Iterator[None]:
        try:
            yield
        except qbittorrentapi.LoginFailed:
            raise ClientError("unauthorized", f"{self.where} refused the username or password") from None
        except qbittorrentapi.Forbidden403Error as exc:
            if urlsplit(exc.response.url).path.endswith("/auth/login"):
                raise ClientError("unauthorized", f"{self.where} has banned this address after failed logins") from None
            raise ClientError("unauthorized", f"{self.where} refused the session after login") from None
        except qbittorrentapi.HTTPError as exc:
            raise ClientError("bad_response",
                              f"{self.where} answered HTTP {exc.response.status_code} to {endpoint}") from None
        except qbittorrentapi.APIError:  # the library could not read the answer
            raise ClientError("bad_response", f"{self.where} answered {endpoint} with something not JSON") from None
        except NotImplementedError:
            raise ClientError("bad_response", f"{self.where} is too old for {endpoint}") from None
        except requests.RequestException as exc:
            raise no_answer(exc, self.where, self.timeout, ClientError) from None

    def version(self) -> str:
        with self._failures("app/version"):
            return self.client.app_version()

    def torrents(self, **filters: Any) -> list[Any]:
        """torrents/info, filtered as qbittorrentapi's torrents_info takes it: a list, its entries unchecked."""
        with self._failures("torrents/info"):
            listed = self.client.torrents_info(**filters)
        if not isinstance(listed, list):
            raise ClientError("bad_response", f"{self.where} answered torrents/info with something not a list")
        return listed

    def properties(self, info_hash: str) -> Any:
        """torrents/properties of one torrent (unchecked); None when qBittorrent no longer has it."""
        with self._failures("torrents/properties"):
            try:
                return self.client.torrents_properties(torrent_hash=info_hash.lower())
            except qbittorrentapi.NotFound404Error:  # that torrent is gone, not the client
                return None

    def add_tags(self, info_hash: str, tag: str) -> None:
        with self._failures("torrents/addTags"):
            self.client.torrents_add_tags(tags=tag, torrent_hashes=info_hash.lower())

    def remove_tags(self, info_hash: str, tag: str) -> None:
        with self._failures("torrents/removeTags"):
            self.client.torrents_remove_tags(tags=tag, torrent_hashes=info_hash.lower())

    def delete(self, hashes: list[str]) -> None:
        """Delete torrents and their files."""
        with self._failures("torrents/delete"):
            self.client.torrents_delete(delete_files=True, torrent_hashes=hashes)

    def close(self) -> None:
        self.client._trigger_session_initialization()  # closes its HTTP session, as its __del__ does


# transmission-rpc logs its URL, which holds the password, and the request headers (basic auth):
# it is handed a logger that says nothing.
_SILENT = logging.Logger("discarr.transmission-rpc")
_SILENT.disabled = True


class TransmissionApi:
    """Transmission RPC: the library sends basic auth and takes the X-Transmission-Session-Id of a 409."""

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self.where = f"{config.name} at {config.url}"
        self._client: transmission_rpc.Client | None = None

    def _connected(self) -> transmission_rpc.Client:
        if self._client is None:  # built at the first call: building it already asks session-get
            url = urlsplit(self.config.url)
            host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname  # the library adds ":port"
            self._client = transmission_rpc.Client(
                protocol=url.scheme, host=host, port=url.port or (443 if url.scheme == "https" else 80), path=url.path,
                username=self.config.username, password=self.config.password,
                timeout=self.timeout, logger=_SILENT)
        return self._client

    def rpc(self, method: str, **arguments: Any) -> dict[str, Any]:
        """The arguments of Transmission's answer: a map, its contents unchecked.

        Through the library's raw request: its typed calls wrap each torrent in an object and
        fail on one malformed entry, and they drop an empty `ids` (which then means all torrents).
        """
        try:
            answer = self._connected()._request(method, arguments)
        except TransmissionAuthError:
            raise ClientError("unauthorized", f"{self.where} refused the username or password") from None
        except TransmissionConnectError as exc:  # timeouts too
            raise no_answer(exc.__cause__, self.where, self.timeout, ClientError) from None
        except requests.RequestException as exc:
            raise no_answer(exc, self.where, self.timeout, ClientError) from None
        except TransmissionError as exc:  # not JSON, no result, or a result other than success
            result = exc.response.get("result") if isinstance(exc.response, dict) else None
            if isinstance(result, str):
                raise ClientError("bad_response", f"{self.where} refused {method}: {result[:100]}") from None
            answer = None
        except (TypeError, ValueError, KeyError, AttributeError):  # JSON of a shape the library choked on
            answer = None
        if not isinstance(answer, dict):
            raise ClientError("bad_response", f"{self.where} answered {method} with something not an RPC answer")
        return answer

    def close(self) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)  # its context manager's exit closes the HTTP session


class _DeadlineSocket:
    """The library's socket, whose every connect, send and read waits only for what is left of one call's time.

    The library gives each socket operation the whole timeout and reads an answer 10 bytes at a time: a daemon
    that trickles its answer, or a login after a connect that each take nearly the timeout, would hold the
    caller for many times discarr's timeout.
    """

    def __init__(self, sock: ssl.SSLSocket, client: "_DeadlineClient") -> None:
        self._socket = sock
        self._client = client

    def _wait(self) -> None:
        left = self._client.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's time is up")
        self._socket.settimeout(left)

    def connect(self, address: tuple[str, int]) -> None:
        self._wait()
        self._socket.connect(address)  # the TLS handshake too

    def send(self, data: bytes) -> int:
        self._wait()
        return self._socket.send(data)

    def recv(self, size: int) -> bytes:
        self._wait()
        return self._socket.recv(size)

    def close(self) -> None:
        self._socket.close()


class _DeadlineClient(deluge_client.DelugeRPCClient):
    """DelugeRPCClient whose socket work ends by `deadline` (a time.monotonic() value, set before each call)."""

    deadline = 0.0

    def _create_socket(self, ssl_version: Any = None, ciphers: Any = None) -> None:
        super()._create_socket(ssl_version, ciphers)
        self._socket = _DeadlineSocket(self._socket, self)


# A connection that broke under a call: the daemon restarted, or a NAT or firewall dropped an idle connection.
# (The library turns any TLS error in a read into CallTimeoutException: its read timeouts are TimeoutError.)
_LOST = (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionLostException, CallTimeoutException)


class DelugeApi:
    """Deluge 2's daemon RPC (rencode over TLS, deluged's port, 58846 by default) through deluge-client.

    One connection, opened and logged in at the first call; a connection that broke since (the daemon
    restarted) is opened again once. Each call, connection and login included, ends within discarr's
    timeout: the library's own reconnect is off (it would try again after a timeout, doubling the wait).
    Answers are read from the stream in order, so a call that failed half-way closes the connection:
    a late answer must never be read as the next call's.

    What Deluge 2.0 says of a torrent (core.get_torrents_status; field names as Deluge's):
    - `state`, Deluge's own word, decided in this order: `Error` (a disk or file error; `message` has its
      text, never to be matched), `Moving` (its files are being moved), `Queued` (waiting for a download or
      seed slot of Deluge's queue), `Paused` (paused by a user, or the whole session paused), then
      libtorrent's state: `Checking` (checking files or resume data, or waiting to), `Allocating`,
      `Downloading`, `Seeding` (every wanted file complete). Deluge has no "stalled" state: a torrent
      nobody sends anything is `Downloading` with no seeds, and a magnet whose metadata never came is
      `Downloading` too, with `num_pieces` 0 and `total_wanted` 0. A complete torrent paused is `Paused`
      with `is_finished` true.
    - `total_done`: bytes of verified pieces held (unwanted files' pieces included); `total_wanted`: bytes of
      the wanted files (0 without metadata); `total_remaining`: wanted bytes still missing, so the bytes done
      of what was asked for are `total_wanted - total_remaining`.
    - `progress`: the percentage of the torrent's current task, not of its download: of the check while
      `Checking`, of the move while `Moving`, and 100 in `Error`.
    - `download_payload_rate`: bytes per second of payload received, a running average that takes about a
      minute to fall after the last byte.
    - `num_seeds`, `num_peers`: seeds, and peers that are not seeds, connected now (`total_seeds` and
      `total_peers` are the tracker's counts of the swarm).
    - `private`: the torrent's private flag; false while its metadata is missing, which means unknown.
    - `is_finished`: every wanted piece is there.
    - `label`: its Label plugin label, '' for none; the key is missing while the plugin is disabled.
    - `time_since_transfer`: seconds since a payload byte last came or went, -1 for never (since the
      daemon started); `active_time`: seconds it has been started, over its whole life.
    core.get_torrents_status answers from Deluge's cache of each torrent's status, which libtorrent refreshes only for a
    torrent whose status changed: an idle torrent's figures stay those of its last change. A download that
    stopped reads a frozen `time_since_transfer` and `active_time` and a rate that can stay at 1 B/s for
    good; its `total_done`, `state` and peers are right. (core.get_torrent_status, one torrent a call,
    refreshes it.) Whether bytes move is `total_done` rising, never the rate.
    """

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        url = urlsplit(config.url)
        self.host, self.port = url.hostname or "", url.port or DELUGE_PORT
        self.where = f"{config.name} at {self.host}:{self.port}"
        self._client: _DeadlineClient | None = None

    def _failure(self, exc: Exception, method: str, unanswered: bool) -> ClientError:
        """A failure in discarr's words: the library's texts may hold the username (a BadLoginError's does)."""
        if isinstance(exc, RemoteException):  # the daemon's exception, its class made by the library from its name
            name = type(exc).__name__
            if name == "BadLoginError":
                return ClientError("unauthorized", f"{self.where} refused the username or password")
            return ClientError("bad_response", f"{self.where} refused {method}: {name[:60]}")
        if isinstance(exc, TimeoutError):
            return ClientError("unreachable", f"no answer from {self.where} within {self.timeout:g}s", unanswered)
        if isinstance(exc, _LOST) and not isinstance(exc, ConnectionRefusedError):
            return ClientError("unreachable", f"{self.where} closed the connection during {method}", unanswered)
        if isinstance(exc, ssl.SSLError):
            return ClientError("bad_response", f"{self.where} does not speak Deluge's RPC (no TLS handshake)")
        if isinstance(exc, OSError):  # refused, no route, unknown host
            return ClientError("unreachable", f"cannot connect to {self.where}", unanswered)
        return ClientError("bad_response", f"{self.where} answered {method} with something not a Deluge answer")

    def _connect(self, deadline: float, unanswered: bool) -> _DeadlineClient:
        client = _DeadlineClient(self.host, self.port, self.config.username, self.config.password,
                                 decode_utf8=True, automatic_reconnect=False, timeout=self.timeout)
        client.deadline = deadline
        try:
            client.connect()
            # Deluge refuses a call beyond the user's auth level with numbers in its error, which the library
            # cannot read: the level is checked once here. Every call of this class needs the normal level.
            allowed = client.call("daemon.authorized_call", "core.get_torrents_status")
        except Exception as exc:
            client._socket.close()  # the library's disconnect() closes nothing before a login succeeded
            raise self._failure(exc, "daemon.login", unanswered) from None
        if allowed is not True:
            client._socket.close()
            raise ClientError("unauthorized", f"{self.where} gives this user a read-only account")
        return client

    def rpc(self, method: str, *args: Any) -> Any:
        """Deluge's answer to one RPC call, unchecked."""
        deadline = time.monotonic() + self.timeout
        reconnected = False
        while True:
            fresh = self._client is None
            if fresh:
                self._client = self._connect(deadline, unanswered=reconnected)  # the lost call may have been done
            self._client.deadline = deadline
            try:
                return self._client.call(method, *args)
            except RemoteException as exc:  # a whole answer: the connection stays in step
                raise self._failure(exc, method, unanswered=False) from None
            except Exception as exc:
                self.close()
                if isinstance(exc, _LOST) and not fresh and not reconnected:
                    reconnected = True  # broken since the last call, or now: once more on a new connection
                    continue
                raise self._failure(exc, method, unanswered=True) from None

    def version(self) -> str:
        version = self.rpc("daemon.info")
        if not isinstance(version, str):
            raise ClientError("bad_response", f"{self.where} answered daemon.info with something not a version")
        return version

    def torrents(self, hashes: list[str], fields: list[str]) -> dict[str, dict]:
        """These torrents' fields (see the class), by lower-case hash; a torrent Deluge lacks is left out.
        Its entries are unchecked."""
        if not hashes:
            return {}  # never sent: no filter of ours may ever stand for "all torrents"
        method = "core.get_torrents_status"
        answer = self.rpc(method, {"id": [h.lower() for h in hashes]}, fields)
        if not isinstance(answer, dict):
            raise ClientError("bad_response", f"{self.where} answered {method} with something not a map")
        return answer

    def _names(self, method: str) -> tuple[Any, ...]:
        names = self.rpc(method)
        if not isinstance(names, (list, tuple)):  # rencode sends lists as tuples
            raise ClientError("bad_response", f"{self.where} answered {method} with something not a list")
        return tuple(names)

    def labelled(self, label: str, fields: list[str]) -> dict[str, dict]:
        """The fields of every torrent with this label (as Sonarr finds its own), by lower-case hash."""
        answer = self.rpc("core.get_torrents_status", {"label": label}, fields)
        if not isinstance(answer, dict):
            raise ClientError("bad_response",
                              f"{self.where} answered core.get_torrents_status with something not a map")
        return {str(info_hash).lower(): torrent for info_hash, torrent in answer.items() if isinstance(torrent, dict)}

    def add_label(self, info_hash: str, label: str) -> None:
        """Label a torrent through the Label plugin, enabling the plugin and creating the label when needed.

        Deluge keeps one label per torrent: this replaces the one it had, such as the category label by
        which Sonarr or Radarr find their torrents. Deluge's labels are lower-case.
        """
        label = label.lower()
        if "Label" not in self._names("core.get_enabled_plugins"):
            if not self.rpc("core.enable_plugin", "Label"):
                raise ClientError("bad_response", f"{self.where} has no Label plugin")
        if label not in self._names("label.get_labels"):
            self.rpc("label.add", label)
        self.rpc("label.set_torrent", info_hash.lower(), label)

    def delete(self, hashes: list[str]) -> None:
        """Delete torrents and their files; one Deluge no longer has is already gone (it lists it as an error)."""
        if hashes:
            self.rpc("core.remove_torrents", [h.lower() for h in hashes], True)

    def close(self) -> None:
        if self._client is not None:
            self._client._socket.close()
            self._client = None
