"""The live call stream over a real HTTP connection (uvicorn on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.app import create_app, create_runtime
from callmeter.calls import feed as feed_module
from callmeter.calls import service
from callmeter.kit.db import run_in_transaction
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.calls.driver import CallDriver


@pytest.fixture
async def base_url(runtime: Runtime) -> AsyncIterator[str]:
    runtime.settings = runtime.settings.model_copy(update={"events_poll_seconds": 0.1})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(runtime=runtime), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


class Stream:
    """Reads ``event:``/``data:`` blocks from an open event stream."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self, within: float = 3.0) -> tuple[str, Any]:
        async def read() -> tuple[str, Any]:
            event, data = "message", ""
            async for line in self.lines:
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data += line.split(":", 1)[1].strip()
                elif line == "" and data:
                    return event, json.loads(data)
            raise EOFError

        return await asyncio.wait_for(read(), within)

    async def until(self, event: str, check: Any, within: float = 3.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            kind, data = await self.next(max(0.01, deadline - time.monotonic()))
            if kind == event and check(data):
                return data


async def test_changes_from_another_process_reach_the_stream(
    driver: CallDriver, runtime: Runtime, base_url: str
) -> None:
    caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
    call = await driver.ring(caller, host)
    url = f"{base_url}/v1/calls/{call['id']}/events"
    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", url, headers=caller.headers, timeout=10) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        first = await stream.until("call", lambda c: True)
        assert first["status"] == "ringing"

        await driver.post(f"/v1/calls/{call['id']}/accept", host)
        assert (await stream.until("call", lambda c: c["status"] == "connecting"))["id"]

        # Another process (its own engine and pool) ends the call, as a worker would.
        other = create_runtime(runtime.settings, driver.clock)
        try:

            async def end(session: AsyncSession) -> object:
                return await service.admin_end(
                    session, call_id=call["id"], settings=runtime.settings, now=driver.clock.now()
                )

            started = time.monotonic()
            await run_in_transaction(other.sessionmaker, end)
            final = await stream.until("call", lambda c: c["status"] == "ended", within=2.0)
            assert time.monotonic() - started < 2.0
        finally:
            await other.close()
        assert final["end_reason"] == "admin"
        with pytest.raises(EOFError):  # the stream closes after the final event
            await stream.next()


async def test_signals_reach_the_other_party(driver: CallDriver, base_url: str) -> None:
    caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
    call = await driver.ring(caller, host)
    await driver.post(f"/v1/calls/{call['id']}/accept", host)
    url = f"{base_url}/v1/calls/{call['id']}/events"
    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", url, headers=host.headers, timeout=10) as response,
    ):
        stream = Stream(response)
        offer = {"sdp": "v=0 fake offer", "type": "offer"}
        r = await driver.post(
            f"/v1/calls/{call['id']}/signal", caller, {"type": "offer", "payload": offer}
        )
        assert r.status_code == 202
        signal = await stream.until("signal", lambda s: True)
        assert (signal["type"], signal["payload"], signal["sender_id"]) == (
            "offer",
            offer,
            caller.user.id,
        )
    # a host page that joined again asks the client for a fresh offer (docs/web.md)
    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", url, headers=caller.headers, timeout=10) as response,
    ):
        stream = Stream(response)
        r = await driver.post(
            f"/v1/calls/{call['id']}/signal", host, {"type": "restart", "payload": {}}
        )
        assert r.status_code == 202
        signal = await stream.until("signal", lambda s: s["type"] == "restart")
        assert (signal["payload"], signal["sender_id"]) == ({}, host.user.id)
    bad = await driver.post(f"/v1/calls/{call['id']}/signal", caller, {"type": "bye"})
    assert bad.status_code == 422


