"""The heartbeat from memory: most heartbeats touch no database.

A heartbeat on an active call with nothing due only says "still here". This process keeps
the calls whose heartbeats it answers (their rows as last read) and the presence it was
told of; it answers a quiet heartbeat of such a call from memory and writes the presence of
all of them in one batch every ``presence_flush_seconds``. A heartbeat of a call it does not
hold waits for that row, read with all the others asked for within
``FETCH_GATHER_SECONDS`` in one query (:meth:`QuietBeats.fetch`).

Why memory is safe:
- *Which rows are current.* On PostgreSQL every change of a call's version notifies its
  id (migration 0016): the row is forgotten at once, and read again — by the next batch,
  in one query with the others that changed, while its heartbeats keep coming. Memory is
  used only while the LISTEN connection is open; when it (re)opens, everything is
  forgotten (what was said while nobody listened was not heard). A row in use is also read
  again by the batch within ``REFRESH_SECONDS``, and never used after ``MAX_AGE_SECONDS``,
  whatever was heard: some columns change without a new version (LiveKit's ``left_at``,
  the meter's ``due_at``), and a connection may die without saying so. SQLite has no
  notifications: there every heartbeat goes to the database (``service.quick_heartbeat``).
- *What is decided from memory.* That a heartbeat is quiet, by the same conditions as the
  database's quick path (``repository._quietly_present``) and the same check of the row
  afterwards (a deadline due, or a charge not left to the meter, with this presence: then
  the full path). A row
  in memory may be older than the database's. Its ``next_charge_at`` and ``paid_until``
  only move forward while a call is active, so for those an old row says "something is
  due" sooner, never later. Last-seen only moves forward too, and memory keeps the latest
  this process knows of (a re-read never takes it back); a party's presence written
  through another process may be missing, which can only hide a charge that presence
  completes — the batch that writes it reads its calls back and brings such a call due
  (below). For the columns that move without a version (a
  LiveKit departure, the meter's next look), memory may answer "quiet" for up to
  ``MAX_AGE_SECONDS`` where the database would not: the answer is then late, the money is
  not, because of what is written.
- *What is written.* The batch writes each party's last-seen under the same conditions,
  checked again by the database on the row as it is then (status, the heartbeat timeout,
  LiveKit's word), and only forward, each at its own heartbeat's moment. A presence the
  database would not have taken from the heartbeat itself is not taken from the batch
  either. The rows are locked in id order first. A batch that completes both parties'
  presence past a boundary (their heartbeats went through different processes, neither of
  which held both) brings that call due for the meter at once.
- *A charge due, while the meter ticks.* A heartbeat that makes a charge due (both
  parties seen past a boundary), or comes while one is due, is answered from memory too
  when this process heard the meter say it ticks within ``METER_HEARD_SECONDS`` and what
  is due came due less than ``LEFT_TO_METER_SECONDS`` ago (``settlement.pending_since``):
  its presence goes into a batch written within ``SOON_SECONDS``, which reads the call
  back and brings it due, and the meter, woken on ``callmeter_due``, settles it with the
  others (the database's quick path does the same for a call memory does not hold:
  :meth:`QuietBeats.leaves_to_meter`). The amount cannot differ: billable time is the same
  function of presence and paid time whoever settles, and ``paid_until`` caps it
  meanwhile. Without a meter heard, or past that delay (a beat lost, a meter that says it
  ticks but does not settle this call), the heartbeat settles as before, so no charge
  waits for the meter (design rule 6).
- *When the database does not answer.* Memory stops answering as soon as a batch fails
  (until a batch is written: the presence it held is tried again every period), and when
  its own database work (a batch, a read) has waited ``STALL_FLUSHES`` periods while the
  database answered no statement of this process (a hung server). Work that is merely
  slow, on a busy machine, does not switch memory off: that would send every heartbeat to
  the database when it is least able to take them. A batch passes by call rows another
  transaction holds (their presence waits for the next batch), so one locked row holds up
  nobody else's.
- *What a crash loses.* The presence told since the last batch written: at most
  ``presence_flush_seconds`` of it while batches are written (plus the batch's own time),
  and while one hangs, up to ``STALL_FLUSHES`` periods before memory stops answering. A
  party then counts as seen that much earlier, so the call is billed (or ended for
  silence) no later than it would have been: never more coins, only possibly fewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import object_session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callmeter.auth.tokens import read_access_token
from callmeter.billing.settlement import charge_pending, may_coalesce, pending_since
from callmeter.calls import repository
from callmeter.calls.feed import call_feed
from callmeter.calls.repository import METER_CHANNEL
from callmeter.calls.schemas import CallEnvelope, CallOut, HeartbeatIn
from callmeter.calls.service import passed_deadline
from callmeter.errors import NotAuthenticated
from callmeter.kit.db import is_unavailable
from callmeter.kit.runtime import Runtime
from callmeter.models import Call, CallStatus
from callmeter.ops import metrics

log = logging.getLogger(__name__)

MAX_AGE_SECONDS = 20.0  # a row in memory older than this is not used
REFRESH_SECONDS = 10.0  # a row in use is read again by the batch by this age (from half of it)
REFRESH_BATCH = 250  # rows read again at most per batch (the oldest wait for the next)
STALL_FLUSHES = 2  # periods a batch may hang, with no statement answered, while memory is used
MAX_CALLS = 200_000  # rows kept at most (then the oldest are forgotten)
COALESCE = timedelta(seconds=1)  # as the database's quick path
METER_HEARD_SECONDS = 3.0  # the meter said it ticks within this: a charge due is left to it
LEFT_TO_METER_SECONDS = 10.0  # a charge due longer than this is settled by the heartbeat
SOON_SECONDS = 0.05  # a batch that brings a charge due is written this soon after the beat
FETCH_GATHER_SECONDS = 0.01  # calls not held are read together, after waiting this long
FETCH_MAX = 1_000  # calls waiting to be read at most (past that, the endpoint answers)


@dataclass(eq=False)
class _Known:
    call: Call  # the row as read, with the presence told since
    read_at: float  # loop time
    used_at: float  # loop time of the last heartbeat answered with it (or of the read)


class QuietBeats:
    """This process's memory of quiet calls (see the module). :func:`quiet_beats` builds it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.answered = 0  # heartbeats answered from memory
        self.flushes = 0  # batches written so far
        self.written = 0  # presences in them
        self.refreshed = 0  # rows read again by the batch
        self._known: dict[int, _Known] = {}
        # (when due, call id, read at) of every row read: the refreshes due, soonest first
        # (an entry whose row was read again since is passed over)
        self._refresh_due: list[tuple[float, int, float]] = []
        self._pending: dict[tuple[int, str], tuple[int, datetime]] = {}  # -> user, seen
        self._changes = 0  # notifications heard so far
        self._changed_at: dict[int, int] = {}  # call id -> self._changes when it changed
        self._all_changed_at = 0  # self._changes when everything was forgotten
        self._stale: dict[int, float] = {}  # call id -> used_at, of rows changed since read
        self._unread: set[int] = set()  # calls written whose read-back failed
        self._owed: set[int] = set()  # calls with a charge due left to the meter
        self._soon = asyncio.Event()  # write the next batch soon: a charge is due
        self.left_to_meter = 0  # heartbeats answered with a charge due left to the meter
        self.fetched = 0  # rows read for heartbeats of calls not held
        # calls to read, not held: the future their heartbeats wait on, and who asked
        self._wanted: dict[int, tuple[asyncio.Future[None], set[int]]] = {}
        self._fetcher: asyncio.Task[None] | None = None
        self._closed = False
        loop = asyncio.get_running_loop()
        # the database's health, as this process sees it (time.monotonic(), loop time)
        self._steps: dict[int, float] = {}  # memory's own database work under way: start
        self._step_ids = itertools.count()
        self._failed_at: float | None = None  # batches fail to be written since (then)
        self._answered_at = time.monotonic()  # the database last answered a statement
        for engine in runtime.engines:
            event.listen(engine.sync_engine, "after_cursor_execute", self._answered)
        self._task: asyncio.Task[None] | None = loop.create_task(self._run())
        feed = call_feed(runtime)
        self._wakeups = feed.wakeups
        self._wakeups.on_payload.append(self._heard)
        self._wakeups.on_listening.append(self._forget_all)
        feed.start()

    @property
    def enabled(self) -> bool:
        """Memory is used while notifications are heard and its batches get written: after
        a batch that failed, until one is written (the presence it held is tried again
        every period); while its own database work (a batch, a read) has waited
        ``STALL_FLUSHES`` periods (half a second by default) with no statement of this
        process answered meanwhile (a hung database), every heartbeat goes to the database
        again, which answers or fails (503) by itself. Work that is only slow, while the
        database answers, leaves it on (a busy machine; the database's statement timeout
        ends a wait that lasts)."""
        period = self.runtime.settings.presence_flush_seconds
        if period <= 0 or not self._wakeups.listening or self._closed:
            return False
        if self._failed_at is not None:
            return False
        if not self._steps:
            return True
        now, stall = time.monotonic(), STALL_FLUSHES * period
        return now - min(self._steps.values()) <= stall or now - self._answered_at <= stall

    @contextlib.contextmanager
    def _step(self) -> Iterator[None]:
        """Memory's own database work, watched by :attr:`enabled`."""
        key = next(self._step_ids)
        self._steps[key] = time.monotonic()
        try:
            yield
        finally:
            del self._steps[key]

    def _answered(self, *_args: object) -> None:
        self._answered_at = time.monotonic()

    @property
    def meter_ticks(self) -> bool:
        """Whether the meter said lately that it ticks (``callmeter_meter``), heard on the
        connection memory relies on."""
        return self._wakeups.heard_since(METER_CHANNEL, METER_HEARD_SECONDS)

    def holds(self, call_id: int) -> bool:
        return call_id in self._known

    async def fetch(self, call_id: int, user_id: int) -> None:
        """Read the row of a call not held, in one query with the others asked for within
        ``FETCH_GATHER_SECONDS`` (a cold start, a restart of this process, a change just
        heard: thousands of calls' first heartbeats here), and keep it when it is active
        and ``user_id`` (or another who asked) is a party of it; returns once read, at
        once when memory is off or too many wait, and after ``STALL_FLUSHES`` periods in
        any case. Whatever is not read is answered by the endpoint as always."""
        if not self.enabled or (call_id not in self._wanted and len(self._wanted) >= FETCH_MAX):
            return
        future, asking = self._wanted.get(call_id) or (None, set[int]())
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._wanted[call_id] = (future, asking)
        asking.add(user_id)
        if self._fetcher is None or self._fetcher.done():
            self._fetcher = asyncio.get_running_loop().create_task(self._fetch())
        wait = STALL_FLUSHES * self.runtime.settings.presence_flush_seconds
        with contextlib.suppress(TimeoutError):  # a request that goes away cancels nobody
            await asyncio.wait_for(asyncio.shield(future), wait)

    async def _fetch(self) -> None:
        while self._wanted:
            await asyncio.sleep(FETCH_GATHER_SECONDS)
            wanted, self._wanted = self._wanted, {}
            try:
                if self.enabled:
                    await self._read_wanted(wanted)
            except Exception as exc:  # those heartbeats go to the endpoint, which says why
                if not is_unavailable(exc):
                    log.exception("reading calls for heartbeats failed")
            finally:
                for future, _asking in wanted.values():
                    if not future.done():
                        future.set_result(None)

    async def _read_wanted(self, wanted: dict[int, tuple[asyncio.Future[None], set[int]]]) -> None:
        mark = self.mark()
        with self._step():
            async with self.runtime.own_read_sessionmaker() as session:
                calls = await repository.calls_by_id(session, sorted(wanted))
                for call in calls:
                    asking = wanted[call.id][1]
                    if call.status == CallStatus.active and (
                        call.client_id in asking or call.host_id in asking
                    ):
                        self.remember(call, mark)
        self.fetched += len(calls)

    def mark(self) -> int:
        """Call before reading a row to :meth:`remember`: changes heard after it win."""
        return self._changes

    def remember(self, call: Call, mark: int, used_at: float | None = None) -> bool:
        """Keep ``call`` (just read) unless a change of it was heard since ``mark``: a copy
        detached from its session, with each party's latest presence this process knows
        laid over what the database had — the presence it still holds for the next batch,
        and the last-seen of the row it held before (a heartbeat's own write may be newer
        than a batch's read that finishes after it; last-seen only moves forward). Returns
        whether it was kept."""
        if not self.enabled or self._all_changed_at > mark:
            return False
        if self._changed_at.get(call.id, -1) > mark:
            return False
        if len(self._known) >= MAX_CALLS:
            self._forget_all()
        if (session := object_session(call)) is not None:
            session.expunge(call)  # no commit of that request may write what memory adds
        held = self._known.get(call.id)
        for party in ("client", "host"):
            field = f"{party}_last_seen_at"
            told = self._pending.get((call.id, party))
            known = [
                seen
                for seen in (
                    getattr(call, field),
                    None if told is None else told[1],
                    None if held is None else getattr(held.call, field),
                )
                if seen is not None
            ]
            if known:
                setattr(call, field, max(known))
        now = asyncio.get_running_loop().time()
        self._known[call.id] = _Known(call, now, now if used_at is None else used_at)
        heapq.heappush(self._refresh_due, (now + _refresh_age(call.id), call.id, now))
        return True

    def answer(self, call_id: int, party: str, user_id: int, now: datetime) -> Call | None:
        """The call, when this heartbeat of ``party`` (``user_id``) is quiet by what this
        process knows: its presence is then told to the next batch. None when it is not
        known, or not quiet: the database decides."""
        known = self._known.get(call_id)
        if known is None or not self.enabled or party not in ("client", "host"):
            return None
        call = known.call
        if asyncio.get_running_loop().time() - known.read_at > MAX_AGE_SECONDS:
            del self._known[call_id]
            return None
        to_meter = self.meter_ticks
        if getattr(call, f"{party}_id") != user_id or not _quiet(call, party, now, self, to_meter):
            return None
        field = f"{party}_last_seen_at"
        seen: datetime | None = getattr(call, field)
        # within a second of the last one recorded, and no boundary between: not recorded
        coalesced = seen is not None and now - seen < COALESCE and may_coalesce(call, seen, now)
        if not coalesced:
            setattr(call, field, now)  # this process's copy only
        # As the database's quick path checks the row it wrote: with this presence, is a
        # deadline due, or a charge (both now seen past a boundary) that the meter is not
        # to settle? Then the full path.
        owed = charge_pending(call, now)
        to_meter = to_meter and owed and _lately_owed(call, now)
        if passed_deadline(call, now, self.runtime.settings) or (owed and not to_meter):
            setattr(call, field, seen)
            return None
        if not coalesced:
            self._pending[(call_id, party)] = (user_id, now)
        if owed:
            self._owed.add(call_id)
            self._soon.set()
            self.left_to_meter += 1
        known.used_at = asyncio.get_running_loop().time()
        self.answered += 1
        return call

    def leaves_to_meter(self, call: Call, now: datetime) -> bool:
        """Whether a charge (or the end of paid time) due on ``call``, as just read, is left
        to the meter rather than settled by the heartbeat (the database's quick path)."""
        return self.meter_ticks and _lately_owed(call, now)

    def _heard(self, payload: str) -> None:
        if not payload.isdigit():
            return  # a new call, a signal, a message: nothing this memory holds
        call_id = int(payload)
        self._changes += 1
        self._changed_at[call_id] = self._changes
        if (known := self._known.pop(call_id, None)) is not None:
            self._stale[call_id] = known.used_at  # the next batch reads it again
        if len(self._changed_at) > MAX_CALLS:
            self._forget_all()

    def _forget_all(self) -> None:
        self._known.clear()
        self._refresh_due.clear()
        self._stale.clear()
        self._changed_at.clear()
        self._changes += 1
        self._all_changed_at = self._changes

    async def write_pending(self, session: AsyncSession, call_id: int, user_id: int) -> None:
        """Write the presence this process holds for ``call_id`` in ``session``'s
        transaction, under the batch's conditions, when ``user_id`` is a party of that call
        as held: a heartbeat that memory did not answer (a charge or a deadline due) is
        settled by the database's paths, which must see everything this process was told
        (the other party's beat, answered a moment ago, may be what makes the charge due).
        The presence stays pending for the next batch too (writing it twice changes
        nothing: last-seen only moves forward), so a transaction that fails loses none."""
        known = self._known.get(call_id)
        if known is None or user_id not in (known.call.client_id, known.call.host_id):
            return
        settings = self.runtime.settings
        checks = [
            repository.PresenceCheck.of(settings, call_id, party, *told, timedelta(0))
            for party in ("client", "host")
            if (told := self._pending.get((call_id, party))) is not None
        ]
        if checks:
            await repository.record_presences(session, checks)

    async def flush(self) -> int:
        """Write the presence told since the last batch (one statement per party kind);
        returns how many. What fails to be written is tried again with the next batch."""
        pending, self._pending = self._pending, {}
        owed, self._owed = self._owed, set()
        if not pending:
            await self._read_back_retried(owed)
            return 0
        settings = self.runtime.settings
        checks = [
            repository.PresenceCheck.of(settings, call_id, party, user_id, seen, timedelta(0))
            for (call_id, party), (user_id, seen) in sorted(pending.items())
        ]
        try:
            with self._step():
                async with self.runtime.own_sessionmaker() as session:
                    passed = await repository.record_presences(session, checks, skip_locked=True)
                    await session.commit()
        except BaseException as exc:
            for key, (user_id, seen) in pending.items():  # keep the later of the two
                self._keep_pending(key, user_id, seen)
            self._owed |= owed
            if self._failed_at is None:
                if not isinstance(exc, asyncio.CancelledError):  # not a failure: shutdown
                    log.warning(
                        "heartbeat memory off: writing presence failed (%s: %s); every "
                        "heartbeat goes to the database until a batch is written",
                        type(exc).__name__,
                        (str(exc).splitlines() or [""])[0][:200],  # not the SQL and its rows
                    )
                self._failed_at = time.monotonic()
            raise
        if self._failed_at is not None:
            log.info(
                "heartbeat memory on again: a batch was written %.1f s after the first that failed",
                time.monotonic() - self._failed_at,
            )
        self._failed_at = None
        for check in passed:  # rows another transaction held: the next batch writes them
            self._keep_pending((check.call_id, check.party), check.user_id, check.now)
        checks = [check for check in checks if check not in passed]
        self.flushes += 1
        self.written += len(checks)
        metrics.PRESENCE_WRITTEN.inc(len(checks))
        await self._read_back_retried({check.call_id for check in checks} | owed)
        return len(checks)

    def _keep_pending(self, key: tuple[int, str], user_id: int, seen: datetime) -> None:
        """Put presence back for the next batch (the later of the two, if it was told again
        meanwhile)."""
        if key not in self._pending or self._pending[key][1] < seen:
            self._pending[key] = (user_id, seen)

    async def _read_back_retried(self, call_ids: set[int]) -> None:
        """:meth:`_read_back` of these calls and of those whose read-back failed before
        (the presence is written: only the reading is tried again)."""
        unread, self._unread = self._unread | call_ids, set()
        if not unread:
            return
        try:
            await self._read_back(sorted(unread))
        except BaseException:
            self._unread |= unread
            raise

    async def _read_back(self, call_ids: list[int]) -> None:
        """After a batch (its rows' locks released): presence written there may complete
        both parties' presence past a boundary (one party's beat went through another
        process, or memory left the charge to the meter), and nobody is settling those
        calls: they are brought due for the meter now. While the meter ticks they stay in
        memory (its charge is heard as a change); otherwise they are forgotten here, so
        that their next heartbeat takes the full path. The other rows read are fresh:
        those this process holds replace what it had."""
        mark = self.mark()
        to_meter = self.meter_ticks
        with self._step():
            async with self.runtime.own_sessionmaker() as session:
                now = self.runtime.clock.now()
                calls = await repository.calls_by_id(session, call_ids)
                owed = {call.id for call in calls if charge_pending(call, now)}
                for call in calls:
                    known = self._known.get(call.id)
                    used = known.used_at if known is not None else self._stale.get(call.id)
                    keep = to_meter or call.id not in owed
                    if keep and used is not None and self.remember(call, mark, used):
                        self._stale.pop(call.id, None)
                if owed:
                    await repository.bring_due(session, sorted(owed), now)
                    await session.commit()
        if not to_meter:
            for call_id in owed:
                self._known.pop(call_id, None)

    async def refresh(self) -> int:
        """Read again, in one query, the rows still in use that changed (a notification
        was heard) or are ``REFRESH_SECONDS`` old, so that their next heartbeats are
        answered from memory too; forget those not used for ``MAX_AGE_SECONDS``. Returns
        how many rows were read."""
        now = asyncio.get_running_loop().time()
        used = {i: t for i, t in self._stale.items() if t >= now - MAX_AGE_SECONDS}
        self._stale.clear()
        if len(used) > REFRESH_BATCH:  # the rest waits for the next batches
            for call_id in list(used)[REFRESH_BATCH:]:
                used_at = used.pop(call_id)
                if call_id not in self._known:  # changed: kept for the next batch
                    self._stale[call_id] = used_at
        if not self.enabled:
            return 0
        # the rows due, soonest first, as many as the batch has room for (the others wait)
        aged: list[tuple[float, int, float]] = []
        heap = self._refresh_due
        while heap and heap[0][0] <= now and len(used) < REFRESH_BATCH:
            entry = heapq.heappop(heap)
            known = self._known.get(call_id := entry[1])
            if known is None or known.read_at != entry[2]:
                continue  # forgotten, or read again since
            if known.used_at < now - MAX_AGE_SECONDS or known.read_at < now - MAX_AGE_SECONDS:
                del self._known[call_id]
                continue
            aged.append(entry)
            used.setdefault(call_id, known.used_at)
        if not used:
            return 0
        mark = self.mark()
        try:
            with self._step():
                async with self.runtime.own_sessionmaker() as session:
                    calls = await repository.calls_by_id(session, sorted(used))
                    for call in calls:
                        self.remember(call, mark, used[call.id])
        except BaseException:
            for entry in aged:  # read again with the next batch
                heapq.heappush(heap, entry)
            raise
        self.refreshed += len(calls)
        return len(calls)

    async def _run(self) -> None:
        while True:
            period = self.runtime.settings.presence_flush_seconds or 0.25
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._soon.wait(), period)
                await asyncio.sleep(SOON_SECONDS)  # gather the beats around it
            self._soon.clear()
            try:
                await self.flush()
                await self.refresh()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("writing or reading heartbeats' presence failed")

    async def close(self) -> None:
        """Stop, writing what is pending first."""
        self._closed = True  # no more answers nor reads: heartbeats go to the endpoint
        if self._fetcher is not None:
            self._fetcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetcher
            self._fetcher = None
        for future, _asking in self._wanted.values():
            if not future.done():
                future.set_result(None)
        self._wanted.clear()
        for engine in self.runtime.engines:
            if event.contains(engine.sync_engine, "after_cursor_execute", self._answered):
                event.remove(engine.sync_engine, "after_cursor_execute", self._answered)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("writing (or reading back) heartbeats' presence at shutdown failed")


