"""HTTP client for one *arr instance: read its whole queue, remove downloads.

Every failure becomes `ArrError` with a health state and a one-line reason
that never contains the API key (it travels in a header, never in the URL).
"""
from __future__ import annotations

import json
import math
import time
from typing import Any

import orjson
import requests

from common.http import ServiceHttpError, send
from common.settings import UNKNOWN_ITEMS_FLAG, InstanceConfig
from services.poller.normalize import normalize_record

PAGE_SIZE = 1000
MAX_PAGES = 1000  # a queue of a million records is not a queue, it is a fault
# The title never changes while a download is queued (timeleft, the default, does), and every *arr sorts
# by it; Readarr records have no `added`.
SORT_KEY = "title"


class ArrError(ServiceHttpError):
    """An *arr instance that failed a request (see common.http)."""


# kind -> the queue's option that includes the series, movie, artist or author of each record, and its key
INCLUDE_PARENT = {"sonarr": ("includeSeries", "series"), "radarr": ("includeMovie", "movie"),
                  "lidarr": ("includeArtist", "artist"), "readarr": ("includeAuthor", "author")}
TAGS_TTL_SECONDS = 600.0  # the *arr's tag list is read again after this, or when a record names an unknown tag


class ArrClient:
    def __init__(self, instance: InstanceConfig, timeout: float, with_tags: bool = False) -> None:
        self.instance = instance
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"X-Api-Key": instance.api_key, "Accept": "application/json"})
        self.api_root = f"{instance.url}/api/{instance.api_version}"
        # PROTECT_TAGS: the queue is read with each record's series/movie/... (its tags), and the tag ids
        # named by the *arr's tag list, cached: never one call per record.
        self.with_tags = with_tags
        self._tags: dict[int, str] = {}
        self._tags_read = float("-inf")

    def _call(self, method: str, path: str, timeout: float | None = None, **kwargs: Any) -> requests.Response:
        response = send(self.session, method, f"{self.api_root}/{path}", timeout=timeout or self.timeout,
                        where=self.instance.url, error=ArrError, **kwargs)
        if response.status_code in (401, 403):
            raise ArrError("unauthorized", f"{self.instance.url} refused the API key (HTTP {response.status_code})")
        return response

    def _json(self, response: requests.Response) -> Any:
        if response.status_code != 200:
            raise ArrError("bad_response", f"{self.instance.url} answered HTTP {response.status_code}")
        try:
            return parse_json(response.content)
        except ValueError:
            kind = response.headers.get("Content-Type", "unknown type").split(";")[0]
            raise ArrError("bad_response", f"{self.instance.url} answered {kind}, not JSON "
                                           "(wrong URL, or a login page in front?)") from None

    def _page(self, page: int) -> tuple[int, list]:
        params = {"page": page, "pageSize": PAGE_SIZE, "sortKey": SORT_KEY, "sortDirection": "ascending",
                  UNKNOWN_ITEMS_FLAG[self.instance.kind]: "true"}
        if self.with_tags:
            params[INCLUDE_PARENT[self.instance.kind][0]] = "true"
        body = self._json(self._call("GET", "queue", params=params))
        if isinstance(body, list):  # an old server without paging: the whole queue
            return len(body), body
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise ArrError("bad_response", f"{self.instance.url} answered JSON that is not a queue page")
        total = body.get("totalRecords", len(body["records"]))
        if isinstance(total, bool) or not isinstance(total, int):
            raise ArrError("bad_response", f"{self.instance.url} answered a queue page without a record count")
        return total, body["records"]

    def _read(self) -> tuple[list[Any], bool]:
        """One read of every page: the raw records, and whether they add up to totalRecords."""
        total, records = self._page(1)
        totals = {total}
        for page in range(2, min(MAX_PAGES, math.ceil(total / PAGE_SIZE)) + 1):
            page_total, page_records = self._page(page)
            totals.add(page_total)
            records.extend(page_records)
        ids = {raw["id"] for raw in records if isinstance(raw, dict) and isinstance(raw.get("id"), int)}
        return records, len(totals) == 1 and len(ids) == len(records) == total

    def fetch_queue(self) -> tuple[list[dict[str, Any]], bool]:
        """Every record of the queue, normalised, reading all pages; and whether the read is complete.

        Records can move between pages while they are read: then one shows up twice and another
        not at all. The queue is read once more; if it still does not add up, the read is marked
        incomplete, so the tracker keeps the history of what it did not see.
        """
        records, complete = self._read()
        if not complete:
            records, complete = self._read()
        tags = self._tag_labels(records) if self.with_tags else None
        normalised: dict[int, dict[str, Any]] = {}
        for raw in records:
            record = normalize_record(raw, tags) if isinstance(raw, dict) else None
            if record is not None:  # a record moved between pages shows up twice: keep one
                normalised[record["id"]] = record
        return list(normalised.values()), complete

    def tags(self) -> dict[int, str]:
        """The *arr's tags: label by id (GET /api/v3/tag, v1 for Lidarr and Readarr)."""
        listed = self._json(self._call("GET", "tag"))
        if not isinstance(listed, list):
            raise ArrError("bad_response", f"{self.instance.url} answered its tag list with something not a list")
        return {tag["id"]: str(tag["label"]) for tag in listed
                if isinstance(tag, dict) and isinstance(tag.get("id"), int) and tag.get("label")}

    def _tag_labels(self, records: list[Any]) -> dict[int, str]:
        """The *arr's tags by id; read again when stale or when a record names one it does not know."""
        key = INCLUDE_PARENT[self.instance.kind][1]
        named = {tag for raw in records if isinstance(raw, dict) and isinstance(raw.get(key), dict)
                 for tag in raw[key].get("tags") or () if isinstance(tag, int)}
        if time.monotonic() - self._tags_read > TAGS_TTL_SECONDS or not named <= set(self._tags):
            self._tags, self._tags_read = self.tags(), time.monotonic()
        return self._tags

    def remove(self, queue_ids: list[int], *, remove_from_client: bool, blocklist: bool,
               skip_redownload: bool, timeout: float) -> tuple[bool, str]:
        """Delete these queue records, and (remove_from_client) their download in the client, waiting up to
        `timeout` for the answer: the *arr removes the download from its client before it answers.

        Returns (whether anything was removed, the *arr's answer in words). No answer raises ArrError
        with `unanswered` set (the *arr may still carry it out). No record is named in two DELETEs: a bulk
        DELETE refused because a record is gone (the *arr removes nothing then) is not sent again one by one.
        """
        params = {name: "true" if flag else "false" for name, flag in (
            ("removeFromClient", remove_from_client), ("blocklist", blocklist), ("skipRedownload", skip_redownload))}
        response = self._call("DELETE", "queue/bulk", timeout=timeout, params=params, json={"ids": queue_ids})
        if response.status_code == 200:
            return True, f"DELETE queue/bulk ({len(queue_ids)} records): HTTP 200"
        if response.status_code == 404:
            return False, "DELETE queue/bulk: HTTP 404 (a record left the queue meanwhile; nothing was removed)"
        if response.status_code != 405:
            raise ArrError("bad_response", f"{self.instance.url} answered HTTP {response.status_code} to the removal")
        # An older server without the bulk endpoint: one by one.
        answers = []
        for queue_id in queue_ids:
            single = self._call("DELETE", f"queue/{queue_id}", timeout=timeout, params=params)
            if single.status_code not in (200, 404):
                raise ArrError("bad_response", f"{self.instance.url} answered HTTP {single.status_code} "
                                               f"to the removal of queue record {queue_id}")
            answers.append(single.status_code)
        words = ", ".join(f"{queue_id}: HTTP {code}" for queue_id, code in zip(queue_ids, answers))
        return 200 in answers, f"DELETE queue/bulk: HTTP 405; one by one: {words}"

    def close(self) -> None:
        self.session.close()


def parse_json(content: bytes) -> Any:
    """An *arr's JSON. orjson reads a 10,000-record queue in about a third of the standard parser's
    time; what it refuses (a byte-order mark, NaN, numbers beyond 64 bits) the standard one may read."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content.decode("utf-8-sig"))
