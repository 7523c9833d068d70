"""The live call stream (Server-Sent Events).

Each stream polls the database (a primary-key read, and the signals addressed to its
user) every ``events_poll_seconds``, so a change made by any process — another API process,
the meter worker — reaches the browser within that interval plus one round trip. A ``call``
event goes out whenever the call's version changes and at least every 5 seconds; ``signal``
events carry peer-to-peer signaling. The stream closes after the final ``call`` event of an
ended call. When the database cannot be reached the stream sends one ``error`` event
(``{"error": "database_unavailable", …}``, with ``retry`` telling the browser to reconnect
in 2 s) and closes: it never hangs on a database that does not answer.

Open streams are capped per user and per user and call (``MAX_STREAMS_PER_USER``,
``MAX_STREAMS_PER_USER_CALL``), counted in this process: each stream costs a database read
every poll, so a client opening hundreds would slow every call's heartbeats.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from callmeter.calls import repository
from callmeter.calls.schemas import CallOut
from callmeter.errors import DatabaseUnavailable, TooManyStreams
from callmeter.kit.db import is_unavailable
from callmeter.kit.runtime import Runtime
from callmeter.kit.slots import Slot
from callmeter.models import Call, CallSignal, CallStatus

KEEPALIVE_SECONDS = 5.0
STREAM_RETRY_AFTER_SECONDS = 5


def take_stream_slot(runtime: Runtime, *, user_id: int, call_id: int) -> Slot:
    """A slot for one more stream of ``user_id`` on ``call_id``; 429 when the user already
    has as many open as allowed (on this call or in all)."""
    settings = runtime.settings
    slot = runtime.streams.try_acquire(
        {
            ("user", user_id): settings.max_streams_per_user,
            ("user-call", user_id, call_id): settings.max_streams_per_user_call,
        }
    )
    if slot is None:
        raise TooManyStreams(
            f"at most {settings.max_streams_per_user_call} open event streams per call and "
            f"{settings.max_streams_per_user} in all; close one first",
            retry_after=STREAM_RETRY_AFTER_SECONDS,
        )
    return slot


class CallEventsResponse(EventSourceResponse):
    """The event stream, holding its slot until the response ends however it ends
    (the client went away, the call ended, the server shuts down)."""

    def __init__(
        self, content: AsyncIterator[dict[str, str | int]], *, slot: Slot, ping: int
    ) -> None:
        super().__init__(content, ping=ping)
        self.slot = slot
        # never served (the request failed after the slot was taken): freed when collected
        weakref.finalize(self, slot.release)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


async def call_events(
    runtime: Runtime, request: Request, *, call_id: int, user_id: int
) -> AsyncIterator[dict[str, str | int]]:
    loop = asyncio.get_running_loop()
    last_version: int | None = None
    last_sent = 0.0
    last_signal = 0
    while not await request.is_disconnected():
        polled = await _poll(runtime, call_id=call_id, user_id=user_id, after_id=last_signal)
        if polled is None:  # the database cannot be reached
            yield _unavailable_event()
            return
        call, signals = polled
        if call is None:
            return
        for signal in signals:
            last_signal = signal.id
            data = {
                "id": signal.id,
                "type": signal.type,
                "payload": signal.payload,
                "sender_id": signal.sender_id,
            }
            yield {"event": "signal", "id": f"s{signal.id}", "data": json.dumps(data)}
        if call.version != last_version or loop.time() - last_sent >= KEEPALIVE_SECONDS:
            last_version, last_sent = call.version, loop.time()
            out = CallOut.of(call, runtime.clock.now())
            yield {"event": "call", "data": out.model_dump_json()}
        if call.status == CallStatus.ended:
            return
        await asyncio.sleep(runtime.settings.events_poll_seconds)


async def _poll(
    runtime: Runtime, *, call_id: int, user_id: int, after_id: int
) -> tuple[Call | None, list[CallSignal]] | None:
    """The call, and the signals to ``user_id`` after ``after_id``; None when the database
    cannot be reached (any other error propagates)."""
    try:
        async with runtime.read_sessionmaker() as session:
            call = await repository.get_call(session, call_id)
            signals = await repository.signals_after(
                session, call_id=call_id, recipient_id=user_id, after_id=after_id
            )
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        return None
    return call, signals


def _unavailable_event() -> dict[str, str | int]:
    error = DatabaseUnavailable()
    data = json.dumps({"error": error.code, "detail": error.detail})
    return {"event": "error", "data": data, "retry": (error.retry_after or 2) * 1000}
