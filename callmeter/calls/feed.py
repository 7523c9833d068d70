"""The change feed behind the live call streams: one per process, however many streams.

Every open stream *watches* its call through this process's feed. The feed reads the
database for all of them at once — the versions of every watched call in one query, the
rows that changed in a second, new signals of every watched call in a third — and hands
each stream what is new for it. So the queries per second
depend on how often something changes, not on how many streams are open.

It reads when woken, and otherwise at the catch-up period:
- on PostgreSQL, by a notification on ``CHANNEL``, sent by triggers on ``calls`` (a change
  of ``version``, the state a party sees), ``call_signals`` and ``call_messages`` from any
  process, this one included. While the LISTEN connection is up nothing is missed, so the
  catch-up runs every ``LISTENING_CATCH_UP_SECONDS`` (it also notices a database that
  stopped answering, and tells the streams); a commit that changes nothing a stream shows
  (a heartbeat's presence) costs the feed nothing;
- without notifications (SQLite, or PostgreSQL while the LISTEN connection is down), by a
  commit in this process and at least every ``events_poll_seconds``: another process's
  change (the meter worker's) arrives with that catch-up.
A lost notification (the LISTEN connection dropped) costs at most one catch-up period.
Reads are at least ``MIN_GAP_SECONDS`` apart, so a burst of changes costs one read.

A round's queries do not depend on how many streams are open: one query each for the
watched calls' versions, the calls that changed, new signals and new messages (a chunk of
5,000 calls each). A keepalive reads nothing: a stream with nothing new for
``KEEPALIVE_SECONDS`` gets a comment line.

Signals: ids are taken at INSERT and become visible at COMMIT, so a signal can appear after
one with a higher id (two calls' transactions committing out of order). Each read therefore
takes the signals after the newest id read so far *and* those created within the last
``SIGNAL_LOOKBACK`` (far longer than any transaction may last: statements time out in
seconds), and every stream remembers which of those it already has. A stream that starts
watching gets its backlog (after its ``Last-Event-ID``) in its first read, before any newer
signal, so it receives them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from callmeter.calls import repository
from callmeter.calls.repository import Delivered
from callmeter.kit.db import is_unavailable
from callmeter.kit.notify import DatabaseWakeups
from callmeter.kit.runtime import Runtime
from callmeter.models import Call, CallMessage, CallSignal

log = logging.getLogger(__name__)

CHANNEL = "callmeter_calls"  # the triggers of migration 0009 notify it
# A stream with nothing new gets a keepalive at least this often (a comment line: traffic
# that proxies see, which costs neither a read nor a rendering of the call); the web
# client's clock and countdowns run on their own between events, and heartbeat answers
# carry the call (and the server's time) too.
KEEPALIVE_SECONDS = 15.0
MIN_GAP_SECONDS = 0.05  # between two reads: a burst of changes is read once
KEEPALIVE_TICK_SECONDS = 0.5  # how often keepalives due are sent between reads
# the catch-up while notifications are heard: one round of four queries, however many
# streams; it is also how a stream learns, within a statement timeout, that the database
# stopped answering (a hung server keeps the LISTEN connection open and silent)
LISTENING_CATCH_UP_SECONDS = 1.0
SIGNAL_LOOKBACK = timedelta(seconds=10)  # a signal committing this late is still delivered
NEWEST_FIRST_READ = 2**62  # "after no id": the first read takes only the lookback window
MAX_NOTED = 100_000  # ids named by notifications kept for one round (more: a catch-up)


@dataclass(eq=False)
class Update:
    """What is new for one stream: the call (changed, or first), the signals addressed to
    it, the call's messages, that its keepalive is due, or that it must stop (the call is
    gone, the database unavailable)."""

    call: Call | None = None
    signals: list[CallSignal] = field(default_factory=list)
    messages: list[CallMessage] = field(default_factory=list)
    keepalive: bool = False
    gone: bool = False
    unavailable: bool = False


@dataclass(eq=False)
class Watcher:
    """One stream's subscription: the feed fills ``pending`` and sets ``ready``."""

    call_id: int
    user_id: int
    resume_after: int  # the stream's Last-Event-ID: only later signals are for it
    resume_message_after: int = 0  # and only later messages
    delivered: dict[int, datetime] = field(default_factory=dict)  # recent ones: id -> created
    delivered_messages: dict[int, datetime] = field(default_factory=dict)
    backfilled: bool = False  # its backlog was read: from now on it gets what is new
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
        self.pending.messages.extend(update.messages)
        self.pending.keepalive |= update.keepalive
        self.pending.gone |= update.gone
        self.pending.unavailable |= update.unavailable
        self.ready.set()


