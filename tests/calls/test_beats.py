"""Quiet heartbeats from memory (``calls.beats``, PostgreSQL): answered without the
database, their presence written in a batch under the database's own conditions, a
changed call forgotten as soon as its notification arrives, and a lost batch costing the
client nothing. The batch is written by hand here (the injected clock outruns the real
one the flusher runs on)."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from callmeter.auth.tokens import issue_access_token
from callmeter.calls import beats as beats_module
from callmeter.calls import repository
from callmeter.calls.beats import MAX_AGE_SECONDS, REFRESH_SECONDS, QuietBeats, quiet_beats
from callmeter.config import Settings
from callmeter.kit.runtime import Runtime
from callmeter.meter.loop import run_meter
from callmeter.meter.service import TickResult, tick
from callmeter.models import Call, Role
from callmeter.ops import metrics
from tests.calls.driver import CallDriver, Party
from tests.conftest import make_settings, postgres_only

pytestmark = postgres_only


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, presence_flush_seconds=5)


@pytest.fixture(autouse=True)
def no_flusher(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(self: QuietBeats) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(QuietBeats, "_run", never)


def database_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls memory does not hold go to the endpoint (the database's paths), as they do
    when the fetch is off or full, instead of being read into memory first."""

    async def no_fetch(self: QuietBeats, call_id: int, user_id: int) -> None:
        return None

    monkeypatch.setattr(QuietBeats, "fetch", no_fetch)


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait (on the real clock, for a notification) until ``condition`` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def listening(runtime: Runtime) -> QuietBeats:
    beats = quiet_beats(runtime)
    await until(lambda: beats.enabled)
    return beats


async def seen(runtime: Runtime, call_id: int) -> tuple[datetime | None, datetime | None]:
    async with runtime.sessionmaker() as session:
        row = (
            await session.execute(
                select(Call.client_last_seen_at, Call.host_last_seen_at).where(Call.id == call_id)
            )
        ).one()
    return row[0], row[1]


async def extend_paid_time(runtime: Runtime, call_id: int) -> datetime:
    """A minute more of paid time, with a new version (as a charge does): returns it."""
    async with runtime.sessionmaker() as session:
        paid_until = (
            await session.scalars(select(Call.paid_until).where(Call.id == call_id))
        ).one()
        assert paid_until is not None
        later = paid_until + timedelta(minutes=1)
        await session.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(paid_until=later, version=Call.version + 1)
        )
        await session.commit()
    return later


async def remembered(driver: CallDriver) -> tuple[int, Party, Party, QuietBeats]:
    """An active call whose parties' next quiet heartbeats come from memory."""
    beats = await listening(driver.runtime)
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    call_id = await driver.connect(caller, host)
    deadline = time.monotonic() + 5
    while call_id not in beats._known:  # kept once no notification of the connect is due
        assert time.monotonic() < deadline, "never remembered"
        await asyncio.sleep(0.05)
        driver.clock.advance(1)
        for who in (caller, host):
            assert (await driver.heartbeat(call_id, who)).status_code == 200
    await beats.flush()
    beats.answered = 0
    return call_id, caller, host, beats


async def test_a_quiet_heartbeat_is_answered_from_memory_and_written_in_the_batch(
    driver: CallDriver, runtime: Runtime
) -> None:
    call_id, caller, _host, beats = await remembered(driver)
    written = await seen(runtime, call_id)
    driver.clock.advance(5)
    r = await driver.heartbeat(call_id, caller)
    assert r.status_code == 200, r.text
    assert r.json()["call"]["status"] == "active"
    assert beats.answered == 1
    # the endpoint's answer: the call as the database has it, but for the presence just told
    read = await driver.call(call_id, caller)
    unlike = {"server_time", "billed_seconds"}
    assert {k: v for k, v in r.json()["call"].items() if k not in unlike} == {
        k: v for k, v in read.items() if k not in unlike
    }
    assert await seen(runtime, call_id) == written  # nothing written yet
    assert await beats.flush() == 1
    assert await seen(runtime, call_id) == (driver.clock.now(), written[1])  # the client's


