"""HTTP requests retry lost races like the meter's transactions do (docs/reliability.md).

A request owns one transaction (``kit/deps.get_session``): the endpoint's work, then the
commit. When that transaction loses a race — a PostgreSQL serialization failure or
deadlock, or a lost compare-and-set on a call's version — it has been rolled back and
nothing it did was written; every endpoint's work is a function of its request (and of the
database it reads again), so the whole request is run again, up to ``attempts`` times with
a small jittered backoff (:func:`callmeter.kit.db.retry_delay`). When every attempt loses,
the answer is 503 ``retry_later`` with ``Retry-After``: never a 500.

The app's error handler turns such an error into :class:`LostRace`, which travels out of
the router to :class:`RetryLostRaces`, the innermost middleware. It replays the request
body the first attempt read and retries only while nothing of the response was sent (an
event stream that already started cannot be taken back).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callmeter.errors import RetryLater
from callmeter.kit.db import retry_delay

log = logging.getLogger(__name__)

REQUEST_ATTEMPTS = 4


class LostRace(Exception):
    """The request's transaction lost a race and was rolled back: run it again."""


class RetryLostRaces:
    def __init__(self, app: ASGIApp, *, attempts: int = REQUEST_ATTEMPTS) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.app = app
        self.attempts = attempts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        read: list[Message] = []  # the request body as the first attempt received it
        for attempt in range(1, self.attempts + 1):
            started = False

            async def sending(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            attempt_scope = dict(scope)  # each attempt routes afresh
            try:
                await self.app(attempt_scope, _replaying(read, receive), sending)
            except LostRace as lost:
                if started:
                    raise
                cause = lost.__cause__ or lost
                if attempt == self.attempts:
                    log.warning(
                        "%s %s lost %d races, answering 503: %s",
                        scope["method"],
                        scope["path"],
                        attempt,
                        cause,
                    )
                    break
                log.info(
                    "retrying %s %s (attempt %d): %s",
                    scope["method"],
                    scope["path"],
                    attempt,
                    cause,
                )
                await asyncio.sleep(retry_delay(attempt))
            else:
                if attempt > 1:
                    log.info("%s %s passed on attempt %d", scope["method"], scope["path"], attempt)
                return
            finally:
                scope.update(attempt_scope)  # what outer middleware reads (the route)
        error = RetryLater()
        response = JSONResponse(
            {"error": error.code, "detail": error.detail},
            status_code=error.status_code,
            headers=error.headers,
        )
        await response(scope, receive, send)


def _replaying(read: list[Message], receive: Receive) -> Receive:
    """``receive`` for one attempt: what earlier attempts read, then the rest from the
    client (recorded for the next attempt)."""
    position = 0

    async def replay() -> Message:
        nonlocal position
        if position < len(read):
            position += 1
            return read[position - 1]
        message = await receive()
        if message["type"] == "http.request":
            read.append(message)
            position += 1
        return message

    return replay
