"""What a running process shares: settings, database, clock, password hasher, and the
media server's client (built by the entry points: kit knows it only as something to close)."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from argon2 import PasswordHasher, profiles
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callmeter.config import PasswordHashProfile, Settings
from callmeter.kit.clock import Clock, SystemClock
from callmeter.kit.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    DatabaseProbe,
    create_engine,
    create_sessionmaker,
    is_sqlite,
)
from callmeter.kit.gate import Gate
from callmeter.kit.slots import RecentEvents, Slots

T = TypeVar("T")

# How much lower than the process a hashing thread runs (Linux niceness is per thread;
# argon2's lane threads inherit it): the event loop, and so every heartbeat, comes first.
HASHING_NICENESS = 10

# The pool of the process's own database work (Runtime.own_engine): memory's batch (with
# its read-back) or refresh, its read of calls not held, and the feed's read run at once.
OWN_POOL_SIZE = 3
OWN_POOL_OVERFLOW = 2


class MediaServer(Protocol):
    """A media server's client as the runtime holds it: ``media.livekit.LiveKit``, built
    by ``app.create_runtime`` (kit sits below the domains and never imports them)."""

    async def close(self) -> None: ...


class Closeable(Protocol):
    async def close(self) -> None: ...


class PaymentGateway(Protocol):
    """The payment provider as the runtime holds it (``payments.provider``)."""

    async def close(self) -> None: ...


def password_hasher(profile: PasswordHashProfile) -> PasswordHasher:
    if profile is PasswordHashProfile.cheapest:
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    return PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)


def _lower_thread_priority() -> None:
    try:
        tid = threading.get_native_id()
        nice = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + HASHING_NICENESS))
    except (AttributeError, OSError):  # not Linux: the threads run at normal priority
        pass


def hashing_threads(count: int) -> ThreadPoolExecutor:
    """``count`` low-priority threads: at most that many password hashes run at once."""
    return ThreadPoolExecutor(
        max_workers=count, thread_name_prefix="password-hash", initializer=_lower_thread_priority
    )


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    read_sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock = field(default_factory=SystemClock)
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    # Logins and registrations in progress at once, each with one password hash.
    auth_gate: Gate = field(default_factory=lambda: Gate(slots=2, queue=16, wait_seconds=1.0))
    hashing: ThreadPoolExecutor = field(default_factory=lambda: hashing_threads(2))
    livekit: MediaServer | None = None  # media.livekit.client(runtime) gives it typed
    payments: PaymentGateway | None = None  # payments.provider.provider(runtime), typed
    payouts: PaymentGateway | None = None  # payouts.provider.payout_provider(runtime), typed
    streams: Slots = field(default_factory=Slots)  # open event streams, this process only
    call_feed: Closeable | None = None  # calls.feed.call_feed(runtime) builds it, typed
    quiet_beats: Closeable | None = None  # calls.beats.quiet_beats(runtime) builds it
    recent_signals: RecentEvents = field(default_factory=RecentEvents)  # per sender and call
    recent_messages: RecentEvents = field(default_factory=RecentEvents)  # per sender and call
    flood_lookups: Slots = field(default_factory=Slots)  # a refused retry's look, per key
    # The process's own database work — heartbeat memory's batches and reads, the change
    # feed's reads — on a small pool of its own (PostgreSQL; the same database and waits):
    # requests holding every connection of the main pool cannot make it wait for one (its
    # failure would send every heartbeat to the database, which holds the pool longer:
    # docs/billing.md). Without one, it shares the main pool (SQLite, tests).
    own_engine: AsyncEngine | None = None
    own_sessionmaker: async_sessionmaker[AsyncSession] = field(init=False)
    own_read_sessionmaker: async_sessionmaker[AsyncSession] = field(init=False)
    database_probe: DatabaseProbe = field(init=False)

    def __post_init__(self) -> None:
        self.database_probe = DatabaseProbe(self.engine)
        if self.own_engine is None:
            self.own_sessionmaker, self.own_read_sessionmaker = (
                self.sessionmaker,
                self.read_sessionmaker,
            )
        else:
            self.own_sessionmaker = create_sessionmaker(self.own_engine)
            self.own_read_sessionmaker = create_sessionmaker(self.own_engine, read_only=True)

    @property
    def engines(self) -> tuple[AsyncEngine, ...]:
        """Every engine of this process (the main one first)."""
        return (self.engine,) if self.own_engine is None else (self.engine, self.own_engine)

    @classmethod
    def create(
        cls,
        settings: Settings,
        clock: Clock | None = None,
        *,
        livekit: MediaServer | None = None,
    ) -> Runtime:
        """The runtime for ``settings``; ``livekit`` is the media server's client, if any
        (``app.create_runtime`` builds it from the settings)."""
        pool_timeout = settings.db_pool_timeout_seconds
        if is_sqlite(settings.database_url):
            # SQLite's writers queue on one lock anyway: waiting for a pooled connection is
            # the same queue, bounded by the busy timeout (a burst is slow, not refused)
            pool_timeout = max(pool_timeout, SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine_for = functools.partial(
            create_engine,
            settings.database_url,
            pool_timeout=pool_timeout,
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout=settings.db_statement_timeout_seconds,
        )
        engine = engine_for()
        own_engine = None
        if not is_sqlite(settings.database_url):  # SQLite's one write lock: no gain
            own_engine = engine_for(pool_size=OWN_POOL_SIZE, max_overflow=OWN_POOL_OVERFLOW)
        return cls(
            settings=settings,
            engine=engine,
            own_engine=own_engine,
            sessionmaker=create_sessionmaker(engine),
            read_sessionmaker=create_sessionmaker(engine, read_only=True),
            clock=clock or SystemClock(),
            hasher=password_hasher(settings.password_hash_profile),
            auth_gate=Gate(
                slots=settings.password_hash_concurrency,
                queue=settings.password_hash_queue,
                wait_seconds=settings.password_hash_wait_seconds,
            ),
            hashing=hashing_threads(settings.password_hash_concurrency),
            livekit=livekit,
        )

    async def in_hashing_thread(self, work: Callable[..., T], *args: object) -> T:
        """Run a password hash or verification in one of the hashing threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.hashing, functools.partial(work, *args))

    async def close(self) -> None:
        if self.quiet_beats is not None:  # first: it writes what it holds
            await self.quiet_beats.close()
            self.quiet_beats = None
        if self.call_feed is not None:
            await self.call_feed.close()
            self.call_feed = None
        await self.database_probe.close()
        self.hashing.shutdown(wait=False, cancel_futures=True)
        if self.livekit is not None:
            await self.livekit.close()
        if self.payments is not None:
            await self.payments.close()
        if self.payouts is not None:
            await self.payouts.close()
        for engine in self.engines:
            await engine.dispose()