def _quiet(call: Call, party: str, now: datetime, beats: QuietBeats, due_ok: bool) -> bool:
    """``repository._quietly_present`` on the row in memory; with ``due_ok``, a charge or
    the end of paid time due does not count (:meth:`QuietBeats.answer` decides)."""
    settings = beats.runtime.settings
    timeout = timedelta(seconds=settings.heartbeat_timeout_seconds)
    seen_after = now - timeout
    if call.status != CallStatus.active:
        return False
    if call.next_charge_at is None or (call.next_charge_at <= now and not due_ok):
        return False
    if call.paid_until is None or (call.paid_until <= now and not due_ok):
        return False
    for seen in (call.client_last_seen_at, call.host_last_seen_at):
        if seen is None or seen <= seen_after:
            return False
    if call.media_provider == "livekit":
        look = timedelta(seconds=settings.livekit_reconcile_seconds)
        if getattr(call, f"{party}_lk_sid") is None:
            return False
        if call.client_left_at is not None or call.host_left_at is not None:
            return False
        if call.due_at is None or call.due_at > now + look:
            return False
    return True


def _refresh_age(call_id: int) -> float:
    """The age at which a row in use is read again: from half ``REFRESH_SECONDS`` to all of
    it, spread by call, so that rows read together (a cold start) are not all read again
    in the same batch, a pause of the event loop for each."""
    return REFRESH_SECONDS * (0.5 + (call_id * 2_654_435_761 % 1_000) / 2_000)