@dataclass(eq=False)
class _Watched:
    watchers: set[Watcher] = field(default_factory=set)
    call: Call | None = None  # as last read: what a stream that opens now gets first
    version: int | None = None
    loaded_at: float = float("-inf")  # when its streams last had traffic (a change, a keepalive)


class CallFeed:
    """This process's feed (see the module). Built on first use by :func:`call_feed`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.reads = 0  # read rounds so far (each a handful of queries): for benchmarks
        self._watched: dict[int, _Watched] = {}
        self._newcomers: list[Watcher] = []  # streams whose backlog is still to read
        # (loaded_at, call id) of each time a call's streams had traffic: the keepalives due, oldest
        # first (an entry whose call was sent again since is passed over)
        self._keepalives: list[tuple[float, int]] = []
        self._cursor: int | None = None  # the newest signal id read so far
        self._message_cursor: int | None = None  # the newest message id read so far
        self._wake = asyncio.Event()
        self._wakeups = DatabaseWakeups(
            runtime.engine, CHANNEL, self._wake.set, beacons=(repository.METER_CHANNEL,)
        )
        self._task: asyncio.Task[None] | None = None
        # what notifications named since the last round (PostgreSQL, migration 0016)
        self._changed: set[int] = set()  # calls whose version changed
        self._new_rows: set[tuple[str, int]] = set()  # ("s", signal id), ("m", message id)
        self._catch_up_due = True  # the next round reads everything watched
        self._wakeups.on_payload.append(self._heard)
        self._wakeups.on_listening.append(self._lost_track)

    @property
    def watching(self) -> int:
        return sum(len(w.watchers) for w in self._watched.values())

    def watch(
        self, call_id: int, user_id: int, after_signal: int = 0, after_message: int = 0
    ) -> Watcher:
        """Start delivering call ``call_id`` (its current state first), the signals to
        ``user_id`` after ``after_signal`` and the call's messages after ``after_message``."""
        self.start()
        watcher = Watcher(call_id, user_id, after_signal, after_message)
        watched = self._watched.get(call_id)
        if watched is None:  # its first read sends it; the keepalives count from now
            watched = self._watched[call_id] = _Watched()
            self._sent(call_id, watched, asyncio.get_running_loop().time())
        watched.watchers.add(watcher)
        self._newcomers.append(watcher)
        self._wake.set()
        return watcher

    def start(self) -> None:
        """Listen (on PostgreSQL) and read: on the first stream, or for whoever else uses
        the feed's notifications (:attr:`wakeups`)."""
        if self._task is None:
            self._wakeups.start()
            self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def wakeups(self) -> DatabaseWakeups:
        return self._wakeups

    def unwatch(self, watcher: Watcher) -> None:
        watched = self._watched.get(watcher.call_id)
        if watched is not None:
            watched.watchers.discard(watcher)
            if not watched.watchers:
                del self._watched[watcher.call_id]

    def _heard(self, payload: str) -> None:
        """A notification that says what changed (migration 0016): the next round reads
        just that. Anything else — or too much to keep — makes it a catch-up."""
        if not payload:
            return  # a new call: no stream watches it yet
        kind, number = (payload[:1], payload[1:]) if payload[:1] in ("s", "m") else ("", payload)
        if not number.isdigit() or len(self._changed) + len(self._new_rows) > MAX_NOTED:
            self._catch_up_due = True
            return
        if kind:
            self._new_rows.add((kind, int(number)))
        else:
            self._changed.add(int(number))

    def _lost_track(self) -> None:
        self._catch_up_due = True  # what was said while nobody listened was not heard

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        caught_up = float("-inf")
        while True:
            catch_up = (
                LISTENING_CATCH_UP_SECONDS
                if self._wakeups.listening
                else self.runtime.settings.events_poll_seconds
            )
            wait = min(KEEPALIVE_TICK_SECONDS, max(0.0, caught_up + catch_up - loop.time()))
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
                woken = True
            except TimeoutError:
                woken = False
            if loop.time() - caught_up >= catch_up:
                self._catch_up_due = True
            if not woken and not self._catch_up_due:
                self._keep_alive(loop.time())  # between reads: no database
                continue
            # let the commit that woke us finish, and gather a burst into one read
            await asyncio.sleep(MIN_GAP_SECONDS)
            self._wake.clear()
            if not self._wakeups.listening:
                self._catch_up_due = True  # a wake-up says nothing about what changed
            if not self._watched:  # nothing to read: the first stream starts afresh
                self._changed.clear()
                self._new_rows.clear()
                self._catch_up_due, caught_up = True, loop.time()
                continue
            full, self._catch_up_due = self._catch_up_due, False
            if full:
                caught_up = loop.time()
            try:
                await self._read(loop.time(), full)
            except Exception as exc:
                self._catch_up_due = True
                if not is_unavailable(exc):
                    log.exception("the call feed failed to read")
                self._tell_all(Update(unavailable=True))

    def _sent(self, call_id: int, watched: _Watched, at: float) -> None:
        """Note that the streams of ``call_id`` had traffic ``at`` (their keepalive is due
        ``KEEPALIVE_SECONDS`` later)."""
        watched.loaded_at = at
        heapq.heappush(self._keepalives, (at, call_id))

    def _keep_alive(self, now: float) -> None:
        """Tell the streams of each call whose keepalive is due (checked every
        ``KEEPALIVE_TICK_SECONDS`` and after every read), oldest first; what is not due is
        not looked at."""
        # at most twice the average share per tick: streams that opened together spread
        # out over a few ticks instead of sending in one burst for ever
        share = KEEPALIVE_TICK_SECONDS / KEEPALIVE_SECONDS
        most = max(16, math.ceil(2 * share * len(self._watched)))
        heap = self._keepalives
        while most > 0 and heap and now - heap[0][0] >= KEEPALIVE_SECONDS:
            loaded_at, call_id = heapq.heappop(heap)
            watched = self._watched.get(call_id)
            if watched is None or watched.loaded_at != loaded_at:
                continue  # no longer watched, or sent again since
            self._sent(call_id, watched, now)
            most -= 1
            for watcher in watched.watchers:
                watcher._give(Update(keepalive=True))

    async def _read(self, now: float, full: bool = True) -> None:
        """One round. A catch-up (``full``) reads the versions of every watched call, and
        the signals and messages after the newest ids read so far or within the lookback;
        otherwise only what notifications named: those calls, those signals and messages."""
        self.reads += 1
        # what to read is decided now: streams come and go while the queries run. A round
        # that is not a catch-up looks only at what was named and at new streams.
        ids = list(self._watched) if full else []
        newcomers, self._newcomers = self._newcomers, []
        newcomers = [w for w in newcomers if w in self._watched.get(w.call_id, _NOBODY).watchers]
        changed, self._changed = self._changed, set()
        new_rows, self._new_rows = self._new_rows, set()
        cursor, since = self._cursor, self.runtime.clock.now() - SIGNAL_LOOKBACK
        message_cursor = self._message_cursor
        gone: list[int] = []
        try:
            async with self.runtime.own_read_sessionmaker() as session:
                if full:
                    versions = await repository.versions_of(session, ids)
                    gone = [call_id for call_id in ids if call_id not in versions]
                    due = [
                        call_id
                        for call_id in ids
                        if call_id in versions
                        and (watched := self._watched.get(call_id)) is not None
                        and (versions[call_id] != watched.version or watched.call is None)
                    ]
                    # the first read: only the window (a stream's older ones are its backlog)
                    after = NEWEST_FIRST_READ if cursor is None else cursor
                    recent = await repository.to_deliver(session, CallSignal, ids, after, since)
                    after = NEWEST_FIRST_READ if message_cursor is None else message_cursor
                    messages = await repository.to_deliver(session, CallMessage, ids, after, since)
                else:
                    unread = {w.call_id for w in newcomers if self._unread(w.call_id)}
                    due = sorted({i for i in changed if i in self._watched} | unread)
                    watching = self._watched
                    recent, messages = [], []
                    if signal_ids := sorted(n for kind, n in new_rows if kind == "s"):
                        recent = await repository.by_ids(session, CallSignal, signal_ids)
                        recent = [s for s in recent if s.call_id in watching]
                    if message_ids := sorted(n for kind, n in new_rows if kind == "m"):
                        messages = await repository.by_ids(session, CallMessage, message_ids)
                        messages = [m for m in messages if m.call_id in watching]
                calls = await repository.calls_by_id(session, due) if due else []
                backlog: list[CallSignal] = []
                older_messages: list[CallMessage] = []
                if newcomers:
                    their_calls = sorted({w.call_id for w in newcomers})
                    backlog = await repository.of_calls_after(
                        session, CallSignal, their_calls, min(w.resume_after for w in newcomers)
                    )
                    older_messages = await repository.of_calls_after(
                        session,
                        CallMessage,
                        their_calls,
                        min(w.resume_message_after for w in newcomers),
                    )
        except BaseException:
            self._newcomers[:0] = newcomers  # their backlog is read next time
            raise
        if recent:
            self._cursor = max(cursor or 0, recent[-1].id)
        if messages:
            self._message_cursor = max(message_cursor or 0, messages[-1].id)
        for call_id in gone:
            self._tell(call_id, Update(gone=True))
        self._deliver(
            set(newcomers), calls, (recent, backlog), (messages, older_messages), since, now
        )
        self._keep_alive(now)

    def _unread(self, call_id: int) -> bool:
        watched = self._watched.get(call_id)
        return watched is not None and watched.call is None

    def _deliver(
        self,
        newcomers: set[Watcher],
        calls: Sequence[Call],
        signals: tuple[Sequence[CallSignal], Sequence[CallSignal]],
        messages: tuple[Sequence[CallMessage], Sequence[CallMessage]],
        since: datetime,
        now: float,
    ) -> None:
        """Hand out what one read found: each stream the call if it was
        read, the signals addressed to it and the call's messages that it does not have yet
        — ``newcomers`` (whose backlog this read fetched) from the backlog (the second of
        each pair) and the recent ones (the first), the others from the recent ones. A
        newcomer gets the call as last read, changed or not; a stream that started watching
        during the read gets what is new for it next time."""
        recent_signals, older_signals = _by_call(signals[0]), _by_call(signals[1])
        recent_messages, older_messages = _by_call(messages[0]), _by_call(messages[1])
        loaded = {call.id: call for call in calls}
        touched = {
            *loaded,
            *recent_signals,
            *older_signals,
            *recent_messages,
            *older_messages,
            *(w.call_id for w in newcomers),
        }
        # only the calls with something for their streams (keepalives: _keep_alive)
        for call_id in touched:
            watched = self._watched.get(call_id)
            if watched is None:  # nobody watches it any more
                continue
            call = loaded.get(call_id)
            if call is not None:  # changed (or read first): every stream of it gets it
                watched.call, watched.version = call, call.version
                self._sent(call_id, watched, now)
            for watcher in watched.watchers:
                newcomer = watcher in newcomers
                # a new stream gets the call as last read, changed or not
                update = Update(call=call or (watched.call if newcomer else None))
                if newcomer or watcher.backfilled:
                    mine = [
                        s
                        for s in [
                            *(older_signals.get(call_id, []) if newcomer else []),
                            *recent_signals.get(call_id, []),
                        ]
                        if s.recipient_id == watcher.user_id
                    ]
                    update.signals = _fresh(
                        mine, after=watcher.resume_after, delivered=watcher.delivered, since=since
                    )
                    update.messages = _fresh(
                        [  # both parties see every message
                            *(older_messages.get(call_id, []) if newcomer else []),
                            *recent_messages.get(call_id, []),
                        ],
                        after=watcher.resume_message_after,
                        delivered=watcher.delivered_messages,
                        since=since,
                    )
                    watcher.backfilled = True
                if update.call is not None or update.signals or update.messages:
                    watcher._give(update)

    def _tell(self, call_id: int, update: Update) -> None:
        for watcher in self._watched.get(call_id, _NOBODY).watchers:
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


