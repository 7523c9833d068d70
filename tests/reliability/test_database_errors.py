"""A database that cannot serve — unreachable, or locked past the timeouts — answers 503
``database_unavailable`` with Retry-After from the app, ends event streams with an
``error`` event, and never stops the meter loop (issue 11, points 3 and 5, in-process; the
outage and hang of a real server are in test_database_outage.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import text

from callmeter.app import create_app, create_runtime
from callmeter.auth.tokens import issue_access_token
from callmeter.calls.events import call_events
from callmeter.config import PasswordHashProfile
from callmeter.kit.clock import ManualClock
from callmeter.kit.db import create_engine, create_sessionmaker, is_sqlite
from callmeter.kit.runtime import Runtime, password_hasher
from callmeter.meter.loop import run_meter
from callmeter.models import CallStatus, Role
from tests.conftest import make_settings, settle_sqlite_threads, sqlite_url
from tests.factories import auth_headers, make_user
from tests.reliability.cluster import free_port

LOCK_TIMEOUT = 0.5  # the statement timeout (PostgreSQL) / busy timeout (SQLite) here


def runtime_for(url: str, clock: ManualClock | None = None, **engine_options: Any) -> Runtime:
    """A runtime whose database waits are short (the settings' defaults are seconds)."""
    options: dict[str, Any] = {
        "pool_timeout": LOCK_TIMEOUT,
        "connect_timeout": LOCK_TIMEOUT,
        "statement_timeout": LOCK_TIMEOUT,
        "sqlite_busy_timeout": LOCK_TIMEOUT,
    }
    engine = create_engine(url, **(options | engine_options))
    return Runtime(
        settings=make_settings(url),
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        read_sessionmaker=create_sessionmaker(engine, read_only=True),
        clock=clock or ManualClock(),
        hasher=password_hasher(PasswordHashProfile.cheapest),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime whose database cannot be reached: a SQLite file in a directory that does
    not exist, a PostgreSQL port nobody listens on."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "missing" / "callmeter.db")
    else:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/callmeter"
    runtime = create_runtime(make_settings(url))
    try:
        yield runtime
    finally:
        await runtime.close()
        await settle_sqlite_threads()


def bearer(runtime: Runtime, user_id: int = 1, role: Role = Role.client) -> dict[str, str]:
    token = issue_access_token(
        user_id=user_id,
        role=role,
        secret=runtime.settings.secret_key,
        now=runtime.clock.now(),
        ttl_seconds=3600,
    )
    return {"Authorization": f"Bearer {token}"}


def assert_unavailable(response: Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) > 0


class TestUnreachableDatabase:
    async def test_api_calls_answer_503_with_retry_after(self, unreachable: Runtime) -> None:
        app = create_app(runtime=unreachable)
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
            headers = bearer(unreachable)
            assert_unavailable(await http.get("/v1/me", headers=headers))
            assert_unavailable(await http.get("/v1/calls", headers=headers))
            beat = await http.post(
                "/v1/calls/1/heartbeat", json={"media_connected": True}, headers=headers
            )
            assert_unavailable(beat)
            login = {"username": "somebody", "password": "long enough password"}
            assert_unavailable(await http.post("/v1/auth/login", json=login))

    async def test_readyz_answers_503_and_healthz_200(self, unreachable: Runtime) -> None:
        app = create_app(runtime=unreachable)
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
            started = time.monotonic()
            assert_unavailable(await http.get("/readyz"))
            assert time.monotonic() - started < 2
            assert (await http.get("/healthz")).json() == {"status": "ok"}

    async def test_event_stream_ends_with_an_error_event(self, unreachable: Runtime) -> None:
        events = [event async for event in call_events(unreachable, call_id=1, user_id=1)]
        assert [e["event"] for e in events] == ["error"]
        assert json.loads(str(events[0]["data"]))["error"] == "database_unavailable"
        assert events[0]["retry"] == 2000


class TestLockedDatabase:
    """A write that waits for a lock longer than the statement timeout (PostgreSQL) or
    the busy timeout (SQLite) answers 503, not 500, and works once the lock is gone."""

    async def test_a_write_blocked_past_the_timeout_answers_503(self, database_url: str) -> None:
        runtime = runtime_for(database_url)
        holder = create_engine(database_url)
        try:
            host = await make_user(runtime, Role.host)
            app = create_app(runtime=runtime)
            transport = ASGITransport(app=app)
            async with AsyncClient(transport=transport, base_url="http://t") as http:
                headers = await auth_headers(http, host.username)
                body = {"accepting_calls": False}
                async with holder.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock
                    await conn.execute(
                        text("UPDATE users SET display_name = display_name WHERE id = :id"),
                        {"id": host.id},
                    )
                    started = time.monotonic()
                    assert_unavailable(await http.put("/v1/hosts/me", json=body, headers=headers))
                    assert time.monotonic() - started < LOCK_TIMEOUT + 3
                r = await http.put("/v1/hosts/me", json=body, headers=headers)
                assert r.status_code == 200, r.text
                assert r.json()["accepting_calls"] is False
        finally:
            await holder.dispose()
            await runtime.close()

    async def test_readyz_is_ready_while_a_writer_holds_the_lock(self, database_url: str) -> None:
        runtime = runtime_for(database_url)
        holder = create_engine(database_url)
        try:
            transport = ASGITransport(app=create_app(runtime=runtime))
            async with (
                AsyncClient(transport=transport, base_url="http://t") as http,
                holder.begin() as conn,  # SQLite: BEGIN IMMEDIATE, the write lock
            ):
                await conn.execute(text("UPDATE accounts SET held = held"))
                r = await http.get("/readyz")
                assert r.status_code == 200, r.text
        finally:
            await holder.dispose()
            await runtime.close()


async def test_an_exhausted_pool_answers_503(database_url: str) -> None:
    """Every pooled connection busy past the pool timeout: 503, not a pool-exhaustion 500."""
    runtime = runtime_for(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        client = await make_user(runtime, Role.client)
        transport = ASGITransport(app=create_app(runtime=runtime))
        async with AsyncClient(transport=transport, base_url="http://t") as http:
            headers = await auth_headers(http, client.username)
            async with runtime.engine.connect():  # the only connection, checked out
                assert_unavailable(await http.get("/v1/me", headers=headers))
            assert (await http.get("/v1/me", headers=headers)).status_code == 200
    finally:
        await runtime.close()


async def test_meter_loop_survives_an_unreachable_database(
    sqlite_template: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database goes away under a running meter loop and comes back: the loop logs
    each failed tick, keeps its cadence, and does its work again once it can."""
    home = tmp_path / "db"
    home.mkdir()
    shutil.copyfile(sqlite_template, home / "callmeter.db")
    url = sqlite_url(home / "callmeter.db")
    assert is_sqlite(url)
    clock = ManualClock()
    runtime = runtime_for(url, clock)
    runtime.settings = make_settings(url, meter_tick_seconds=0.02)
    try:
        app = create_app(runtime=runtime)
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
            client = await make_user(runtime, Role.client, coins=100)
            host = await make_user(runtime, Role.host)
            ring = await http.post(
                "/v1/calls",
                json={"host_id": host.id},
                headers=await auth_headers(http, client.username),
            )
            assert ring.status_code == 201, ring.text
            call_id = ring.json()["call"]["id"]
        await runtime.engine.dispose()
        home.rename(tmp_path / "away")  # every new connection now fails
        clock.advance(runtime.settings.ring_timeout_seconds + 1)

        stop = asyncio.Event()
        caplog.set_level(logging.WARNING, logger="callmeter.meter.loop")
        meter = asyncio.create_task(run_meter(runtime, stop))

        def failures() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "callmeter.meter.loop"]

        async with asyncio.timeout(10):
            while len(failures()) < 3:
                assert not meter.done(), f"the meter loop died: {meter}"
                await asyncio.sleep(0.01)
        (tmp_path / "away").rename(home)

        async def ended() -> bool:
            async with runtime.sessionmaker() as session:
                row = await session.execute(
                    text("SELECT status FROM calls WHERE id = :id"), {"id": call_id}
                )
                return row.scalar_one() == CallStatus.ended.value

        async with asyncio.timeout(10):
            while not await ended():
                assert not meter.done(), f"the meter loop died: {meter}"
                await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(meter, 5)
        assert all(r.levelno == logging.WARNING and not r.exc_info for r in failures())
    finally:
        await runtime.close()
        await settle_sqlite_threads()
