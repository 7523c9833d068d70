"""Test fixtures: every database test runs on SQLite and, when CALLMETER_TEST_DATABASE_URL is
set, on PostgreSQL; the schema always comes from the Alembic migrations.

Isolation: SQLite tests get a copy of a migrated template file; PostgreSQL tests share the
migrated database and empty every table (TRUNCATE … RESTART IDENTITY) before each test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text

from callmeter.app import create_app, create_runtime
from callmeter.config import Environment, PasswordHashProfile, Settings
from callmeter.kit.clock import ManualClock
from callmeter.kit.db import create_engine
from callmeter.kit.migrate import upgrade
from callmeter.kit.runtime import Runtime
from callmeter.models import Base

if TYPE_CHECKING:
    from tests.payments.stripe_standin import StripeStandin

PG_URL = os.environ.get("CALLMETER_TEST_DATABASE_URL")
SYSTEM_ACCOUNTS_SQL = (
    "INSERT INTO accounts (kind, user_id, balance, held, created_at) VALUES "
    "('issuance', NULL, 0, 0, CURRENT_TIMESTAMP), ('revenue', NULL, 0, 0, CURRENT_TIMESTAMP), "
    "('losses', NULL, 0, 0, CURRENT_TIMESTAMP), ('payout_clearing', NULL, 0, 0, CURRENT_TIMESTAMP)"
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="CALLMETER_TEST_DATABASE_URL is not set"),
        ],
    ),
]

# A test that only makes sense against PostgreSQL (real lock waits, deadlocks).
postgres_only = pytest.mark.parametrize(
    "database_url",
    [BACKENDS[1]],
    indirect=True,
)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def settle_sqlite_threads() -> None:
    """Wait for aiosqlite's worker threads to finish, while this test's event loop runs.

    aiosqlite stops the thread of a connection that failed to open from that thread, with a
    future nobody awaits; if the loop closes first, the thread's hand-back raises "Event loop
    is closed" during whichever test runs next. Call after closing every engine."""

    def join() -> None:
        for thread in threading.enumerate():
            if "_connection_worker_thread" in thread.name:
                thread.join(timeout=5)

    await asyncio.to_thread(join)


async def _migrate_fresh_sqlite(path: Path) -> None:
    engine = create_engine(sqlite_url(path))
    await upgrade(engine)
    await engine.dispose()  # the last connection to close folds the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()


async def _migrate_fresh_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade(engine)
    await engine.dispose()


async def _empty_postgres(url: str) -> None:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await conn.execute(text(SYSTEM_ACCOUNTS_SQL))
    await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate_fresh_sqlite(path))
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    assert PG_URL
    asyncio.run(_migrate_fresh_postgres(PG_URL))
    return PG_URL


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database (but for the two system accounts)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "callmeter.db"
        shutil.copyfile(template, path)
        return sqlite_url(path)
    url: str = request.getfixturevalue("postgres_migrated")
    asyncio.run(_empty_postgres(url))
    return url


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "env": Environment.test,
        "password_hash_profile": PasswordHashProfile.cheapest,
        # Host presence is its own subject (tests/hosts/test_presence.py and the browser
        # tests, which keep the default); elsewhere every host counts as online.
        "host_presence_timeout_seconds": 0,
        # Heartbeats from memory flush on the real clock, which an injected clock outruns:
        # in-process tests write every heartbeat (tests/calls/test_beats.py flushes by hand,
        # and served processes keep the default).
        "presence_flush_seconds": 0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def runtime(settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    rt = create_runtime(settings, clock)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[AsyncClient]:
    app = create_app(runtime=runtime)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest.fixture
async def driver(client: AsyncClient, runtime: Runtime, clock: ManualClock) -> object:
    from tests.calls.driver import CallDriver

    return CallDriver(client, runtime, clock)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the `callmeter` command on a fresh SQLite file."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    environ["CALLMETER_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    environ["CALLMETER_PASSWORD_HASH_PROFILE"] = "cheapest"
    environ["CALLMETER_HOST_PRESENCE_TIMEOUT_SECONDS"] = "0"  # as in make_settings
    environ["COLUMNS"] = "120"
    return environ


@pytest.fixture
async def stripe_standin(clock: ManualClock) -> AsyncIterator[StripeStandin]:
    """The Stripe stand-in (tests/payments/stripe_standin.py), its clock agreeing with ours."""
    from tests.payments.stripe_standin import running_stripe

    async with running_stripe() as server:
        server.now = int(clock.now().timestamp())
        yield server