_NOBODY = _Watched()  # what an unwatched call's watchers are


def _by_call(rows: Sequence[Delivered]) -> dict[int, list[Delivered]]:
    grouped: dict[int, list[Delivered]] = {}
    for row in rows:
        grouped.setdefault(row.call_id, []).append(row)
    return grouped


def _fresh(
    rows: Sequence[Delivered], *, after: int, delivered: dict[int, datetime], since: datetime
) -> list[Delivered]:
    """What of ``rows`` (a backlog and recent ones, possibly overlapping) a stream gets, in
    id order: after its Last-Event-ID and not delivered to it before (``delivered``
    remembers it). A row created before the lookback window ``since`` is never read again:
    it is forgotten."""
    fresh = []
    for row in sorted({row.id: row for row in rows}.values(), key=_id):
        if row.id > after and row.id not in delivered:
            fresh.append(row)
            delivered[row.id] = row.created_at
    for row_id in [i for i, at in delivered.items() if at < since]:
        del delivered[row_id]
    return fresh


def _id(row: CallSignal | CallMessage) -> int:
    return row.id


def call_feed(runtime: Runtime) -> CallFeed:
    """This process's feed (one per runtime), built on first use; the runtime closes it."""
    if runtime.call_feed is None:
        runtime.call_feed = CallFeed(runtime)
    assert isinstance(runtime.call_feed, CallFeed)
    return runtime.call_feed
