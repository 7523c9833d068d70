"""The change feed behind the live call streams: one per process, however many streams.

Every open stream *watches* its call through this process's feed. The feed reads the
database for all of them at once — the versions of every watched call in one query, the
rows that changed (or whose keepalive is due) in a second, new signals of every watched
call in a third — and hands each stream what is new for it. So the queries per second
depend on how often something changes, not on how many streams are open.

It reads when woken, and at least every ``events_poll_seconds`` (the catch-up):
- on PostgreSQL, by a notification on ``CHANNEL``, sent by triggers on ``calls`` (a change
  of ``version``, the state a party sees) and ``call_signals`` from any process;
- by a commit in this process (SQLite has no notifications: another process's change — the
  meter worker's — arrives with the catch-up).
A lost notification (the LISTEN connection dropped) costs at most one catch-up period.
Reads are at least ``MIN_GAP_SECONDS`` apart, so a burst of changes costs one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from callmeter.calls import repository
from callmeter.kit.db import is_unavailable
from callmeter.kit.notify import DatabaseWakeups
from callmeter.kit.runtime import Runtime
from callmeter.models import Call, CallSignal

log = logging.getLogger(__name__)

CHANNEL = "callmeter_calls"  # the triggers of migration 0009 notify it
KEEPALIVE_SECONDS = 5.0  # a watched call is read again (and sent) at least this often
MIN_GAP_SECONDS = 0.05  # between two reads: a burst of changes is read once


@dataclass(eq=False)
class Update:
    """What is new for one stream: the call (changed, or its keepalive), the signals
    addressed to it, or that it must stop (the call is gone, the database unavailable)."""

    call: Call | None = None
    signals: list[CallSignal] = field(default_factory=list)
    gone: bool = False
    unavailable: bool = False


@dataclass(eq=False)
class Watcher:
    """One stream's subscription: the feed fills ``pending`` and sets ``ready``."""

    call_id: int
    user_id: int
    signal_cursor: int  # the last signal delivered (or the stream's Last-Event-ID)
    version: int | None = None  # the last version delivered
    pending: Update = field(default_factory=Update)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def next(self) -> Update:
        """Wait for what is new (a slow reader gets the latest call, every signal)."""
        await self.ready.wait()
        self.ready.clear()
        update, self.pending = self.pending, Update()
        return update

    def _give(self, update: Update) -> None:
        if update.call is not None:
            self.pending.call = update.call
        self.pending.signals.extend(update.signals)
        self.pending.gone |= update.gone
        self.pending.unavailable |= update.unavailable
        self.ready.set()


@dataclass(eq=False)
class _Watched:
    watchers: set[Watcher] = field(default_factory=set)
    version: int | None = None
    loaded_at: float = float("-inf")
    signal_cursor: int = 0  # every signal of this call up to here has been read


class CallFeed:
    """This process's feed (see the module). Built on first use by :func:`call_feed`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.reads = 0  # read rounds so far (each a handful of queries): for benchmarks
        self._watched: dict[int, _Watched] = {}
        self._wake = asyncio.Event()
        self._wakeups = DatabaseWakeups(runtime.engine, CHANNEL, self._wake.set)
        self._task: asyncio.Task[None] | None = None

    @property
    def watching(self) -> int:
        return sum(len(w.watchers) for w in self._watched.values())

    def watch(self, call_id: int, user_id: int, after_signal: int = 0) -> Watcher:
        """Start delivering call ``call_id`` (its current state first) and the signals to
        ``user_id`` after ``after_signal``."""
        if self._task is None:
            self._wakeups.start()
            self._task = asyncio.get_running_loop().create_task(self._run())
        watcher = Watcher(call_id, user_id, after_signal)
        watched = self._watched.get(call_id)
        if watched is None:
            watched = self._watched[call_id] = _Watched(signal_cursor=after_signal)
        watched.signal_cursor = min(watched.signal_cursor, after_signal)
        watched.loaded_at = float("-inf")  # read it again: the newcomer needs its state
        watched.watchers.add(watcher)
        self._wake.set()
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        watched = self._watched.get(watcher.call_id)
        if watched is not None:
            watched.watchers.discard(watcher)
            if not watched.watchers:
                del self._watched[watcher.call_id]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.runtime.settings.events_poll_seconds)
            # let the commit that woke us finish, and gather a burst into one read
            await asyncio.sleep(MIN_GAP_SECONDS)
            self._wake.clear()
            if not self._watched:
                continue
            try:
                await self._read(loop.time())
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("the call feed failed to read")
                self._tell_all(Update(unavailable=True))

    async def _read(self, now: float) -> None:
        self.reads += 1
        # what to read is decided now: streams come and go while the queries run
        ids = list(self._watched)
        floor = min(w.signal_cursor for w in self._watched.values())
        async with self.runtime.read_sessionmaker() as session:
            versions = await repository.versions_of(session, ids)
            due = []
            for call_id in ids:
                watched = self._watched.get(call_id)
                if watched is None or call_id not in versions:
                    continue
                stale = now - watched.loaded_at >= KEEPALIVE_SECONDS
                if versions[call_id] != watched.version or stale:
                    due.append(call_id)
            calls = await repository.calls_by_id(session, due) if due else []
            signals = await repository.signals_of_calls_after(session, ids, floor)
        for call_id in ids:
            if call_id not in versions:
                self._tell(call_id, Update(gone=True))
        self._deliver(ids, floor, calls, signals, now)

    def _deliver(
        self,
        ids: Sequence[int],
        floor: int,
        calls: Sequence[Call],
        signals: Sequence[CallSignal],
        now: float,
    ) -> None:
        """Hand out what one read of calls ``ids`` (signals after ``floor``) found; a
        stream that started watching during the read gets its share, and the rest next
        time."""
        by_call: dict[int, list[CallSignal]] = {}
        for signal in signals:
            by_call.setdefault(signal.call_id, []).append(signal)
        loaded = {call.id: call for call in calls}
        newest = signals[-1].id if signals else None
        for call_id in ids:
            watched = self._watched.get(call_id)
            if watched is None:  # nobody watches it any more
                continue
            call = loaded.get(call_id)
            if call is not None:
                watched.version, watched.loaded_at = call.version, now
            mine = by_call.get(call_id, [])
            for watcher in watched.watchers:
                update = Update(
                    call=call,
                    signals=[
                        s
                        for s in mine
                        if s.recipient_id == watcher.user_id and s.id > watcher.signal_cursor
                    ],
                )
                if update.signals:
                    watcher.signal_cursor = update.signals[-1].id
                if update.call is not None or update.signals:
                    watcher._give(update)
            if newest is not None and watched.signal_cursor >= floor:
                # every signal of this call up to ``newest`` has now been read (unless a
                # newcomer asked, during the read, for older ones: then they come next)
                watched.signal_cursor = max(watched.signal_cursor, newest)

    def _tell(self, call_id: int, update: Update) -> None:
        for watcher in self._watched.get(call_id, _Watched()).watchers:
            watcher._give(update)

    def _tell_all(self, update: Update) -> None:
        for call_id in list(self._watched):
            self._tell(call_id, update)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._wakeups.close()


def call_feed(runtime: Runtime) -> CallFeed:
    """This process's feed (one per runtime), built on first use; the runtime closes it."""
    if runtime.call_feed is None:
        runtime.call_feed = CallFeed(runtime)
    assert isinstance(runtime.call_feed, CallFeed)
    return runtime.call_feed