def _lately_owed(call: Call, now: datetime) -> bool:
    """Whether what a heartbeat finds due on ``call`` came due less than
    ``LEFT_TO_METER_SECONDS`` ago (``settlement.pending_since``): a meter that says it ticks
    but has not settled it by then is not waited for."""
    return now - pending_since(call, now) < timedelta(seconds=LEFT_TO_METER_SECONDS)


def remembers_beats(runtime: Runtime) -> bool:
    """Whether this runtime answers quiet heartbeats from memory (PostgreSQL, with a flush
    period set)."""
    return runtime.settings.presence_flush_seconds > 0 and runtime.engine.dialect.name != "sqlite"


def quiet_beats(runtime: Runtime) -> QuietBeats:
    """This process's memory (one per runtime), built on first use; the runtime closes it."""
    if runtime.quiet_beats is None:
        runtime.quiet_beats = QuietBeats(runtime)
    assert isinstance(runtime.quiet_beats, QuietBeats)
    return runtime.quiet_beats


_HEARTBEAT = re.compile(r"/v1/calls/([0-9]{1,18})/heartbeat")
# what the metrics read of a routed request's scope["route"] (its path template); FastAPI's
# included routers are not searchable from the app for the endpoint's own route
_ROUTE = SimpleNamespace(path="/v1/calls/{call_id}/heartbeat")
_FROM_MEMORY = metrics.HEARTBEATS.labels("memory")


