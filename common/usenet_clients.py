"""Thin layers over the usenet clients' own APIs: NZBGet's JSON-RPC and SABnzbd's HTTP API, both over
requests (each is a few calls: no library needed).

Shared by the poller (which reads each job's figures and removes failed history entries) and simarr
(which, like Sonarr, reads its queue from a real client). As for the torrent clients
(common/torrent_clients.py), every failure becomes `ClientError` with a health state and a one-line
reason in discarr's words, which never contains the username, password or API key: credentials
travel in a header (NZBGet) or in the query (SABnzbd, whose URL is never put in a reason).
"""
from __future__ import annotations

from typing import Any

import requests

from common.http import no_answer
from common.settings import DownloadClientConfig
from common.torrent_clients import ClientError


class _HttpApi:
    """What both layers share: one requests session, discarr's timeout, every failure in words."""

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self.where = f"{config.name} at {config.url}"
        self.session = requests.Session()

    def _json(self, method: str, url: str, what: str, secret: str, **kwargs: Any) -> Any:
        """The JSON answer to one request for `what`; `secret` names what a 401 or 403 refused."""
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise no_answer(exc, self.where, self.timeout, ClientError) from None
        if response.status_code in (401, 403):
            raise ClientError("unauthorized", f"{self.where} refused {secret}")
        if response.status_code != 200:
            raise ClientError("bad_response", f"{self.where} answered HTTP {response.status_code} to {what}")
        try:
            return response.json()
        except ValueError:
            raise ClientError("bad_response", f"{self.where} answered {what} with something not JSON") from None

    def close(self) -> None:
        self.session.close()


class NZBGetApi(_HttpApi):
    """NZBGet's JSON-RPC at {url}/jsonrpc, with HTTP basic auth (ControlUsername / ControlPassword)."""

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        super().__init__(config, timeout)
        self.session.auth = (config.username, config.password)
        self._serial = 0

    def call(self, method: str, *params: Any) -> Any:
        """The `result` of one call; ClientError when there is none."""
        self._serial += 1
        answer = self._json("POST", f"{self.config.url}/jsonrpc", method, "the username or password",
                            json={"version": "1.1", "method": method, "params": list(params), "id": self._serial})
        if not isinstance(answer, dict) or "result" not in answer or answer.get("error"):
            raise ClientError("bad_response", f"{self.where} refused {method}")
        return answer["result"]

    def version(self) -> str:
        return str(self.call("version"))

    def status(self) -> dict[str, Any]:
        """The client as a whole: DownloadPaused, DownloadRate, FreeDiskSpaceMB and the like."""
        return self._map(self.call("status"), "status")

    def groups(self) -> list[Any]:
        """listgroups: every job in the queue, downloading or post-processing (entries unchecked)."""
        return self._list(self.call("listgroups", 0), "listgroups")

    def history(self) -> list[Any]:
        """history: every finished job, completed or failed (entries unchecked)."""
        return self._list(self.call("history", False), "history")

    def delete_history(self, history_id: int) -> None:
        """Remove a history entry and its files from disk (HistoryFinalDelete)."""
        if self.call("editqueue", "HistoryFinalDelete", "", [history_id]) is not True:
            raise ClientError("bad_response", f"{self.where} did not delete history entry {history_id}")

    def _map(self, value: Any, method: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ClientError("bad_response", f"{self.where} answered {method} with something not a map")
        return value

    def _list(self, value: Any, method: str) -> list[Any]:
        if not isinstance(value, list):
            raise ClientError("bad_response", f"{self.where} answered {method} with something not a list")
        return value


class SABnzbdApi(_HttpApi):
    """SABnzbd's API at {url}/api?mode=...&output=json&apikey=... (Config → General → API Key)."""

    def call(self, mode: str, **params: Any) -> dict[str, Any]:
        """The answer of one mode, a map; ClientError when SABnzbd refused it or answered something else.
        (A key it does not know: sabnzbd/interface.py check_apikey answers 403, in plain text.)"""
        query = {"mode": mode, "output": "json", **params, "apikey": self.config.api_key}
        answer = self._json("GET", f"{self.config.url}/api", f"mode={mode}", "the API key", params=query)
        if not isinstance(answer, dict):
            raise ClientError("bad_response", f"{self.where} answered mode={mode} with something not a map")
        if answer.get("status") is False and isinstance(answer.get("error"), str):
            raise ClientError("bad_response", f"{self.where} refused mode={mode}: {answer['error'][:100]}")
        return answer

    def version(self) -> str:
        return str(self.call("version").get("version", "?"))

    def queue(self) -> dict[str, Any]:
        """The queue (its `paused` flag and its `slots`, unchecked): every job (limit 0 is all of it)."""
        return self._part(self.call("queue", start=0, limit=0), "queue")

    def history(self, limit: int, failed_only: bool = False) -> dict[str, Any]:
        """The newest `limit` entries of the history (its `slots`, unchecked): jobs in post-processing,
        completed and failed. (Limit 0 would be SABnzbd's configured page, ten by default.)"""
        return self._part(self.call("history", start=0, limit=limit, failed_only=int(failed_only)), "history")

    def files(self, nzo_id: str) -> list[Any]:
        """A queued job's files (mode=get_files; entries unchecked): its par2 volumes are its repair data."""
        files = self.call("get_files", value=nzo_id).get("files")
        if not isinstance(files, list):
            raise ClientError("bad_response", f"{self.where} answered mode=get_files without its files")
        return files

    def delete_history(self, nzo_id: str) -> None:
        """Remove a history entry and its files from disk."""
        self.call("history", name="delete", value=nzo_id, del_files=1, archive=0)

    def _part(self, answer: dict[str, Any], key: str) -> dict[str, Any]:
        part = answer.get(key)
        if not isinstance(part, dict) or not isinstance(part.get("slots"), list):
            raise ClientError("bad_response", f"{self.where} answered mode={key} without its slots")
        return part


def nzbget_size(item: dict[str, Any], name: str) -> int | None:
    """One of NZBGet's 64-bit sizes, sent as two 32-bit halves (`FileSizeHi`, `FileSizeLo`)."""
    high, low = item.get(f"{name}Hi"), item.get(f"{name}Lo")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2 ** 32 for v in (high, low)):
        return None
    return high * 2 ** 32 + low


def nzbget_id(item: dict[str, Any]) -> str:
    """What Sonarr and Radarr use as the downloadId of an NZBGet job: its `drone` post-processing parameter,
    set when they sent it, else its NZBID (Sonarr Nzbget.cs GetQueue and GetHistory)."""
    for parameter in item.get("Parameters") or ():
        if isinstance(parameter, dict) and parameter.get("Name") == "drone" and parameter.get("Value"):
            return str(parameter["Value"])
    return str(item.get("NZBID", ""))
