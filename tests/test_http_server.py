"""The HTTP server's transport: what one step of the event loop writes reaches the socket
in one send (a response's head and body together), in order, and nothing is lost at close.
Against a real loopback socket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from callmeter.kit.http_server import CoalescingTransport


class Counting(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport


Accepted = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[tuple[asyncio.Transport, asyncio.StreamReader]]:
    """A client transport on loopback, and the server's reader of what it sends."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[Accepted] = loop.create_future()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result((reader, writer))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _protocol = await loop.create_connection(Counting, "127.0.0.1", port)
    reader, writer = await accepted
    try:
        yield transport, reader
    finally:
        transport.close()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def test_writes_of_one_step_go_out_in_one_send() -> None:
    async with connected() as (transport, reader):
        sends: list[bytes] = []
        real_write = transport.write

        def counted(data: bytes | bytearray | memoryview) -> None:
            sends.append(bytes(data))
            real_write(data)

        transport.write = counted  # type: ignore[method-assign]
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        coalescing.write(b"{}")
        assert sends == []  # not before the step ends
        await asyncio.sleep(0)
        assert sends == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        coalescing.write(b"later")
        await asyncio.sleep(0)
        assert sends[1:] == [b"later"]
        assert await reader.readexactly(45) == sends[0] + b"later"


async def test_close_sends_what_was_written_first() -> None:
    async with connected() as (transport, reader):
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        assert coalescing.get_extra_info("peername") is not None  # the transport's own
        coalescing.write(b"last words")
        coalescing.close()
        assert coalescing.is_closing()
        coalescing.write(b"after close")  # dropped, not an error
        await asyncio.sleep(0)
        assert await reader.read() == b"last words"


async def test_writelines_and_write_eof_keep_the_order() -> None:
    """What bypasses write() (a websocket upgrade's writelines, a half-close) still goes
    out after what was written before it."""
    async with connected() as (transport, reader):
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        coalescing.write(b"first ")
        coalescing.writelines([b"second ", b"third"])
        assert coalescing.get_write_buffer_size() == len(b"first second third")
        coalescing.write_eof()  # sends what was written, then the end
        with pytest.raises(RuntimeError):  # to the writer, not later in a callback
            coalescing.write(b"after the end")
        assert await reader.read() == b"first second third"


async def test_abort_drops_what_was_not_sent() -> None:
    async with connected() as (transport, reader):
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        coalescing.write(b"never")
        coalescing.abort()
        await asyncio.sleep(0)
        assert coalescing.is_closing()
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read() == b""
