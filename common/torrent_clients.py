"""Thin layers over the download clients' own APIs: qBittorrent's Web API through qbittorrent-api,
Transmission's RPC through transmission-rpc.

Shared by the poller (which reads a client's figures and tags kept torrents) and simarr
(which, like Sonarr, reads its queue from a real client). The libraries keep the sessions;
these layers keep discarr's timeout and turn every failure into `ClientError` with a health
state and a one-line reason in discarr's words, which never contain the username or password
(the libraries' own messages and exceptions are never passed on).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import urlsplit

import qbittorrentapi
import requests
import transmission_rpc
from transmission_rpc.error import TransmissionAuthError, TransmissionConnectError, TransmissionError

from common.http import ServiceHttpError, no_answer
from common.settings import DownloadClientConfig


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
