"""The heartbeat period the server asks of clients (issue 15, point 3)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callmeter.billing.settlement import HEARTBEAT_MAX_SECONDS, heartbeat_period
from callmeter.models import CallStatus, Role
from tests.calls.driver import CallDriver

timeouts = st.integers(min_value=1, max_value=3600)


@given(timeouts)
def test_an_active_call_beats_three_times_a_timeout_at_most_every_15_s(timeout: int) -> None:
    period = heartbeat_period(CallStatus.active, timeout)
    assert 1 <= period <= HEARTBEAT_MAX_SECONDS
    if timeout >= 3:
        assert 3 * period <= timeout  # two beats may be lost before a party counts as gone


@given(timeouts)
def test_setting_up_beats_faster_and_an_ended_call_not_at_all(timeout: int) -> None:
    for status in (CallStatus.ringing, CallStatus.connecting):
        assert 1 <= heartbeat_period(status, timeout) <= 2
        assert heartbeat_period(status, timeout) <= heartbeat_period(CallStatus.active, timeout)
    assert heartbeat_period(CallStatus.ended, timeout) == 0


def test_the_default_60_s_interval_does_not_need_a_beat_every_5_s() -> None:
    assert heartbeat_period(CallStatus.active, 30) == 10


async def test_a_ringing_call_asks_for_a_beat_every_2_s(driver: CallDriver) -> None:
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    assert (await driver.ring(caller, host))["heartbeat_seconds"] == 2


async def test_the_call_object_carries_the_period(driver: CallDriver) -> None:
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    call_id = await driver.connect(caller, host)  # rings first
    r = await driver.heartbeat(call_id, caller)
    assert r.json()["call"]["status"] == "active"
    assert r.json()["call"]["heartbeat_seconds"] == 10
    r = await driver.post(f"/v1/calls/{call_id}/end", caller)
    assert r.json()["call"]["heartbeat_seconds"] == 0