class HeartbeatsFromMemory:
    """ASGI middleware, the innermost: answers ``POST /v1/calls/{id}/heartbeat`` when
    :meth:`QuietBeats.answer` can (a valid token of a party, a valid body, a quiet call
    this process holds, or reads with others' for it: :meth:`QuietBeats.fetch`), before
    routing, dependencies and the database session that the endpoint would cost; anything
    else — no token, a bad body, a call not active or not the caller's — goes on to the
    endpoint with its body, which answers it (errors included) as always. The answer is
    the endpoint's: the same ``CallEnvelope``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _HEARTBEAT.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        token = _bearer(scope)
        if token is None or not _json(scope) or not remembers_beats(runtime):
            await self.app(scope, receive, send)
            return
        body, replay = await _read_body(receive)
        answer = await self._answer(runtime, int(match[1]), token, body)
        if answer is None:
            await self.app(scope, replay, send)
            return
        scope["route"] = _ROUTE  # the metrics' label: the endpoint's route
        _FROM_MEMORY.inc()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _answer(
        self, runtime: Runtime, call_id: int, token: str, body: bytes
    ) -> bytes | None:
        now = runtime.clock.now()
        try:
            claims = read_access_token(token, secret=runtime.settings.secret_key, now=now)
            HeartbeatIn.model_validate_json(body)
        except (NotAuthenticated, ValidationError):
            return None  # the endpoint says why
        beats = quiet_beats(runtime)
        if not beats.holds(call_id):
            await beats.fetch(call_id, claims.user_id)
            now = runtime.clock.now()
        call = beats.answer(call_id, claims.role, claims.user_id, now)
        if call is None:
            return None
        return CallEnvelope(call=CallOut.of(call, now, runtime.settings)).model_dump_json().encode()


def _json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == b"application/json")
    return False


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (bounded by the body-size middleware outside), and a ``receive``
    that gives it once more, then what the client sends next (a disconnect)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
