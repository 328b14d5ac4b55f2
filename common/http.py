"""One HTTP request to a service discarr reads (an *arr, a download client), its failures in words.

A failure becomes a `ServiceHttpError` subclass with a health state ("unreachable",
"unauthorized", "bad_response") and a one-line reason naming the service, never
its secrets: they travel in headers, cookies or bodies, never in the words here.
"""
from __future__ import annotations

from typing import Any

import requests
import urllib3


class ServiceHttpError(Exception):
    def __init__(self, state: str, reason: str, unanswered: bool = False) -> None:
        super().__init__(reason)
        self.state = state
        self.reason = reason
        # The request may have reached the service, which gave no answer: what it asked may still be done.
        self.unanswered = unanswered


def never_sent(exc: BaseException | None) -> bool:
    """Whether a failed request never reached the service: no connection was made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def no_answer(exc: BaseException | None, where: str, timeout: float,
              error: type[ServiceHttpError] = ServiceHttpError) -> ServiceHttpError:
    """A request that got no answer at all, in words: state "unreachable"."""
    unanswered = not never_sent(exc)
    if isinstance(exc, requests.Timeout):
        return error("unreachable", f"no answer from {where} within {timeout:g}s", unanswered)
    if isinstance(exc, requests.ConnectionError):
        return error("unreachable", f"cannot connect to {where}", unanswered)
    return error("unreachable", f"request to {where} failed: {type(exc).__name__}", unanswered)


def send(session: requests.Session, method: str, url: str, *, timeout: float, where: str,
         error: type[ServiceHttpError], **kwargs: Any) -> requests.Response:
    """The response to one request; no answer at all raises `error` with state "unreachable"."""
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise no_answer(exc, where, timeout, error) from None
