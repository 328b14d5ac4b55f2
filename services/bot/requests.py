"""The bot's requests to the tracker and the pollers (zmq.asyncio), without Discord.

Shared by the Discord bot, the terminal board and automatic cleanup; every failure is a
`ServiceFailure` naming the service.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import zmq.asyncio

from common.protocol import check_page, merge_check, protection_query, removal_requests, unanswered
from common.settings import Settings
from common.sockets import AsyncRequestClient, ServiceError, ServiceUnavailable

log = logging.getLogger(__name__)


class ServiceFailure(Exception):
    """A tracker or poller request that failed; `service` names who, `unavailable` says it did not answer."""

    def __init__(self, service: str, error: ServiceUnavailable | ServiceError) -> None:
        super().__init__(str(error))
        self.service = service
        self.error = error
        self.unavailable = isinstance(error, ServiceUnavailable)


class Services:
    """The bot's requests to the tracker and the pollers, on one zmq.asyncio context."""

    def __init__(self, settings: Settings, context: zmq.asyncio.Context | None = None) -> None:
        self.settings = settings
        self._own_context = context is None
        self.context = context or zmq.asyncio.Context()
        self.tracker = AsyncRequestClient("tracker", settings.tracker_query_endpoint,
                                          settings.request_timeout_seconds, self.context, settings.curve)
        self.pollers: dict[str, AsyncRequestClient] = {}  # endpoint -> client; one per site

    def _client(self, service: str, endpoint: str | None) -> AsyncRequestClient:
        if service == "tracker":
            return self.tracker
        endpoint = endpoint or self.settings.poller_endpoint_for_clients
        if endpoint not in self.pollers:
            self.pollers[endpoint] = AsyncRequestClient("poller", endpoint, self.settings.removal_wait_seconds,
                                                        self.context, self.settings.curve)
        return self.pollers[endpoint]

    async def ask(self, service: str, message_type: str, body: dict[str, Any] | None = None,
                  timeout: float | None = None, endpoint: str | None = None) -> dict[str, Any]:
        try:
            return await self._client(service, endpoint).request(message_type, body, timeout)
        except (ServiceUnavailable, ServiceError) as exc:
            raise ServiceFailure(service, exc) from None

    async def check(self, timeout: float | None = None) -> dict[str, Any]:
        """The tracker's "check" answer, asked in pages: a whole big queue does not fit in one message."""
        answer, offset = None, 0
        while offset is not None:
            answer, offset = merge_check(answer, await self.ask("tracker", "check", check_page(offset), timeout))
        return answer

    async def close(self) -> None:
        for client in [self.tracker, *self.pollers.values()]:
            await client.close()
        if self._own_context and not self.context.closed:
            self.context.term()


async def request_removal(services: Services, analysis: dict[str, Any], candidates: list[dict[str, Any]],
                          who: str, *, dry_run: bool, include_import_blocked: bool,
                          include_slow: bool = False) -> list[dict[str, Any]]:
    """Send each poller the removals of its instances; the results (RESULT items) of all."""
    settings = services.settings
    # Kept since the analysis? The tracker says so now, and the poller skips it (SPEC 4.2).
    protected = (await services.ask("tracker", "protection", protection_query(candidates)))["protected"]
    requests = removal_requests(dict(analysis, candidates=candidates), settings.poller_endpoint_for_clients,
                                requested_by=who, dry_run=dry_run, include_import_blocked=include_import_blocked,
                                include_slow=include_slow, now=time.time(),
                                valid_for=settings.request_timeout_seconds, protected=protected)
    answers = await asyncio.gather(*(services.ask("poller", "remove", body, endpoint=endpoint)
                                     for endpoint, body in requests.items()), return_exceptions=True)
    results = []
    for (endpoint, body), answer in zip(requests.items(), answers):
        if isinstance(answer, ServiceFailure):  # a silent poller fails its own downloads, not the others'
            log.warning("%s", answer)
            results.extend(unanswered(body, analysis.get("poller_names", {}).get(endpoint, endpoint)))
        elif isinstance(answer, BaseException):
            raise answer
        else:
            results.extend(answer["results"])
    return results
