"""Limits the HTTP server itself enforces, before a request reaches the application.

uvicorn's default protocol (httptools) bounds neither the size nor the count of request
headers, and nothing times out a client that opens a connection and never finishes its
request (uvicorn's ``timeout_keep_alive`` runs only between requests). The h11 protocol
bounds the head (``h11_max_incomplete_event_size``, answering 400) but is much slower and
has no read timeout either. So `callmeter serve` runs httptools through
:class:`LimitedHttpToolsProtocol`, which adds:

* a cap on the request head (request line and headers, ``max_header_bytes``) and on the
  number of headers (``max_header_count``): 431, then the connection is closed. What the
  server holds for one unfinished head is bounded by the cap plus one socket read;
* a read timeout: a request must arrive whole (head and body) within
  ``read_timeout_seconds`` of the connection opening or of its first byte on a kept-alive
  connection, else 408 and the connection is closed. This also cuts off a client that
  trickles a byte at a time (each byte would reset an idle timer).

Responses are not bounded in time: an event stream stays open as long as it is read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class RequestLimits:
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100
    read_timeout_seconds: float = 10.0


class CoalescingTransport:
    """The connection's transport, but what is written during one step of the event loop
    reaches the socket in one send, at the end of that step: uvicorn writes a response's
    head and its body separately, two system calls (on loopback, each also does the
    receiving side's work) where one will do. Closing sends what was written first.
    Everything else (reading, flow control) is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []
        self._eof = False

    def write(self, data: bytes) -> None:
        if self._eof:  # as the transport says it, to the writer rather than in a callback
            raise RuntimeError("Cannot call write() after write_eof()")
        if not self._chunks:
            self._loop.call_soon(self._flush)
        self._chunks.append(bytes(data))

    def _flush(self) -> None:
        chunks, self._chunks = self._chunks, []
        if chunks and not self._transport.is_closing():
            self._transport.write(b"".join(chunks))

    def writelines(self, list_of_data: Iterable[bytes]) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._eof = True
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._chunks))

    def abort(self) -> None:
        self._chunks = []
        self._transport.abort()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Refused(Exception):
    """Stops the parser from inside a callback; :attr:`_refusal` says what to answer."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[RequestLimits] = RequestLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True
        self._head_bytes_received = 0  # raw bytes since the head began, still incomplete
        self._head_bytes = 0  # parsed: request target and header lines
        self._header_count = 0
        self._refusal: tuple[int, str, str] | None = None

    # connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, but for the refusals: an oversize head is 431, not 400
        self._unset_keepalive_if_required()
        if self._awaiting_head:
            self._head_bytes_received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        if self._awaiting_head and self._head_bytes_received > self.limits.max_header_bytes:
            self._refuse(*self._head_too_large())

    # parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._header_count = 0
        self._arm_read_timer()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            self._refusal = (
                431,
                "request_header_fields_too_large",
                f"a request may carry at most {self.limits.max_header_count} headers",
            )
            raise _Refused()
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm_read_timer()
        self._awaiting_head = True
        self._head_bytes_received = 0

    # limits

    def _head_too_large(self) -> tuple[int, str, str]:
        return (
            431,
            "request_header_fields_too_large",
            f"the request line and headers may be at most {self.limits.max_header_bytes} bytes",
        )

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes:
            self._refusal = self._head_too_large()
            raise _Refused()

    def _arm_read_timer(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(
                self.limits.read_timeout_seconds, self._read_timed_out
            )

    def _disarm_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The application is waiting for the rest of the body: it sees the client go.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        self._refuse(
            408,
            "request_timeout",
            f"the request did not arrive whole within {self.limits.read_timeout_seconds:g} s",
        )

    def _refuse(self, status: int, code: str, detail: str) -> None:
        body = json.dumps({"error": code, "detail": detail}).encode()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        head = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        self.transport.write(head + b"connection: close\r\n\r\n" + body)
        self.transport.close()


def limited_http_protocol(limits: RequestLimits) -> type[asyncio.Protocol]:
    """The protocol class to give uvicorn (``http=``), enforcing ``limits``."""
    return type("LimitedHttpProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
