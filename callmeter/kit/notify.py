"""Wake-ups from the database: PostgreSQL LISTEN on one channel, and this process's commits.
The same connection may also listen on other channels that wake nobody: it only notes when
each was last heard (a beacon, such as the meter's "still ticking").

A notification says "something changed, look again"; its payload may say what (a call's
id: migration 0016), for whoever keeps rows in memory. Whoever listens reads what it needs
itself, so a lost notification (a dropped connection, a restart) costs at most the
listener's own catch-up period, never a change; a memory of rows is dropped whenever a
LISTEN connection (re)opens, since what was said before it was not heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from callmeter.kit.db import is_sqlite

log = logging.getLogger(__name__)

RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)


def asyncpg_dsn(database_url: str) -> str:
    """The libpq-style address asyncpg connects to, from a SQLAlchemy URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class DatabaseWakeups:
    """Calls ``wake`` whenever a notification arrives on ``channel`` from any process
    (PostgreSQL), and — unless ``on_commit`` is False — after this process commits (any
    engine connection) while no LISTEN connection is open (SQLite; PostgreSQL while it is
    away). Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(
        self,
        engine: AsyncEngine,
        channel: str,
        wake: Callable[[], None],
        *,
        on_commit: bool = True,
        beacons: tuple[str, ...] = (),
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.wake = wake
        self.on_commit = on_commit
        self.beacons = beacons
        self._beacon_heard: dict[str, float] = {}  # channel -> loop time last heard
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self.on_payload: list[Callable[[str], None]] = []  # each notification's payload
        self.on_listening: list[Callable[[], None]] = []  # a LISTEN connection (re)opened

    @property
    def listening(self) -> bool:
        """Whether a LISTEN connection is open now (always False on SQLite)."""
        return self._listening

    def heard_since(self, beacon: str, seconds: float) -> bool:
        """Whether a notification on ``beacon`` (one of :attr:`beacons`) arrived within the
        last ``seconds``, while this connection listened."""
        heard = self._beacon_heard.get(beacon)
        return heard is not None and asyncio.get_running_loop().time() - heard <= seconds

    @property
    def started(self) -> bool:
        return self._task is not None or event.contains(
            self.engine.sync_engine, "commit", self._committed
        )

    def start(self) -> None:
        if self.on_commit:
            event.listen(self.engine.sync_engine, "commit", self._committed)
        if not is_sqlite(str(self.engine.url)):
            self._task = asyncio.get_running_loop().create_task(self._listen())

    def _committed(self, _connection: Any) -> None:
        # While LISTEN is up, every change that matters notifies (from this process too):
        # a commit that changed nothing a listener reads (a heartbeat's presence) wakes
        # nobody. Without it (SQLite, or the connection lost), every commit wakes.
        if not self._listening:
            self.wake()

    async def _listen(self) -> None:
        dsn = asyncpg_dsn(self.engine.url.render_as_string(hide_password=False))
        failures = 0
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(dsn, timeout=5)
                lost = asyncio.Event()
                connection.add_termination_listener(_setter(lost))
                await connection.add_listener(self.channel, self._notified)
                for beacon in self.beacons:
                    await connection.add_listener(beacon, self._beacon)
                for began in self.on_listening:
                    began()
                self._listening, failures = True, 0
                self.wake()  # whatever was said while nobody listened
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: poll until it is back
                log.warning("LISTEN %s failed: %s", self.channel, exc)
            finally:
                self._listening = False
                self._beacon_heard.clear()  # what was heard before says nothing of now
                if connection is not None and not connection.is_closed():
                    await _close_quietly(connection)
            await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
            failures += 1

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        for heard in self.on_payload:
            heard(payload)
        self.wake()

    def _beacon(self, _connection: object, _pid: int, channel: str, _payload: str) -> None:
        self._beacon_heard[channel] = asyncio.get_running_loop().time()

    async def close(self) -> None:
        if event.contains(self.engine.sync_engine, "commit", self._committed):
            event.remove(self.engine.sync_engine, "commit", self._committed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _setter(flag: asyncio.Event) -> Callable[[object], None]:
    return lambda _connection: flag.set()


async def _close_quietly(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), 2)
    except Exception:
        connection.terminate()