async def test_a_quiet_stream_gets_keepalive_comments_and_changes_as_call_events(
    driver: CallDriver, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call first; while nothing changes, a `: keepalive` comment line every
    KEEPALIVE_SECONDS (no event, nothing read or rendered); a change is a `call` event."""
    monkeypatch.setattr(feed_module, "KEEPALIVE_SECONDS", 0.3)
    caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
    call = await driver.ring(caller, host)
    url = f"{base_url}/v1/calls/{call['id']}/events"

    async def lines_until(lines: AsyncIterator[str], last: Callable[[str], bool]) -> list[str]:
        seen = []
        async for line in lines:
            seen.append(line)
            if last(line):
                return seen
        raise EOFError

    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", url, headers=caller.headers, timeout=10) as response,
    ):
        lines = response.aiter_lines()
        first = await asyncio.wait_for(lines_until(lines, lambda x: x.startswith("data:")), 3)
        assert "event: call" in first
        assert '"ringing"' in first[-1]
        count = iter(range(1, 4))
        kept = await asyncio.wait_for(
            lines_until(lines, lambda x: x == ": keepalive" and next(count) == 3), 3
        )
        assert not any(x.startswith(("event:", "data:")) for x in kept), kept  # nothing else
        assert (await driver.post(f"/v1/calls/{call['id']}/accept", host)).status_code == 200
        changed = await asyncio.wait_for(lines_until(lines, lambda x: x.startswith("data:")), 3)
        assert "event: call" in changed
        assert '"connecting"' in changed[-1]


async def test_only_parties_and_admins_may_stream(driver: CallDriver, base_url: str) -> None:
    caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
    outsider, admin = await driver.party(Role.client), await driver.party(Role.admin)
    call = await driver.ring(caller, host)
    url = f"{base_url}/v1/calls/{call['id']}/events"
    async with httpx.AsyncClient() as http:
        assert (await http.get(url, headers=outsider.headers)).status_code == 404
        assert (await http.get(url)).status_code == 401
        async with http.stream("GET", url, headers=admin.headers, timeout=10) as response:
            assert response.status_code == 200
            assert (await Stream(response).until("call", lambda c: True))["id"] == call["id"]


async def refused(http: httpx.AsyncClient, url: str, who: dict[str, str]) -> httpx.Response:
    """Open a stream expecting a refusal (closed at once either way: never hangs)."""
    async with http.stream("GET", url, headers=who) as response:
        if response.status_code != 200:
            await response.aread()
        return response


class TestStreamCaps:
    """Open streams are capped per user and call and per user (in this process); a closed
    stream frees its slot."""

    async def test_caps_refuse_with_429_and_a_closed_stream_frees_its_slot(
        self, driver: CallDriver, runtime: Runtime, base_url: str
    ) -> None:
        runtime.settings = runtime.settings.model_copy(
            update={"max_streams_per_user_call": 2, "max_streams_per_user": 3}
        )
        admin = await driver.party(Role.admin)  # may stream any call: one user, many calls
        calls = []
        for _ in range(3):
            caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
            calls.append((await driver.ring(caller, host))["id"])
        first, second, third = (f"{base_url}/v1/calls/{c}/events" for c in calls)

        async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as open_:

            async def stream(url: str) -> httpx.Response:
                return await open_.enter_async_context(
                    http.stream("GET", url, headers=admin.headers)
                )

            held = [await stream(first), await stream(first)]
            assert [r.status_code for r in held] == [200, 200]
            over = await refused(http, first, admin.headers)
            assert over.status_code == 429
            assert over.json()["error"] == "too_many_streams"
            assert over.headers["Retry-After"] == "5"

            assert (await stream(second)).status_code == 200  # 3 of 3 for this user
            assert (await refused(http, third, admin.headers)).status_code == 429

            await held[0].aclose()  # the server sees the client go and frees the slot
            deadline = time.monotonic() + 3
            while True:
                reopened = await stream(third)
                if reopened.status_code == 200 or time.monotonic() > deadline:
                    break
                await reopened.aclose()
                await asyncio.sleep(0.05)
            assert reopened.status_code == 200
            assert (await Stream(reopened).until("call", lambda c: True))["id"] == calls[2]
        # every stream closed: every slot is free again
        deadline = time.monotonic() + 3
        while runtime.streams.held(("user", admin.user.id)) and time.monotonic() < deadline:  # noqa: ASYNC110 - freed when the server notices the disconnect
            await asyncio.sleep(0.05)
        assert runtime.streams.held(("user", admin.user.id)) == 0

    async def test_a_party_is_capped_per_call(
        self, driver: CallDriver, runtime: Runtime, base_url: str
    ) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        url = f"{base_url}/v1/calls/{call['id']}/events"
        limit = runtime.settings.max_streams_per_user_call
        async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as open_:
            for _ in range(limit):
                response = await open_.enter_async_context(
                    http.stream("GET", url, headers=caller.headers)
                )
                assert response.status_code == 200
            assert (await refused(http, url, caller.headers)).status_code == 429
            # the other party has slots of its own
            response = await open_.enter_async_context(
                http.stream("GET", url, headers=host.headers)
            )
            assert response.status_code == 200
