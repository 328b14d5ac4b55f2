"""Thin HTTP layers over the download clients' own APIs: qBittorrent Web API v2 and Transmission RPC.

Shared by the poller (which reads a client's figures and tags kept torrents)
and simarr (which, like Sonarr, reads its queue from a real client). Each
class logs in, keeps its session, and turns every failure into `ClientError`
with a health state and a one-line reason that never contains the password.
"""
from __future__ import annotations

from typing import Any

import requests

from common.http import ServiceHttpError, send
from common.settings import DownloadClientConfig


class ClientError(ServiceHttpError):
    """A download client that failed a request (see common.http)."""


class _ClientApi:
    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self.session = requests.Session()

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        return send(self.session, method, url, timeout=self.timeout,
                    where=f"{self.config.name} at {self.config.url}", error=ClientError, **kwargs)

    def _json(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ClientError("bad_response", f"{self.config.name} answered something that is not JSON") from None

    def close(self) -> None:
        self.session.close()


class QBittorrentApi(_ClientApi):
    """qBittorrent Web API v2: a cookie session from auth/login, renewed once when it expires."""

    def _login(self) -> None:
        response = self._send("POST", f"{self.config.url}/api/v2/auth/login",
                              data={"username": self.config.username, "password": self.config.password})
        if response.status_code == 403:
            raise ClientError("unauthorized", f"{self.config.name} has banned this address after failed logins")
        if response.status_code != 200 or response.text.strip() != "Ok.":
            raise ClientError("unauthorized", f"{self.config.name} refused the username or password")

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.config.url}/api/v2/{path}"
        if "SID" not in self.session.cookies:
            self._login()
        response = self._send(method, url, **kwargs)
        if response.status_code == 403:  # the session expired or the client restarted
            self._login()
            response = self._send(method, url, **kwargs)
        if response.status_code == 403:
            raise ClientError("unauthorized", f"{self.config.name} refused the session after login")
        if response.status_code != 200:
            raise ClientError("bad_response", f"{self.config.name} answered HTTP {response.status_code} to {path}")
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self._json(self.call("GET", path, params=params))

    def post(self, path: str, **data: Any) -> None:
        self.call("POST", path, data=data)

    def post_json(self, path: str, **data: Any) -> Any:
        """A query whose arguments may be long (a list of hashes): in the body, not the URL."""
        return self._json(self.call("POST", path, data=data))


class TransmissionApi(_ClientApi):
    """Transmission RPC: basic auth, and the X-Transmission-Session-Id it hands out on a 409."""

    SESSION_HEADER = "X-Transmission-Session-Id"

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        super().__init__(config, timeout)
        if config.username or config.password:
            self.session.auth = (config.username, config.password)

    def rpc(self, method: str, **arguments: Any) -> dict[str, Any]:
        payload = {"method": method, "arguments": arguments}
        response = self._send("POST", self.config.url, json=payload)
        if response.status_code == 409 and self.SESSION_HEADER in response.headers:
            self.session.headers[self.SESSION_HEADER] = response.headers[self.SESSION_HEADER]
            response = self._send("POST", self.config.url, json=payload)
        if response.status_code in (401, 403):
            raise ClientError("unauthorized", f"{self.config.name} refused the username or password")
        if response.status_code != 200:
            raise ClientError("bad_response", f"{self.config.name} answered HTTP {response.status_code}")
        body = self._json(response)
        if not isinstance(body, dict) or body.get("result") != "success" or not isinstance(body.get("arguments"), dict):
            result = body.get("result") if isinstance(body, dict) else None
            raise ClientError("bad_response", f"{self.config.name} refused {method}: {str(result)[:100]}")
        return body["arguments"]
