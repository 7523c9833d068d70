"""Engines and sessions that behave the same on SQLite and PostgreSQL.

Correctness never depends on isolation levels: it comes from conditional UPDATEs,
compare-and-set on version columns and unique constraints (docs/design.md). What this module
adds is the plumbing that makes those guards work on both databases:

* SQLite: WAL, ``busy_timeout``, foreign keys, and every transaction opened with
  ``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of deadlocking when a
  reader upgrades to a writer.
* PostgreSQL: READ COMMITTED (the default); :func:`run_in_transaction` retries on
  serialization failures and deadlocks (40001 / 40P01), and so does an HTTP request
  (``kit/retry.py``).

Every wait on the database is bounded (docs/reliability.md): the pool checkout
(``pool_timeout``), the connection (``connect_timeout``), each statement (PostgreSQL's own
``statement_timeout``, and the driver's ``command_timeout`` one second later for a server
that does not answer at all); on SQLite, ``busy_timeout``. :func:`is_unavailable` tells
which errors mean "the database is down, hung or busy" — the app answers them 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event, exc, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, ExceptionContext, make_url
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
# the driver's own timeout comes this long after the server's statement_timeout, so that a
# slow statement is cancelled by the server (the connection stays usable) and only a
# server that does not answer at all meets the driver's
DRIVER_TIMEOUT_MARGIN_SECONDS = 1.0
# SQLSTATE classes and codes that mean the database cannot serve right now: connection
# exception, insufficient resources (too many connections), operator intervention
# (statement timeout, shutdown, starting up), lock not available (lock_timeout)
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
UNAVAILABLE_SQLSTATES = frozenset({"55P03"})
DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.")
READ_ONLY = "callmeter_read_only"


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(
    url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 10,
    pool_timeout: float = 30.0,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
    sqlite_busy_timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000,
) -> AsyncEngine:
    """An async engine for ``url`` with the per-dialect setup described above.

    The pool keeps ``pool_size`` connections open; the ``max_overflow`` beyond it are
    closed again when returned, so a pool smaller than the usual concurrency opens and
    closes a PostgreSQL backend for every other request (measured: `make bench`).
    ``pool_timeout`` bounds the wait for a pooled connection; on PostgreSQL
    ``connect_timeout`` bounds opening one and ``statement_timeout`` (None or 0: no limit)
    each statement. SQLite waits up to ``sqlite_busy_timeout`` for the write lock."""
    if is_sqlite(url):
        engine = create_async_engine(
            url,
            connect_args={"timeout": sqlite_busy_timeout},
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
        )
        _configure_sqlite(engine, busy_timeout_ms=round(sqlite_busy_timeout * 1000))
        return engine
    connect_args: dict[str, Any] = {}
    if connect_timeout:
        connect_args["timeout"] = connect_timeout
    if statement_timeout:
        connect_args["server_settings"] = {
            "statement_timeout": str(round(statement_timeout * 1000))
        }
        connect_args["command_timeout"] = statement_timeout + DRIVER_TIMEOUT_MARGIN_SECONDS
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        connect_args=connect_args,
    )
    _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine: AsyncEngine) -> None:
    # Whether the server was last seen not answering: until a new connection succeeds,
    # a discarded connection is dropped at once, because SQLAlchemy's graceful close would
    # wait 2 s per connection for a goodbye that a hung server never sends.
    unresponsive = [False]

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        # asyncpg raises its command timeout and a lost socket as bare TimeoutError /
        # OSError, which SQLAlchemy would pass on unwrapped and return to the pool: the
        # connection's state is unknown, so it is discarded, and the error becomes an
        # OperationalError like every other "cannot reach the database".
        original = context.original_exception
        if isinstance(original, OSError) and context.sqlalchemy_exception is None:
            context.is_disconnect = True
            return exc.OperationalError(
                context.statement,
                context.parameters,
                original,
                connection_invalidated=True,
            )
        return None

    @event.listens_for(engine.sync_engine, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, _record: Any, error: BaseException | None) -> None:
        # a statement or the pool's pre-ping timed out: the server does not answer
        if isinstance(error, TimeoutError) or isinstance(
            getattr(error, "orig", None), TimeoutError
        ):
            unresponsive[0] = True

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_dbapi_connection: Any, _record: Any) -> None:
        unresponsive[0] = False

    @event.listens_for(engine.sync_engine, "close")
    def _on_close(dbapi_connection: Any, _record: Any) -> None:
        if unresponsive[0]:
            dbapi_connection.driver_connection.terminate()


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver; _on_begin emits our own BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers (event streams, reports) need no write lock; writers take it up front.
        readonly = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _refuse_writes_when_reading(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # A reader that wrote would take the write lock mid-transaction, the upgrade
        # BEGIN IMMEDIATE exists to avoid (PostgreSQL's READ ONLY transactions refuse too).
        if not conn.get_execution_options().get(READ_ONLY, False):
            return
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            raise ReadOnlyViolation(f"a write in a read-only transaction: {statement[:80]}")


class ReadOnlyViolation(RuntimeError):
    """A read-only session tried to write (a bug: the code chose the wrong session)."""


def create_sessionmaker(
    engine: AsyncEngine, *, read_only: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``read_only`` ones must not write (on SQLite they take no
    write lock, so they never wait for or block a writer)."""
    if not read_only:
        return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True  # BEGIN READ ONLY: the server refuses writes
    bind = engine.execution_options(**options)
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` on the session's dialect."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect: {name}")


def is_lost_race(exc: BaseException) -> bool:
    """A serialization failure or deadlock (PostgreSQL): the transaction lost to another."""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code in RETRYABLE_SQLSTATES


def is_retryable(exc: BaseException) -> bool:
    """A serialization failure or deadlock (PostgreSQL) or a busy database (SQLite)."""
    if is_lost_race(exc):
        return True
    return isinstance(exc, DBAPIError) and "database is locked" in str(exc.orig)


def is_unavailable(error: BaseException) -> bool:
    """``error`` means the database cannot serve right now — down, hung, overloaded or
    (SQLite) locked past the busy timeout — rather than a bug: the answer is 503 and a
    retry later, not 500.

    Covers SQLAlchemy's OperationalError / InterfaceError / DisconnectionError, the pool's
    checkout TimeoutError, PostgreSQL errors of the classes above, and the bare
    ``TimeoutError`` / ``OSError`` (connection refused, reset, timed out) that the drivers
    raise outside a statement (connecting, pre-ping)."""
    if isinstance(error, exc.OperationalError | exc.InterfaceError | exc.DisconnectionError):
        return True
    if isinstance(error, exc.TimeoutError):  # pool checkout
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
        return isinstance(code, str) and (
            code in UNAVAILABLE_SQLSTATES or code[:2] in UNAVAILABLE_SQLSTATE_CLASSES
        )
    if isinstance(error, OSError):  # TimeoutError and ConnectionError included
        return _raised_by_driver(error)
    return False


def is_disconnected(error: BaseException) -> bool:
    """``error`` means no connection could be had or kept (the server down, unreachable or
    not answering a connection), as opposed to one statement that failed or took too long
    (a statement timeout, a lock wait): retrying other, smaller work cannot help."""
    if isinstance(error, exc.InterfaceError | exc.DisconnectionError | exc.TimeoutError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
        if isinstance(code, str):
            return code[:2] == "08"
        return isinstance(error.orig, OSError) or "unable to open" in str(error.orig)
    if isinstance(error, OSError):
        return _raised_by_driver(error)
    return False


def _raised_by_driver(error: BaseException) -> bool:
    traceback = error.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


class DatabaseProbe:
    """``SELECT 1`` on an engine, answered within a deadline whatever the database does.

    The probe runs as a task of its own, so giving up at the deadline never cancels a
    database operation midway (the engine's own timeouts end it); while one probe runs,
    later callers wait for it rather than start another, so a hung database never piles
    up probes."""

    def __init__(self, engine: AsyncEngine) -> None:
        # read-only: on SQLite it takes no write lock, so a busy writer does not fail it
        self.engine = engine.execution_options(**{READ_ONLY: True})
        self._running: asyncio.Task[bool] | None = None

    async def reachable(self, deadline_seconds: float) -> bool:
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._select_one())
        try:
            return await asyncio.wait_for(asyncio.shield(self._running), deadline_seconds)
        except TimeoutError:
            return False

    async def _select_one(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as error:
            if not is_unavailable(error):
                log.exception("database probe failed", exc_info=error)
            return False
        return True

    async def close(self) -> None:
        if self._running is not None and not self._running.done():
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._running


def retry_delay(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after a lost race: 20 ms, doubling
    per attempt up to 0.5 s, times a random 0.5 to 1.5 so that the losers do not meet again."""
    return min(0.5, 0.01 * (1 << attempt)) * (0.5 + random.random())


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
            log.warning("retrying transaction after %s (attempt %d)", exc.orig, attempt)
            await asyncio.sleep(retry_delay(attempt))
    raise AssertionError("unreachable")
