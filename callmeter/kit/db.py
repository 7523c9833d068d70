"""Engines and sessions that behave the same on SQLite and PostgreSQL.

Correctness never depends on isolation levels: it comes from conditional UPDATEs,
compare-and-set on version columns and unique constraints (docs/design.md). What this module
adds is the plumbing that makes those guards work on both databases:

* SQLite: WAL, ``busy_timeout``, foreign keys, and every transaction opened with
  ``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of deadlocking when a
  reader upgrades to a writer.
* PostgreSQL: READ COMMITTED (the default); :func:`run_in_transaction` retries on
  serialization failures and deadlocks (40001 / 40P01).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
READ_ONLY = "callmeter_read_only"


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 20, max_overflow: int = 10) -> AsyncEngine:
    """An async engine for ``url`` with the per-dialect setup described above.

    The pool keeps ``pool_size`` connections open; the ``max_overflow`` beyond it are
    closed again when returned, so a pool smaller than the usual concurrency opens and
    closes a PostgreSQL backend for every other request (measured: `make bench`)."""
    if is_sqlite(url):
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver; _on_begin emits our own BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers (event streams, reports) need no write lock; writers take it up front.
        readonly = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``read_only`` ones must not write (on SQLite they take no
    write lock, so they never wait for or block a writer)."""
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` on the session's dialect."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect: {name}")


def is_retryable(exc: BaseException) -> bool:
    """A serialization failure or deadlock (PostgreSQL) or a busy database (SQLite)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    if code in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(orig)


async def run_in_transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = 5,
) -> T:
    """Run ``work`` in its own transaction, committing on success and retrying transient
    conflicts with jittered backoff. ``work`` must be safe to run again (all of ours are:
    they are idempotent by construction)."""
    for attempt in range(1, attempts + 1):
        try:
            async with sessionmaker.begin() as session:
                return await work(session)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            delay = min(0.5, 0.01 * 2**attempt) * (0.5 + random.random())
            log.warning("retrying transaction after %s (attempt %d)", exc.orig, attempt)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
