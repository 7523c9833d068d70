"""The live call stream (Server-Sent Events).

A stream watches its call through this process's change feed (``calls.feed``): one set of
queries per change serves every open stream, and a change made by any process — another
API process, the meter worker — reaches the browser within a notification's round trip
on PostgreSQL, within ``events_poll_seconds`` at worst. A ``call`` event goes out first and
whenever the call's version changes; a stream with nothing new gets a comment line
(``: keepalive``) at least every 15 seconds, traffic that keeps proxies from closing it;
``signal`` events (id ``s<n>``)
carry peer-to-peer signaling and ``message`` events the call's chat (ids ``s<n>m<k>``: the
last signal and message sent), and a reconnect with ``Last-Event-ID`` resumes after signal n
and message k. The stream closes after the final ``call`` event of an ended call. When the
database cannot be reached the stream sends one ``error`` event
(``{"error": "database_unavailable", …}``, with ``retry`` telling the browser to reconnect
in 2 s) and closes: it never hangs on a database that does not answer.

Open streams are capped per user and per user and call (``MAX_STREAMS_PER_USER``,
``MAX_STREAMS_PER_USER_CALL``), counted in this process, so one client cannot hold
thousands of connections.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from callmeter.calls.feed import call_feed
from callmeter.calls.schemas import CallOut, MessageOut
from callmeter.errors import DatabaseUnavailable, TooManyStreams
from callmeter.kit.runtime import Runtime
from callmeter.kit.slots import Slot
from callmeter.models import CallStatus

STREAM_RETRY_AFTER_SECONDS = 5
KEEPALIVE = b": keepalive\r\n\r\n"  # a comment line: no event, only traffic

Event = dict[str, str | int] | bytes  # an event, or bytes sent as they are (the keepalive)


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

    def __init__(self, content: AsyncIterator[Event], *, slot: Slot, ping: int) -> None:
        super().__init__(content, ping=ping)
        self.slot = slot
        # never served (the request failed after the slot was taken): freed when collected
        weakref.finalize(self, slot.release)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


# An event's id says where the stream is: ``s<n>`` (the last signal it sent), then
# ``m<k>`` (the last message) once it sent one.
_POSITION = re.compile(r"s([0-9]{1,18})(?:m([0-9]{1,18}))?")


def _position(last_event_id: str | None) -> tuple[int, int]:
    match = _POSITION.fullmatch(last_event_id or "")
    if match is None:
        return 0, 0
    return int(match[1]), int(match[2] or 0)


def resume_after(last_event_id: str | None) -> int:
    """The signal id a reconnecting stream resumes after, from its ``Last-Event-ID``
    (``s<n>`` or ``s<n>m<k>``); 0 for a new stream or an id this server did not send."""
    return _position(last_event_id)[0]


def resume_messages_after(last_event_id: str | None) -> int:
    """The message id a reconnecting stream resumes after (``s<n>m<k>``), else 0."""
    return _position(last_event_id)[1]


def _event_id(signal_id: int, message_id: int) -> str:
    return f"s{signal_id}m{message_id}" if message_id else f"s{signal_id}"


async def call_events(
    runtime: Runtime,
    *,
    call_id: int,
    user_id: int,
    after_signal: int = 0,
    after_message: int = 0,
) -> AsyncIterator[Event]:
    feed = call_feed(runtime)
    watcher = feed.watch(call_id, user_id, after_signal, after_message)
    last_signal, last_message = after_signal, after_message
    try:
        while True:
            update = await watcher.next()
            if update.unavailable:
                yield _unavailable_event()
                return
            if update.gone:
                return
            for signal in update.signals:
                data = {
                    "id": signal.id,
                    "type": signal.type,
                    "payload": signal.payload,
                    "sender_id": signal.sender_id,
                }
                last_signal = signal.id
                event_id = _event_id(last_signal, last_message)
                yield {"event": "signal", "id": event_id, "data": json.dumps(data)}
            for message in update.messages:
                last_message = message.id
                yield {
                    "event": "message",
                    "id": _event_id(last_signal, last_message),
                    "data": MessageOut.of(message).model_dump_json(),
                }
            call = update.call
            if call is not None:
                out = CallOut.of(call, runtime.clock.now(), runtime.settings)
                yield {"event": "call", "data": out.model_dump_json()}
                if call.status == CallStatus.ended:
                    return
            elif update.keepalive and not update.signals and not update.messages:
                yield KEEPALIVE
    finally:
        feed.unwatch(watcher)


def _unavailable_event() -> dict[str, str | int]:
    error = DatabaseUnavailable()
    data = json.dumps({"error": error.code, "detail": error.detail})
    return {"event": "error", "data": data, "retry": (error.retry_after or 2) * 1000}
