"""Issue 11, point 4: LiveKit's clock (an event's createdAt) has a floor and a ceiling.

Reported: a ``participant_joined`` whose createdAt was 600 s in the past set ``started_at``
before the call existed, and a 0.5 s call was charged 1,000 coins; createdAt 2^40 or a room
``call-<30 digits>`` answered 500.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from callmeter.models import Role, WebhookEvent
from tests.calls.driver import CallDriver, Party
from tests.media.standin import Standin
from tests.media.test_livekit import Webhooks, identity


@pytest.fixture
def hooks(driver: CallDriver) -> Webhooks:
    return Webhooks(driver)


async def _inbox(driver: CallDriver) -> list[WebhookEvent]:
    async with driver.runtime.sessionmaker() as session:
        return list(await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


class TestEventTimes:
    @pytest.mark.parametrize("skew", [-600, -3600, 3600])
    async def test_a_skewed_join_never_bills_before_the_call_was_accepted(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin, skew: int
    ) -> None:
        caller = await driver.party(Role.client, 1000)
        host = await driver.party(Role.host)
        created = (await driver.post("/v1/calls", caller, {"host_id": host.user.id})).json()
        call_id, room = created["call"]["id"], created["media"]["room"]
        driver.clock.advance(2)
        await driver.post(f"/v1/calls/{call_id}/accept", host)
        accepted = driver.clock.now()
        for party in (caller, host):
            sid = standin.join(room, identity(party))
            at = driver.clock.now() + timedelta(seconds=skew)
            r = await hooks.send(hooks.event("participant_joined", room, party, sid, at=at))
            assert r.status_code == 200, r.text
        call = await driver.call(call_id, caller)
        assert call["status"] == "active"
        started = datetime.fromisoformat(call["started_at"])
        assert accepted <= started <= driver.clock.now()
        driver.clock.advance(0.5)
        r = await driver.post(f"/v1/calls/{call_id}/end", caller)
        final = r.json()["call"]
        assert final["billed_seconds"] == 0
        assert final["charged"] == 0
        await driver.ledger_ok()

    @pytest.mark.parametrize("created_at", [2**40, -(2**40), 2**62])
    async def test_an_absurd_event_time_is_refused_and_recorded(
        self, driver: CallDriver, hooks: Webhooks, created_at: int
    ) -> None:
        event = hooks.event("participant_joined", "call-1")
        event.created_at = created_at
        r = await hooks.send(event)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "invalid_webhook_event"
        [row] = await _inbox(driver)
        assert (row.event_id, row.handled_at is not None) == (event.id, True)
        again = await hooks.send(event)  # a retry gets the same answer, recorded once
        assert again.status_code == 422
        assert len(await _inbox(driver)) == 1

    @pytest.mark.parametrize("room", ["call-" + "9" * 30, "call-0", "call-9007199254740993"])
    async def test_a_malformed_call_room_is_refused_and_recorded(
        self, driver: CallDriver, hooks: Webhooks, room: str
    ) -> None:
        r = await hooks.send(hooks.event("room_finished", room))
        assert r.status_code == 422, r.text
        assert [row.room for row in await _inbox(driver)] == [room]

    async def test_a_room_that_is_not_ours_is_acknowledged(
        self, driver: CallDriver, hooks: Webhooks
    ) -> None:
        r = await hooks.send(hooks.event("room_finished", "someone-elses-room"))
        assert (r.status_code, r.json()["status"]) == (200, "ok")


async def _joined(
    driver: CallDriver, hooks: Webhooks, standin: Standin
) -> tuple[Party, Party, int, str, dict[int, str]]:
    """An active LiveKit call: rung, accepted, both parties joined (their sids by user)."""
    caller = await driver.party(Role.client, 1000)
    host = await driver.party(Role.host)
    created = (await driver.post("/v1/calls", caller, {"host_id": host.user.id})).json()
    call_id, room = created["call"]["id"], created["media"]["room"]
    await driver.post(f"/v1/calls/{call_id}/accept", host)
    sids = {}
    for party in (caller, host):
        sids[party.user.id] = sid = standin.join(room, identity(party))
        await hooks.join(room, party, sid)
    return caller, host, call_id, room, sids


class TestLiveKitWithoutTheMeter:
    async def test_a_webhook_after_the_silence_timeout_ends_the_call_at_the_horizon(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        """No meter means no reconciliation: LiveKit last vouched for both parties when
        they joined. A later webhook applies the presence rule first."""
        caller, host, call_id, room, sids = await _joined(driver, hooks, standin)
        driver.clock.advance(100)  # heartbeat timeout 30 s, nothing heard
        await hooks.leave(room, host, sids[host.user.id])
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["billed_seconds"], final["charged"]) == (
            "connection_lost",
            0,
            0,
        )
        await driver.ledger_ok()

    async def test_heartbeats_of_joined_parties_keep_the_call_alive_without_the_meter(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        """A worker outage stops reconciliation; parties LiveKit has in the room and whose
        browsers heartbeat stay present, and the call is billed as it runs."""
        caller, host, call_id, room, sids = await _joined(driver, hooks, standin)
        for _ in range(25):  # 125 s of heartbeats every 5 s, no meter
            driver.clock.advance(5)
            await driver.both_heartbeat(call_id, caller, host)
        call = await driver.call(call_id, caller)
        assert (call["status"], call["charged"]) == ("active", 20)
        # LiveKit says the host left: its heartbeats no longer vouch for it
        await hooks.leave(room, host, sids[host.user.id])
        for _ in range(4):
            driver.clock.advance(5)
            await driver.both_heartbeat(call_id, caller, host)
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["billed_seconds"], final["charged"]) == (
            "media_left",
            125,
            20,
        )
        await driver.ledger_ok()
