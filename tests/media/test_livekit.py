"""LiveKit media against a stand-in that speaks LiveKit's Twirp API, with webhooks signed
exactly as LiveKit signs them."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from livekit import api
from sqlalchemy import func, select

from callmeter.models import MediaKick, Role, WebhookEvent
from tests.calls.driver import CallDriver, Party
from tests.media.standin import KEY, SECRET, Standin, signed_webhook

_ids = itertools.count(1)


def identity(party: Party) -> str:
    return f"user-{party.user.id}"


class Webhooks:
    def __init__(self, driver: CallDriver) -> None:
        self.driver = driver

    def event(self, kind: str, room: str, party: Party | None = None, sid: str = "",
              at: datetime | None = None) -> api.WebhookEvent:  # fmt: skip
        moment = at or self.driver.clock.now()
        event = api.WebhookEvent(
            event=kind,
            id=f"EV_{next(_ids)}",
            created_at=int(moment.timestamp()),
            room=api.Room(name=room, sid=f"RM_{room}"),
        )
        if party is not None:
            event.participant.CopyFrom(
                api.ParticipantInfo(identity=identity(party), sid=sid, name="x")
            )
        return event

    async def send(self, event: api.WebhookEvent, *, secret: str = SECRET) -> Any:
        body, token = signed_webhook(event, secret)
        return await self.driver.client.post(
            "/v1/webhooks/livekit",
            content=body,
            headers={"Authorization": token, "Content-Type": "application/webhook+json"},
        )

    async def join(self, room: str, party: Party, sid: str) -> None:
        r = await self.send(self.event("participant_joined", room, party, sid))
        assert r.status_code == 200, r.text

    async def leave(self, room: str, party: Party, sid: str) -> None:
        r = await self.send(self.event("participant_left", room, party, sid))
        assert r.status_code == 200, r.text


@pytest.fixture
def hooks(driver: CallDriver) -> Webhooks:
    return Webhooks(driver)


Ringing = tuple[Party, Party, dict[str, Any], dict[str, Any]]


async def _ring_and_accept(driver: CallDriver, coins: int = 100) -> Ringing:
    caller, host = await driver.party(Role.client, coins), await driver.party(Role.host)
    r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
    assert r.status_code == 201, r.text
    created = r.json()
    accepted = (await driver.post(f"/v1/calls/{created['call']['id']}/accept", host)).json()
    return caller, host, created, accepted


async def _active(driver: CallDriver, hooks: Webhooks, standin: Standin,
                  coins: int = 100) -> tuple[Party, Party, int, str]:  # fmt: skip
    caller, host, created, _ = await _ring_and_accept(driver, coins)
    call_id, room = created["call"]["id"], created["media"]["room"]
    for party in (caller, host):
        sid = standin.join(room, identity(party))
        await hooks.join(room, party, sid)
    assert (await driver.call(call_id, caller))["status"] == "active"
    return caller, host, call_id, room


async def _tick_for(driver: CallDriver, seconds: int, step: int = 5) -> None:
    for _ in range(seconds // step):
        driver.clock.advance(step)
        await driver.tick()


class TestRoomsAndTokens:
    async def test_room_per_call_and_a_token_per_party(
        self, driver: CallDriver, standin: Standin
    ) -> None:
        caller, host, created, accepted = await _ring_and_accept(driver)
        room = f"call-{created['call']['id']}"
        [create] = standin.calls_to("CreateRoom")[:1]
        assert (create.name, create.max_participants) == (room, 2)
        assert create.empty_timeout > 0
        assert create.departure_timeout == 20
        verifier = api.TokenVerifier(KEY, SECRET)
        for party, body in ((caller, created), (host, accepted)):
            media = body["media"]
            assert (media["provider"], media["url"], media["room"]) == (
                "livekit",
                standin.url,
                room,
            )
            claims = verifier.verify(media["token"])
            assert claims.identity == identity(party)
            assert claims.name == party.user.display_name
            assert claims.video is not None
            assert (claims.video.room_join, claims.video.room) == (True, room)
            assert claims.video.can_publish
            assert claims.video.can_subscribe
            assert not claims.video.room_admin
            raw = jwt.decode(media["token"], options={"verify_signature": False})
            assert raw["exp"] - raw["nbf"] == 600
        assert identity(caller) != identity(host)

    async def test_a_new_tab_gets_a_fresh_token_for_its_party_only(
        self, driver: CallDriver
    ) -> None:
        """A page that lost its media credentials (a new tab, "Return to your call" in
        another window) asks again: each party gets a token for this room and itself, an
        admin none, and nobody once the call ended."""
        caller, host, created, _accepted = await _ring_and_accept(driver)
        call_id = created["call"]["id"]
        verifier = api.TokenVerifier(KEY, SECRET)
        for party in (caller, host):
            r = await driver.client.get(f"/v1/calls/{call_id}/media", headers=party.headers)
            assert r.status_code == 200, r.text
            media = r.json()
            assert (media["provider"], media["room"]) == ("livekit", f"call-{call_id}")
            assert verifier.verify(media["token"]).identity == identity(party)
        admin = await driver.party(Role.admin)
        r = await driver.client.get(f"/v1/calls/{call_id}/media", headers=admin.headers)
        assert r.status_code == 404
        assert "token" not in r.text
        await driver.post(f"/v1/calls/{call_id}/end", caller)
        r = await driver.client.get(f"/v1/calls/{call_id}/media", headers=caller.headers)
        assert (r.status_code, r.json()["error"]) == (409, "call_ended")

    async def test_no_token_for_an_ended_call(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        await driver.post(f"/v1/calls/{call['id']}/end", caller)
        r = await driver.post(f"/v1/calls/{call['id']}/accept", host)
        assert (r.status_code, r.json()["error"]) == (409, "call_ended")
        assert "token" not in r.text


class TestWebhookVerification:
    async def test_forged_tampered_and_missing_signatures_are_401(
        self, driver: CallDriver, hooks: Webhooks
    ) -> None:
        event = hooks.event("room_started", "call-1")
        forged = await hooks.send(event, secret="some-other-secret-that-is-also-long")
        assert (forged.status_code, forged.json()["error"]) == (401, "invalid_webhook")
        body, token = signed_webhook(event)
        tampered = body.replace(b"room_started", b"room_finished")
        for content, headers in [
            (tampered, {"Authorization": token}),
            (body, {}),
            (body, {"Authorization": f"Bearer {token}"}),
            (body, {"Authorization": "garbage"}),
        ]:
            r = await driver.client.post("/v1/webhooks/livekit", content=content, headers=headers)
            assert r.status_code == 401, headers
        ok = await driver.client.post(
            "/v1/webhooks/livekit", content=body, headers={"Authorization": token}
        )
        assert ok.json() == {"status": "ok"}

    async def test_the_same_event_three_times_acts_once(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        caller, _host, created, _ = await _ring_and_accept(driver)
        room = created["media"]["room"]
        event = hooks.event(
            "participant_joined", room, caller, standin.join(room, identity(caller))
        )
        answers = [(await hooks.send(event)).json()["status"] for _ in range(3)]
        assert answers == ["ok", "duplicate", "duplicate"]
        async with driver.runtime.sessionmaker() as session:
            rows = await session.scalar(select(func.count()).select_from(WebhookEvent))
        assert rows == 1


class TestPresence:
    async def test_both_joined_bills_and_a_departure_ends_the_call(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        caller, host, call_id, room = await _active(driver, hooks, standin)
        await _tick_for(driver, 70)
        assert (await driver.call(call_id, caller))["charged"] == 10
        sid = standin.participants[room].pop(identity(caller))
        await hooks.leave(room, caller, sid)  # at 70 s
        await _tick_for(driver, 20)  # past the 15 s grace
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["billed_seconds"], final["charged"]) == (
            "media_left",
            70,
            10,
        )
        removed = {r.identity for r in standin.calls_to("RemoveParticipant")}
        assert removed == {identity(caller), identity(host)}
        assert [r.room for r in standin.calls_to("DeleteRoom")] == [room]
        await driver.ledger_ok()

    async def test_a_left_before_its_joined_does_not_connect_anyone(
        self, driver: CallDriver, hooks: Webhooks
    ) -> None:
        caller, host, created, _ = await _ring_and_accept(driver)
        room, call_id = created["media"]["room"], created["call"]["id"]
        await hooks.join(room, host, "PA_host")
        await hooks.leave(room, caller, "PA_gone")  # arrives first…
        await hooks.join(room, caller, "PA_gone")  # …its joined comes late
        assert (await driver.call(call_id, caller))["status"] == "connecting"
        driver.clock.advance(31)
        await driver.tick()
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["charged"]) == ("connect_failed", 0)
        assert await driver.wallet(caller) == (100, 0)

    @pytest.mark.parametrize("left_first", [False, True])
    async def test_a_reconnect_does_not_end_the_call(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin, left_first: bool
    ) -> None:
        caller, _host, call_id, room = await _active(driver, hooks, standin)
        await _tick_for(driver, 40)
        old = standin.participants[room][identity(caller)]
        new = standin.join(room, identity(caller))  # the new session replaces the old
        if left_first:
            await hooks.leave(room, caller, old)
            driver.clock.advance(3)
            await hooks.join(room, caller, new)
        else:
            await hooks.join(room, caller, new)
            driver.clock.advance(3)
            await hooks.leave(room, caller, old)
        await _tick_for(driver, 60)
        call = await driver.call(call_id, caller)
        assert call["status"] == "active"
        r = await driver.post(f"/v1/calls/{call_id}/end", caller)
        final = r.json()["call"]
        assert (final["billed_seconds"], final["charged"]) == (103, 10)
        await driver.ledger_ok()

    async def test_room_finished_ends_the_call_at_its_time(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        caller, _host, call_id, room = await _active(driver, hooks, standin)
        await _tick_for(driver, 125)
        finished = hooks.event("room_finished", room, at=driver.clock.now() - timedelta(seconds=2))
        driver.clock.advance(1)
        assert (await hooks.send(finished)).status_code == 200
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["billed_seconds"], final["charged"]) == (
            "media_left",
            123,
            20,
        )

    async def test_an_event_time_in_the_future_is_capped_at_arrival(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        caller, _host, call_id, room = await _active(driver, hooks, standin)
        await _tick_for(driver, 60)
        late = hooks.event("room_finished", room, at=driver.clock.now() + timedelta(hours=1))
        await hooks.send(late)
        assert (await driver.call(call_id, caller))["billed_seconds"] == 60


class TestServerSideDisconnect:
    async def test_running_out_of_coins_kicks_both_and_deletes_the_room(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        caller, host, call_id, room = await _active(driver, hooks, standin, coins=10)
        await _tick_for(driver, 65)
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["charged"]) == ("insufficient_funds", 10)
        assert {r.identity for r in standin.calls_to("RemoveParticipant")} == {
            identity(caller),
            identity(host),
        }
        assert room in [r.room for r in standin.calls_to("DeleteRoom")]
        assert standin.participants.get(room, {}) == {}
        await driver.ledger_ok()

    async def test_failed_kicks_are_retried_with_backoff(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        _caller, host, call_id, _room = await _active(driver, hooks, standin)
        standin.fail("DeleteRoom", times=2)
        await driver.post(f"/v1/calls/{call_id}/end", host)
        await driver.tick()  # attempt 1 fails
        await driver.tick()  # not due yet: no new attempt
        assert len(standin.calls_to("DeleteRoom")) == 1
        driver.clock.advance(1)
        await driver.tick()  # attempt 2 fails
        driver.clock.advance(2)
        await driver.tick()  # attempt 3 succeeds
        assert len(standin.calls_to("DeleteRoom")) == 3
        async with driver.runtime.sessionmaker() as session:
            kick = await session.scalar(select(MediaKick).where(MediaKick.call_id == call_id))
        assert kick is not None
        assert (kick.attempts, kick.done_at is not None, kick.last_error) == (3, True, None)

    async def test_a_join_to_an_ended_call_is_kicked_again(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        caller, _host, call_id, room = await _active(driver, hooks, standin)
        await driver.post(f"/v1/calls/{call_id}/end", caller)
        await driver.tick()
        before = len(standin.calls_to("RemoveParticipant"))
        sneaky = standin.join(room, identity(caller))  # e.g. a refreshed token
        await hooks.join(room, caller, sneaky)
        await driver.tick()
        assert len(standin.calls_to("RemoveParticipant")) > before
        assert identity(caller) not in standin.participants.get(room, {})
        assert (await driver.call(call_id, caller))["charged"] == 0


class TestReconciliation:
    async def test_lost_webhooks_are_made_up_by_list_participants(
        self, driver: CallDriver, standin: Standin
    ) -> None:
        caller, host, created, _ = await _ring_and_accept(driver)
        room, call_id = created["media"]["room"], created["call"]["id"]
        for party in (caller, host):
            standin.join(room, identity(party))  # no webhooks arrive
        driver.clock.advance(5)  # the next reconciliation
        await driver.tick()
        assert (await driver.call(call_id, caller))["status"] == "active"
        await _tick_for(driver, 70)
        assert (await driver.call(call_id, caller))["charged"] == 10
        standin.drop(room, identity(caller))  # the client is gone; its webhook is lost
        last_seen = driver.clock.now()
        await _tick_for(driver, 30)
        final = await driver.call(call_id, caller)
        assert final["end_reason"] == "media_left"
        started = datetime.fromisoformat(final["started_at"])
        assert final["billed_seconds"] == int((last_seen - started).total_seconds())
        assert standin.calls_to("ListParticipants")
        await driver.ledger_ok()


class TestLiveKitDown:
    async def test_ringing_fails_cleanly_with_503(
        self, driver: CallDriver, standin: Standin
    ) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        standin.fail("CreateRoom")
        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
        assert (r.status_code, r.json()["error"]) == (503, "media_unavailable")
        assert await driver.wallet(caller) == (50, 0)
        hosts = (await driver.client.get("/v1/hosts", headers=caller.headers)).json()
        assert [h["busy"] for h in hosts] == [False]
        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
        assert r.status_code == 201  # LiveKit is back: nothing was stuck

    async def test_accepting_fails_cleanly_with_503(
        self, driver: CallDriver, standin: Standin
    ) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        standin.fail("CreateRoom")
        r = await driver.post(f"/v1/calls/{call['id']}/accept", host)
        assert (r.status_code, r.json()["error"]) == (503, "media_unavailable")
        assert (await driver.call(call["id"], caller))["status"] == "ringing"
        r = await driver.post(f"/v1/calls/{call['id']}/accept", host)
        assert r.status_code == 200

    async def test_an_unreachable_server_is_503(
        self, driver: CallDriver, standin: Standin, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        assert driver.runtime.livekit is not None
        monkeypatch.setattr(driver.runtime.livekit, "url", "http://127.0.0.1:9")
        driver.runtime.livekit._api = None  # reconnect to the dead address
        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
        assert (r.status_code, r.json()["error"]) == (503, "media_unavailable")
        assert await driver.wallet(caller) == (50, 0)
        await driver.ledger_ok()


class TestEarlyStampedDeparture:
    async def test_a_left_stamped_before_a_settled_moment_cannot_unbill_it(
        self, driver: CallDriver, hooks: Webhooks, standin: Standin
    ) -> None:
        """Found by the LiveKit stress run: reconciliation saw both parties at 60 s and that
        boundary was charged; then a participant_left stamped 55 s arrives."""
        caller, _host, call_id, room = await _active(driver, hooks, standin)
        await _tick_for(driver, 60)
        driver.clock.advance(2)
        await driver.tick()  # reconciles at 62 s and settles the 60 s boundary
        assert (await driver.call(call_id, caller))["charged"] == 10
        sid = standin.participants[room].pop(identity(caller))
        stamped_early = hooks.event(
            "participant_left", room, caller, sid, at=driver.clock.now() - timedelta(seconds=7)
        )
        await hooks.send(stamped_early)
        await _tick_for(driver, 20)
        final = await driver.call(call_id, caller)
        assert final["end_reason"] == "media_left"
        assert (final["charged"], final["billed_seconds"]) == (10, 60)
        await driver.ledger_ok()