async def test_another_user_is_not_answered_from_memory(
    driver: CallDriver, runtime: Runtime
) -> None:
    call_id, _caller, host, beats = await remembered(driver)
    stranger = await driver.party(Role.client, 100)
    r = await driver.heartbeat(call_id, stranger)
    assert r.status_code == 404, r.text
    # what memory does not answer, the endpoint does, body and all
    url = f"/v1/calls/{call_id}/heartbeat"
    r = await driver.client.post(url, json={"media_connected": "yes"}, headers=host.headers)
    assert (r.status_code, r.json()["error"]) == (422, "validation_error"), r.text
    r = await driver.client.post(url, json={}, headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 401, r.text
    r = await driver.client.post(url, json={"media_connected": True}, headers=host.headers)
    assert r.status_code == 200, r.text
    assert beats.answered == 1  # that last one only


async def test_a_change_is_heard_and_the_call_forgotten_and_its_presence_not_written(
    driver: CallDriver, runtime: Runtime
) -> None:
    call_id, caller, host, beats = await remembered(driver)
    driver.clock.advance(5)
    assert (await driver.heartbeat(call_id, caller)).status_code == 200
    assert beats.answered == 1
    before = await seen(runtime, call_id)
    r = await driver.post(f"/v1/calls/{call_id}/end", host)  # a new version: notified
    assert r.json()["call"]["status"] == "ended"
    await until(lambda: call_id not in beats._known)
    await beats.flush()  # the ended call takes no presence
    assert (await seen(runtime, call_id))[0] == before[0]
    r = await driver.heartbeat(call_id, caller)
    assert r.json()["call"]["status"] == "ended"
    assert beats.answered == 1


async def test_a_lost_batch_bills_no_more_than_what_was_written(
    driver: CallDriver, runtime: Runtime
) -> None:
    """A process that dies before its batch: the presence it held is lost, and the call is
    billed to what the database had (never more), here ending for silence."""
    call_id, caller, host, beats = await remembered(driver)
    call = await driver.call(call_id, caller)
    written = call["billed_seconds"]  # both last written now
    for _ in range(3):  # 3 x 5 s: answered from memory, never written
        driver.clock.advance(5)
        for who in (caller, host):
            assert (await driver.heartbeat(call_id, who)).status_code == 200
    assert beats.answered == 6
    beats._pending.clear()  # the process died
    driver.clock.advance(20)  # 35 s of silence since the last presence written
    await driver.tick()
    call = await driver.call(call_id, caller)
    assert (call["status"], call["end_reason"]) == ("ended", "connection_lost")
    assert call["billed_seconds"] == written
    await driver.ledger_ok()


async def test_a_beat_that_completes_presence_past_a_boundary_charges(
    driver: CallDriver, runtime: Runtime
) -> None:
    """The meter looked at the boundary before either party was seen past it: no charge,
    and its next boundary moved on. The client's beat after it (the database's quick path)
    is quiet; the host's, from memory, would make both seen past the boundary: it must
    charge, not be answered as quiet."""
    call_id, caller, host, beats = await remembered(driver)
    start = datetime.fromisoformat((await driver.call(call_id, caller))["started_at"])
    for at in (20, 40, 55):  # from memory, each batch written (as a second passes)
        driver.clock.set(start + timedelta(seconds=at))
        for who in (caller, host):
            assert (await driver.heartbeat(call_id, who)).status_code == 200
        assert await beats.flush() == 2
    driver.clock.set(start + timedelta(seconds=61))
    await driver.tick()  # both last seen at 55: nothing to charge yet
    call = await driver.call(call_id, caller)
    assert (call["charged"], call["status"]) == (0, "active")  # the first minute: not yet
    await until(lambda: call_id not in beats._known)  # its next boundary moved: notified
    r = await driver.heartbeat(call_id, caller)  # read into memory again, answered there
    assert r.json()["call"]["charged"] == 0
    assert call_id in beats._known
    # the host's, from memory, makes both seen past 60 s: not quiet; the endpoint writes
    # the client's presence that memory still holds, and charges
    r = await driver.heartbeat(call_id, host)
    assert r.json()["call"]["charged"] == 10, r.text
    await beats.flush()
    await driver.ledger_ok()


async def test_a_batch_that_completes_presence_past_a_boundary_brings_the_call_due(
    driver: CallDriver, runtime: Runtime
) -> None:
    """Each party's presence past the boundary reached the database through a different
    process (here: the client's written directly, as another process's batch would), and
    neither process's row in memory had both. The batch that completes it brings the call
    due, so the meter charges now rather than at its next planned look."""
    call_id, caller, host, beats = await remembered(driver)
    start = datetime.fromisoformat((await driver.call(call_id, caller))["started_at"])
    for at in (20, 40, 55):
        driver.clock.set(start + timedelta(seconds=at))
        for who in (caller, host):
            assert (await driver.heartbeat(call_id, who)).status_code == 200
        await beats.flush()
    driver.clock.set(start + timedelta(seconds=61))
    await driver.tick()  # both last seen at 55: nothing charged, its next look planned later
    await until(lambda: call_id not in beats._known)
    async with runtime.sessionmaker() as session:  # as a heartbeat read it: both at 55
        row = await repository.get_call(session, call_id)
    assert row is not None
    beats.remember(row, beats.mark())
    answered = beats.answered
    driver.clock.set(start + timedelta(seconds=62))
    r = await driver.heartbeat(call_id, host)  # from memory: the host past 60, the client not
    assert (r.json()["call"]["charged"], beats.answered) == (0, answered + 1)
    async with runtime.sessionmaker() as session:  # the client's, by another process
        await session.execute(
            update(Call).where(Call.id == call_id).values(client_last_seen_at=driver.clock.now())
        )
        await session.commit()
    assert await beats.flush() == 1
    await driver.tick()
    call = await driver.call(call_id, caller)
    assert (call["charged"], call["status"]) == (10, "active")
    await driver.ledger_ok()


async def test_who_may_beat_a_call_held_in_memory(driver: CallDriver, runtime: Runtime) -> None:
    """Memory answers only a party of the call with a valid token and a JSON body; every
    other request reaches the endpoint, which answers as always."""
    call_id, caller, _host, beats = await remembered(driver)
    other_id, other_caller, other_host, _ = await remembered(driver)
    admin = await driver.party(Role.admin)
    url = f"/v1/calls/{call_id}/heartbeat"
    expired = issue_access_token(
        user_id=caller.user.id,
        role="client",
        secret=runtime.settings.secret_key,
        now=driver.clock.now() - timedelta(days=2),
        ttl_seconds=60,
    )
    as_host = issue_access_token(  # the client's id with the host's role
        user_id=caller.user.id,
        role="host",
        secret=runtime.settings.secret_key,
        now=driver.clock.now(),
        ttl_seconds=600,
    )
    body = {"media_connected": True}
    for headers, status in [
        (other_caller.headers, 404),  # a party of another call this process holds
        (other_host.headers, 404),
        (admin.headers, 404),
        ({"Authorization": f"Bearer {expired}"}, 401),
        # not answered from memory (not the call's host); the endpoint goes by the user's
        # row, which says client
        ({"Authorization": f"Bearer {as_host}"}, 200),
    ]:
        r = await driver.client.post(url, json=body, headers=headers)
        assert r.status_code == status, (headers, r.text)
    r = await driver.client.post(
        url,
        content=b'{"media_connected": true}',
        headers={**caller.headers, "Content-Type": "text/plain"},
    )
    assert r.status_code == 422, r.text  # not JSON: the endpoint says so
    assert beats.answered == 0
    assert (await driver.heartbeat(call_id, caller)).status_code == 200
    assert (await driver.heartbeat(other_id, other_caller)).status_code == 200
    assert beats.answered == 2


async def test_a_changed_call_still_in_use_is_read_again_by_the_batch(
    driver: CallDriver, runtime: Runtime
) -> None:
    """A change of the call (here its paid time, with a new version: notified) makes this
    process forget its row; the next batch reads it again, so the next quiet heartbeat is
    still answered from memory, with the row as changed."""
    call_id, caller, _host, beats = await remembered(driver)
    driver.clock.advance(5)
    assert (await driver.heartbeat(call_id, caller)).status_code == 200
    assert beats.answered == 1
    later = await extend_paid_time(runtime, call_id)  # a new version: notified
    await until(lambda: call_id not in beats._known)
    assert await beats.refresh() == 1
    assert beats._known[call_id].call.paid_until == later
    driver.clock.advance(5)
    r = await driver.heartbeat(call_id, caller)
    assert (r.status_code, beats.answered) == (200, 2), r.text
    assert await beats.flush() == 1


def aged(beats: QuietBeats, call_id: int, *, read: float = 0.0, used: float = 0.0) -> None:
    """Make the row memory holds for ``call_id`` as if read ``read`` seconds earlier and
    last used ``used`` seconds earlier (its refresh falls due accordingly)."""
    known = beats._known[call_id]
    known.read_at -= read
    known.used_at -= used
    heapq.heappush(beats._refresh_due, (known.read_at + REFRESH_SECONDS, call_id, known.read_at))


async def test_an_old_row_is_read_again_while_in_use_and_forgotten_when_not(
    driver: CallDriver, runtime: Runtime
) -> None:
    """Columns that move without a new version (the meter's next look) reach memory by the
    batch's reading of rows ``REFRESH_SECONDS`` old; a row nobody used for
    ``MAX_AGE_SECONDS`` is forgotten instead."""
    call_id, caller, _host, beats = await remembered(driver)
    other_id, _other_caller, _other_host, _ = await remembered(driver)
    assert await beats.refresh() == 0  # both just read
    async with runtime.sessionmaker() as session:
        await session.execute(
            update(Call).where(Call.id == call_id).values(due_at=driver.clock.now())
        )
        await session.commit()
    aged(beats, call_id, read=REFRESH_SECONDS + 1)
    aged(beats, other_id, read=MAX_AGE_SECONDS + 1, used=MAX_AGE_SECONDS + 1)
    assert await beats.refresh() == 1
    assert beats._known[call_id].call.due_at == driver.clock.now()
    assert other_id not in beats._known
    r = await driver.heartbeat(call_id, caller)
    assert (r.status_code, beats.answered) == (200, 1), r.text


async def test_the_batch_reads_back_the_rows_it_wrote_and_keeps_them_fresh(
    driver: CallDriver, runtime: Runtime
) -> None:
    """A batch reads its calls again once written (to bring owing ones due): a row this
    process holds, or forgot on a change, is replaced by what was read."""
    call_id, caller, _host, beats = await remembered(driver)
    driver.clock.advance(5)
    assert (await driver.heartbeat(call_id, caller)).status_code == 200
    later = await extend_paid_time(runtime, call_id)  # a new version: notified
    await until(lambda: call_id not in beats._known)
    assert await beats.flush() == 1
    row = beats._known[call_id].call
    assert (row.client_last_seen_at, row.paid_until) == (driver.clock.now(), later)
    assert await beats.refresh() == 0  # nothing left to read


async def test_calls_brought_due_wake_the_meter(
    driver: CallDriver,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A batch that brings a call due says so on ``callmeter_due``: the meter settles it at
    once, not at its next tick (a minute away here)."""
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.model_copy(update={"meter_tick_seconds": 60})
    )
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    call_id = await driver.connect(caller, host)
    start = datetime.fromisoformat((await driver.call(call_id, caller))["started_at"])
    driver.clock.set(start + timedelta(seconds=61))
    now = driver.clock.now()
    async with runtime.sessionmaker() as session:  # both seen past 60 s, the meter not due
        await session.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(client_last_seen_at=now, host_last_seen_at=now, due_at=now + timedelta(hours=1))
        )
        await session.commit()
    ticks = {"started": 0, "finished": 0}

    async def counted(runtime: Runtime) -> TickResult:
        ticks["started"] += 1
        try:
            return await tick(runtime)
        finally:
            ticks["finished"] += 1

    monkeypatch.setattr("callmeter.meter.loop.tick", counted)
    caplog.set_level(logging.INFO, logger="callmeter.meter.loop")
    stop = asyncio.Event()
    meter = asyncio.create_task(run_meter(runtime, stop))
    try:
        # the first tick runs at once, and the one that opening LISTEN asks for after it
        # (nothing is due); the next planned one is a minute away. Counted, not read off
        # the log: under load the second tick may have started before the log is looked at
        await until(lambda: any("listening" in r.message for r in caplog.records), seconds=15)
        await until(lambda: ticks["finished"] >= 2, seconds=15)
        assert ticks["started"] == 2, ticks
        assert (await driver.call(call_id, caller))["charged"] == 0
        woken = ticks["started"]
        async with runtime.sessionmaker() as session:
            await repository.bring_due(session, [call_id], now)
            await session.commit()
        deadline = time.monotonic() + 15  # far short of the 60 s tick it must not wait for
        while (await driver.call(call_id, caller))["charged"] == 0:
            assert time.monotonic() < deadline, "the meter was not woken"
            assert not meter.done(), meter
            await asyncio.sleep(0.05)
        assert ticks["started"] > woken
    finally:
        stop.set()
        await meter
    assert (await driver.call(call_id, caller))["charged"] == 10
    await driver.ledger_ok()


async def test_a_read_that_finishes_late_does_not_take_back_a_newer_presence(
    driver: CallDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's read of a row may finish after a heartbeat of the same call wrote and
    kept a newer row (the database's quick path: no new version, so nothing is heard). The
    late read must not take back that party's last-seen: memory would then miss the
    presence that completes a charge, and answer a beat past the boundary as quiet."""
    call_id, caller, _host, beats = await remembered(driver)
    database_path(monkeypatch)
    mark = beats.mark()
    async with runtime.sessionmaker() as session:  # the batch's read, not yet kept
        old = await repository.get_call(session, call_id)
        assert old is not None
        session.expunge(old)
    old_seen = old.client_last_seen_at
    del beats._known[call_id]  # as after a change: the next heartbeat takes the database
    driver.clock.advance(5)
    assert (await driver.heartbeat(call_id, caller)).status_code == 200
    assert beats.answered == 0
    assert beats._known[call_id].call.client_last_seen_at == driver.clock.now()
    assert beats.remember(old, mark)  # the read finishes now
    assert old_seen is not None
    assert old_seen < driver.clock.now()
    assert beats._known[call_id].call.client_last_seen_at == driver.clock.now()


async def meter_heard(runtime: Runtime, beats: QuietBeats, monkeypatch: pytest.MonkeyPatch) -> None:
    """The meter's word that it ticks, as ``run_meter`` says it, heard by this process (and
    remembered for the length of the test)."""
    monkeypatch.setattr(beats_module, "METER_HEARD_SECONDS", 600.0)
    async with runtime.sessionmaker() as session:
        await repository.say_meter_ticks(session)
        await session.commit()
    await until(lambda: beats.meter_ticks)


async def seen_until_55(driver: CallDriver, beats: QuietBeats) -> tuple[int, Party, Party]:
    """A call remembered, both parties last written at 55 s into its first minute."""
    call_id, caller, host, _ = await remembered(driver)
    start = datetime.fromisoformat((await driver.call(call_id, caller))["started_at"])
    for at in (20, 40, 55):
        driver.clock.set(start + timedelta(seconds=at))
        for who in (caller, host):
            assert (await driver.heartbeat(call_id, who)).status_code == 200
        assert await beats.flush() == 2
    driver.clock.set(start)
    beats.answered = 0
    return call_id, caller, host


async def charged_by_the_meter(
    driver: CallDriver, runtime: Runtime, call_id: int, caller: Party
) -> None:
    """Both parties' presence now is written and the call is due for the meter, which
    charges the minute at its tick."""
    async with runtime.sessionmaker() as session:
        row = await repository.get_call(session, call_id)
    assert row is not None
    assert row.due_at is not None
    assert row.due_at <= driver.clock.now()  # due for the meter
    assert row.client_last_seen_at == row.host_last_seen_at == driver.clock.now()
    await driver.tick()
    assert (await driver.call(call_id, caller))["charged"] == 10


async def test_a_charge_due_is_left_to_the_meter_that_ticks(
    driver: CallDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the meter says it ticks, both parties' beats just past a boundary are answered
    from memory; their batch brings the call due and the meter charges it, once."""
    beats = await listening(runtime)
    call_id, caller, host = await seen_until_55(driver, beats)
    await meter_heard(runtime, beats, monkeypatch)
    driver.clock.advance(61)
    for who in (caller, host):
        r = await driver.heartbeat(call_id, who)
        assert r.json()["call"]["charged"] == 0, r.text  # not settled by the heartbeat
    assert (beats.answered, beats.left_to_meter) == (2, 2)
    assert await beats.flush() == 2
    await charged_by_the_meter(driver, runtime, call_id, caller)
    assert (await driver.call(call_id, caller))["status"] == "active"
    driver.clock.advance(1)
    for who in (caller, host):  # nothing more is due: quiet again, nothing charged twice
        assert (await driver.heartbeat(call_id, who)).status_code == 200
    await beats.flush()
    await driver.tick()
    assert (await driver.call(call_id, caller))["charged"] == 10
    await driver.ledger_ok()


async def test_a_charge_due_too_long_is_settled_by_the_heartbeat(
    driver: CallDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``LEFT_TO_METER_SECONDS`` after the boundary (a meter that says it ticks but has
    not charged), the heartbeat settles the call itself, as it does without a meter."""
    beats = await listening(runtime)
    call_id, caller, host = await seen_until_55(driver, beats)
    await meter_heard(runtime, beats, monkeypatch)
    driver.clock.advance(60 + beats_module.LEFT_TO_METER_SECONDS + 1)
    assert (await driver.heartbeat(call_id, caller)).json()["call"]["charged"] == 0
    r = await driver.heartbeat(call_id, host)
    assert r.json()["call"]["charged"] == 10, r.text  # both seen: the full path charged
    assert beats.left_to_meter == 0
    await beats.flush()
    await driver.ledger_ok()


async def test_without_the_meter_a_charge_due_is_settled_by_the_heartbeat(
    driver: CallDriver, runtime: Runtime
) -> None:
    beats = await listening(runtime)
    call_id, caller, host = await seen_until_55(driver, beats)
    assert not beats.meter_ticks
    driver.clock.advance(61)
    assert (await driver.heartbeat(call_id, caller)).json()["call"]["charged"] == 0
    assert (await driver.heartbeat(call_id, host)).json()["call"]["charged"] == 10
    assert beats.left_to_meter == 0
    await driver.ledger_ok()


async def test_the_meter_says_it_ticks_while_it_runs(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    beats = await listening(runtime)
    assert not beats.meter_ticks
    stop = asyncio.Event()
    meter = asyncio.create_task(run_meter(runtime, stop))
    try:
        await until(lambda: beats.meter_ticks)
    finally:
        stop.set()
        await meter
    monkeypatch.setattr(beats_module, "METER_HEARD_SECONDS", 0.2)
    await until(lambda: not beats.meter_ticks)  # a meter stopped is not relied on


async def back_in_memory(beats: QuietBeats, call_id: int) -> None:
    """After a change heard: the next batch reads the row again."""
    await until(lambda: call_id not in beats._known)
    await beats.flush()
    await beats.refresh()
    assert call_id in beats._known


async def test_a_charge_owed_by_presence_is_not_left_for_long_to_a_meter_that_does_not_settle(
    driver: CallDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The meter looked at the boundary before both parties were seen past it (nothing
    charged, its next boundary a minute on): the charge is then owed by presence alone.
    A meter that says it ticks but does not settle it is waited for until
    ``LEFT_TO_METER_SECONDS`` after the boundary, then the heartbeat settles (found by
    review: it waited for the next boundary)."""
    beats = await listening(runtime)
    call_id, caller, host = await seen_until_55(driver, beats)
    start = driver.clock.now()
    await meter_heard(runtime, beats, monkeypatch)
    driver.clock.set(start + timedelta(seconds=60))
    await driver.tick()  # the meter's look at the boundary: presence still at 55 s
    await back_in_memory(beats, call_id)
    driver.clock.set(start + timedelta(seconds=61))
    for who in (caller, host):  # owed from here (both seen past 60 s); left to the meter
        assert (await driver.heartbeat(call_id, who)).json()["call"]["charged"] == 0
    assert beats.left_to_meter == 1
    await beats.flush()  # brought due; this meter does not settle it
    driver.clock.set(start + timedelta(seconds=61 + beats_module.LEFT_TO_METER_SECONDS))
    r = await driver.heartbeat(call_id, caller)
    assert r.json()["call"]["charged"] == 10, r.text  # the heartbeat settled it
    await driver.ledger_ok()


async def test_a_meter_that_settles_nothing_does_not_say_it_ticks(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick whose calls failed is no tick that worked: the meter says nothing, so API
    processes settle charges themselves (found by review: it said it ticked after any
    tick that returned)."""
    beats = await listening(runtime)
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.model_copy(update={"meter_tick_seconds": 0.02})
    )
    ticks = 0

    async def failing(runtime: Runtime) -> TickResult:
        nonlocal ticks
        ticks += 1
        return TickResult(claimed=1, failed=1)  # the call it took could not be settled

    monkeypatch.setattr("callmeter.meter.loop.tick", failing)
    stop = asyncio.Event()
    meter = asyncio.create_task(run_meter(runtime, stop))
    try:
        await until(lambda: ticks >= 50)  # ~1 s of ticks, each followed by a look at a word
        assert not beats.meter_ticks
    finally:
        stop.set()
        await meter


async def test_a_batch_past_a_boundary_still_refuses_a_party_silent_past_the_timeout(
    driver: CallDriver, runtime: Runtime
) -> None:
    """The batch may write presence past a boundary (a charge left to the meter), but a
    party silent past the timeout at the beat's moment still blocks it: no revival."""
    beats = await listening(runtime)
    call_id, caller, host = await seen_until_55(driver, beats)
    start = driver.clock.now()
    late = start + timedelta(seconds=55 + runtime.settings.heartbeat_timeout_seconds)

    def check(party: Party, role: str, at: datetime) -> repository.PresenceCheck:
        return repository.PresenceCheck.of(
            runtime.settings, call_id, role, party.user.id, at, timedelta(0)
        )

    async with runtime.sessionmaker() as session:  # both timed out: nothing written
        await repository.record_presences(
            session, [check(caller, "client", late), check(host, "host", late)]
        )
        await session.commit()
    assert await seen(runtime, call_id) == (start + timedelta(seconds=55),) * 2
    just = late - timedelta(seconds=1)
    async with runtime.sessionmaker() as session:  # within the timeout: past the boundary
        await repository.record_presences(session, [check(caller, "client", just)])
        await session.commit()
    assert await seen(runtime, call_id) == (just, start + timedelta(seconds=55))
    driver.clock.set(late)  # the host silent past the timeout: ended at the 55 s horizon
    r = await driver.heartbeat(call_id, caller)
    assert (r.json()["call"]["status"], r.json()["call"]["charged"]) == ("ended", 0)
    await driver.ledger_ok()


@pytest.mark.parametrize("meter_works", [True, False])
async def test_paid_time_ends_by_the_meter_or_by_the_heartbeat(
    driver: CallDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, meter_works: bool
) -> None:
    """20 coins: the call ends insufficient_funds at 120 s, billed 120 s and charged 20,
    whether the meter settles what is left to it or (a meter that says it ticks and does
    not) the heartbeat does, ``LEFT_TO_METER_SECONDS`` later."""
    beats = await listening(runtime)
    caller, host = await driver.party(Role.client, 20), await driver.party(Role.host)
    call_id = await driver.connect(caller, host)
    deadline = time.monotonic() + 5
    while call_id not in beats._known:
        assert time.monotonic() < deadline, "never remembered"
        await asyncio.sleep(0.05)
        driver.clock.advance(1)
        for who in (caller, host):
            assert (await driver.heartbeat(call_id, who)).status_code == 200
    await beats.flush()
    start = datetime.fromisoformat((await driver.call(call_id, caller))["started_at"])
    await meter_heard(runtime, beats, monkeypatch)
    for at in range(10, 120, 9):
        driver.clock.set(start + timedelta(seconds=at))
        for who in (caller, host):
            assert (await driver.heartbeat(call_id, who)).status_code == 200
        await beats.flush()
        if meter_works:
            await driver.tick()
    driver.clock.set(start + timedelta(seconds=121))
    for who in (caller, host):
        r = await driver.heartbeat(call_id, who)
        assert r.json()["call"]["status"] == "active", r.text  # left to the meter
    await beats.flush()
    if meter_works:
        await driver.tick()
        call = await driver.call(call_id, caller)
    else:
        driver.clock.set(start + timedelta(seconds=121 + beats_module.LEFT_TO_METER_SECONDS))
        call = (await driver.heartbeat(call_id, caller)).json()["call"]
    assert (call["status"], call["end_reason"]) == ("ended", "insufficient_funds")
    assert (call["charged"], call["billed_seconds"]) == (20, 120)
    await driver.ledger_ok()


async def test_a_slow_batch_keeps_memory_and_a_hung_or_failed_one_stops_it(
    driver: CallDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that waits while the database answers this process's other statements (a
    busy machine) leaves memory on: switching it off would send every heartbeat to the
    database when it is least able to take them (the capacity benchmark's collapse at 2,000
    calls). One that waits while nothing is answered (a hung database), or fails, stops it
    until the database answers again."""
    call_id, caller, _host, beats = await remembered(driver)
    period = 0.05  # memory stops after 0.1 s of a hung batch
    monkeypatch.setattr(
        runtime,
        "settings",
        runtime.settings.model_copy(update={"presence_flush_seconds": period}),
    )
    release = asyncio.Event()
    written = repository.record_presences

    async def waiting(session: object, checks: object, **kwargs: object) -> list[object]:
        await release.wait()
        return []

    monkeypatch.setattr(repository, "record_presences", waiting)
    driver.clock.advance(5)
    assert (await driver.heartbeat(call_id, caller)).status_code == 200  # pending
    batch = asyncio.create_task(beats.flush())
    try:
        started = time.monotonic()
        while time.monotonic() - started < 5 * period:  # the database answers others
            async with runtime.engine.connect() as conn:
                await conn.execute(select(1))
            assert beats.enabled
            await asyncio.sleep(period / 5)
        await until(lambda: not beats.enabled)  # nothing answered for two periods
        async with runtime.engine.connect() as conn:
            await conn.execute(select(1))
        assert beats.enabled  # the database answers again
    finally:
        release.set()
        await batch

    async def failing(session: object, checks: object, **kwargs: object) -> list[object]:
        raise ConnectionRefusedError("the database is away")

    monkeypatch.setattr(repository, "record_presences", failing)
    driver.clock.advance(5)
    assert (await driver.heartbeat(call_id, caller)).status_code == 200  # pending again
    with pytest.raises(ConnectionRefusedError):
        await beats.flush()
    assert not beats.enabled  # until a batch is written: other statements do not count
    async with runtime.engine.connect() as conn:  # (a row locked, a read-only database)
        await conn.execute(select(1))
    assert not beats.enabled
    monkeypatch.setattr(repository, "record_presences", written)
    assert await beats.flush() == 1  # the presence held was kept, and is written now
    assert beats.enabled
    assert (await seen(runtime, call_id))[0] == driver.clock.now()


async def test_requests_that_take_every_pooled_connection_do_not_starve_memory(
    driver: CallDriver, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Memory's batches, read-backs and reads use connections of their own: requests that
    hold every connection of the process's pool (a flood, or every heartbeat sent to the
    database because memory went off) do not make the batch wait for one and fail, which
    turned memory off until a batch was written — and none could be while the requests
    held the pool (the capacity benchmark at 10,000 calls: memory answered 4 % of the
    heartbeats, the database the rest, 10 times the cost each)."""
    call_id, caller, _host, beats = await remembered(driver)
    other, other_caller, _other_host, _ = await remembered(driver)
    del beats._known[other]  # not held: its next heartbeat has memory read it
    fetched = beats.fetched
    pool = runtime.engine.pool
    every = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
    held = [await runtime.engine.connect() for _ in range(every)]
    try:
        with pytest.raises(TimeoutError):  # the process's pool has nothing left
            await asyncio.wait_for(runtime.engine.connect(), 0.5)
        driver.clock.advance(5)
        assert (await driver.heartbeat(call_id, caller)).status_code == 200
        assert (await driver.heartbeat(other, other_caller)).status_code == 200
        assert beats.answered == 2  # the second read by memory first
        assert beats.fetched == fetched + 1
        assert await beats.flush() == 2
        assert beats.enabled
    finally:
        for conn in held:
            await conn.close()
    assert (await seen(runtime, call_id))[0] == driver.clock.now()


async def test_memory_going_off_and_on_again_is_logged(
    driver: CallDriver,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator sees when every heartbeat starts going to the database, and why."""
    call_id, caller, _host, beats = await remembered(driver)
    written = repository.record_presences

    async def failing(session: object, checks: object, **kwargs: object) -> list[object]:
        raise ConnectionRefusedError("the database is away")

    monkeypatch.setattr(repository, "record_presences", failing)
    caplog.set_level(logging.INFO, logger="callmeter.calls.beats")
    driver.clock.advance(5)
    assert (await driver.heartbeat(call_id, caller)).status_code == 200
    for _ in range(2):  # said once, not at every failed batch
        with pytest.raises(ConnectionRefusedError):
            await beats.flush()
    off = [r for r in caplog.records if "memory off" in r.message]
    assert len(off) == 1, caplog.text
    assert "the database is away" in off[0].message
    assert off[0].levelno == logging.WARNING
    monkeypatch.setattr(repository, "record_presences", written)
    assert await beats.flush() == 1
    on = [r for r in caplog.records if "memory on again" in r.message]
    assert len(on) == 1, caplog.text


def counted(path: str) -> float:
    return float(metrics.HEARTBEATS.labels(path)._value.get())


async def test_a_heartbeat_from_memory_is_counted_under_its_route(driver: CallDriver) -> None:
    """``callmeter_http_requests_total`` counts a heartbeat answered from memory under the
    endpoint's route, as one the endpoint answers (it was counted as ``unmatched``)."""
    call_id, caller, _host, beats = await remembered(driver)

    def requests(route: str) -> float:
        return float(metrics.HTTP_REQUESTS.labels("POST", route, "200")._value.get())

    before = requests("/v1/calls/{call_id}/heartbeat"), requests("unmatched")
    driver.clock.advance(5)
    assert (await driver.heartbeat(call_id, caller)).status_code == 200
    assert beats.answered == 1
    assert requests("/v1/calls/{call_id}/heartbeat") == before[0] + 1
    assert requests("unmatched") == before[1]


async def test_a_charge_due_is_left_to_the_meter_by_the_database_path_too(
    driver: CallDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call this process does not hold (a change was just heard, or its first heartbeat
    here): the database's quick path records the presence past the boundary and brings the
    call due in its own transaction, instead of settling it (capacity benchmark: the
    meter's look at a boundary made every call's boundary beats take the full path)."""
    beats = await listening(runtime)
    call_id, caller, host = await seen_until_55(driver, beats)
    await meter_heard(runtime, beats, monkeypatch)
    database_path(monkeypatch)
    driver.clock.advance(61)
    full = counted("full")
    for who in (caller, host):
        beats._known.pop(call_id, None)  # not held: the database's path
        r = await driver.heartbeat(call_id, who)
        assert r.json()["call"]["charged"] == 0, r.text  # not settled by the heartbeat
    assert (counted("full"), beats.answered) == (full, 0)
    await charged_by_the_meter(driver, runtime, call_id, caller)
    await driver.ledger_ok()


async def test_without_the_meter_the_database_path_settles_a_charge_due(
    driver: CallDriver, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    beats = await listening(runtime)
    call_id, caller, host = await seen_until_55(driver, beats)
    database_path(monkeypatch)
    driver.clock.advance(61)
    full = counted("full")
    for who in (caller, host):
        beats._known.pop(call_id, None)
        r = await driver.heartbeat(call_id, who)
    assert r.json()["call"]["charged"] == 10, r.text
    assert counted("full") == full + 2
    await driver.ledger_ok()


async def test_calls_not_held_are_read_together_and_answered_from_memory(
    driver: CallDriver, runtime: Runtime
) -> None:
    """A cold start (a process just started, thousands of calls' first heartbeats there):
    the calls are read together, a few queries for all of them, and each heartbeat
    answered from memory instead of one write per heartbeat."""
    beats = await listening(runtime)
    calls = []
    for _ in range(12):
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        calls.append((await driver.connect(caller, host), caller, host))
    driver.clock.advance(5)
    for who in ("client", "host"):  # the first heartbeat of each (the database's path)
        await asyncio.gather(
            *(driver.heartbeat(call_id, c if who == "client" else h) for call_id, c, h in calls)
        )
    await beats.flush()
    beats._known.clear()  # as in a process just started
    fetched, answered = beats.fetched, beats.answered
    driver.clock.advance(5)
    answers = await asyncio.gather(
        *(driver.heartbeat(call_id, who) for call_id, c, h in calls for who in (c, h))
    )
    assert {r.status_code for r in answers} == {200}
    assert beats.answered - answered == 24
    assert beats.fetched - fetched == 12  # each call read once
    stranger = await driver.party(Role.client, 100)
    r = await driver.heartbeat(calls[0][0], stranger)  # not a party: the endpoint's 404,
    assert r.status_code == 404, r.text  # and the parties' presence held is not lost
    beats._known.clear()
    r = await driver.heartbeat(calls[0][0], stranger)  # read, and not answered
    assert r.status_code == 404, r.text
    r = await driver.heartbeat(10**9, calls[0][1])  # no such call: the endpoint says so
    assert r.status_code == 404, r.text
    await beats.flush()
    assert await seen(runtime, calls[0][0]) == (driver.clock.now(), driver.clock.now())


async def test_a_batch_passes_by_a_row_another_transaction_holds(
    driver: CallDriver, runtime: Runtime
) -> None:
    """A call row locked elsewhere (a settlement under way, an operator's session) does not
    hold up the batch, and so every other call's presence: that row's presence waits for
    the next batch."""
    call_id, caller, _host, beats = await remembered(driver)
    other_id, other_caller, _other_host, _ = await remembered(driver)
    driver.clock.advance(5)
    for call, who in ((call_id, caller), (other_id, other_caller)):
        assert (await driver.heartbeat(call, who)).status_code == 200
    async with runtime.sessionmaker() as holder:
        await holder.execute(select(Call.id).where(Call.id == call_id).with_for_update())
        assert await asyncio.wait_for(beats.flush(), 5) == 1  # the other call's only
        assert beats.enabled
    assert (await seen(runtime, other_id))[0] == driver.clock.now()
    assert (await seen(runtime, call_id))[0] != driver.clock.now()
    assert await beats.flush() == 1  # the lock released: written now
    assert (await seen(runtime, call_id))[0] == driver.clock.now()
