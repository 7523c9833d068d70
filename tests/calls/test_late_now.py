"""Regression, found in review: a settlement whose ``now`` is older than the last one.

Every path reads the clock when its request (or meter tick) starts and only then waits
for the call's row lock, so a path can settle a call *after* another path that read the
clock later: the meter's per-call step settles with the ``now`` of its tick (the call was
claimed then; LiveKit rosters and the calls before it take time), a hang-up may wait
behind a heartbeat. ``plan`` never lowers ``charged`` (``_charged_to``), but it sets
``billed_seconds`` to what is billable at *its* ``now``: lower than what the call was
already charged for. ``plan_finish`` then falls back to that lowered ``billed_seconds``
when an end is stamped before a moment already charged for, and the ended call's
``charged`` is no longer ``cost(billed_seconds)``: ``ledger check`` reports it.

Suggested fix: in ``plan``, never lower ``billed_seconds`` (``max(state.billed_seconds,
billable)``), nor move ``next_charge_at`` back — or return ``_unchanged`` when ``now`` is
before the call's last settlement; and in ``plan_finish`` fall back to the seconds whose
cost is the charge (``covered`` inverse), not to a stored field.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from callmeter.calls import service as calls
from callmeter.config import BillingPolicy, Settings
from callmeter.kit.runtime import Runtime
from callmeter.models import Call, Role
from tests.calls.driver import CallDriver
from tests.conftest import make_settings
from tests.factories import assert_ledger_ok


@pytest.fixture
def settings(database_url: str) -> Settings:
    # per-second billing: every second already charged for is a coin's fraction
    return make_settings(database_url, billing_policy=BillingPolicy.per_second)


async def _call(runtime: Runtime, call_id: int) -> Call:
    async with runtime.sessionmaker() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call


async def test_a_late_meter_step_does_not_unbill_seconds(driver: CallDriver) -> None:
    runtime, clock, settings = driver.runtime, driver.clock, driver.runtime.settings
    caller = await driver.party(Role.client, coins=1000)
    host = await driver.party(Role.host)
    call_id = await driver.connect(caller, host)
    await driver.run(call_id, caller, host, until=54, step=6)
    tick_now = clock.now() + timedelta(seconds=6)  # the meter's tick reads the clock here
    clock.advance(18)
    # the parties' heartbeats, 18 s later, settle first (per-second: 72 s charged)
    await driver.both_heartbeat(call_id, caller, host)
    charged = await _call(runtime, call_id)
    assert (charged.billed_seconds, charged.charged) == (72, 12)
    # then the meter's per-call step, with its tick's now (what meter.service._advance_one does)
    async with runtime.sessionmaker.begin() as session:
        await calls.advance(session, call_id=call_id, settings=settings, now=tick_now)
    after = await _call(runtime, call_id)
    assert after.charged == 12
    assert after.billed_seconds >= 72, "billed seconds went down"


async def test_a_late_hang_up_ends_the_call_at_what_it_was_charged_for(
    driver: CallDriver,
) -> None:
    runtime, clock, settings = driver.runtime, driver.clock, driver.runtime.settings
    caller = await driver.party(Role.client, coins=1000)
    host = await driver.party(Role.host)
    call_id = await driver.connect(caller, host)
    await driver.run(call_id, caller, host, until=54, step=6)
    tick_now = clock.now() + timedelta(seconds=6)
    hang_up_now = clock.now() + timedelta(seconds=9)  # the hang-up's request starts here
    clock.advance(18)
    await driver.both_heartbeat(call_id, caller, host)  # settles to 72 s: 12 coins
    async with runtime.sessionmaker.begin() as session:  # the meter's late step
        await calls.advance(session, call_id=call_id, settings=settings, now=tick_now)
    # the hang-up got the call's lock last
    async with runtime.sessionmaker.begin() as session:
        await calls.end(
            session, user=caller.user, call_id=call_id, settings=settings, now=hang_up_now
        )
    ended = await _call(runtime, call_id)
    assert ended.status == "ended"
    assert ended.charged == 12
    await assert_ledger_ok(runtime)  # ended call: cost(billed_seconds) == charged
