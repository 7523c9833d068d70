"""The call lifecycle and its billing, over HTTP with an injected clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from callmeter.models import Role
from tests.calls.driver import CallDriver


class TestRunningOutOfCoins:
    async def test_25_coins_buy_two_intervals(self, driver: CallDriver) -> None:
        caller = await driver.party(Role.client, coins=25)
        host = await driver.party(Role.host)
        call_id = await driver.connect(caller, host)

        await driver.run(call_id, caller, host, until=30)
        first = await driver.call(call_id, caller)
        assert (first["charged"], first["held"], first["warning"]) == (0, 10, None)

        await driver.run(call_id, caller, host, until=35)  # 65 s: the second, last interval
        second = await driver.call(call_id, caller)
        assert (second["charged"], second["held"], second["warning"]) == (10, 10, "low_balance")
        started = datetime.fromisoformat(second["started_at"])
        assert datetime.fromisoformat(second["paid_until"]) == started + timedelta(seconds=120)
        assert datetime.fromisoformat(second["next_charge_at"]) == started + timedelta(seconds=120)

        await driver.run(call_id, caller, host, until=60)  # 125 s
        final = await driver.call(call_id, caller)
        assert final["status"] == "ended"
        assert final["end_reason"] == "insufficient_funds"
        assert (final["billed_seconds"], final["charged"], final["held"]) == (120, 20, 0)
        assert final["warning"] is None
        assert await driver.wallet(caller) == (5, 0)
        assert await driver.wallet(host) == (14, 0)
        await driver.ledger_ok()

    async def test_coins_running_out_end_the_call_at_paid_until_once_both_are_seen_there(
        self, driver: CallDriver
    ) -> None:
        """Out of coins at 60 s with both last seen at 50 s: the meter does not end the call
        at paid_until (nobody was known present there) but waits; the heartbeats after it
        end it there, billed the whole paid interval."""
        caller = await driver.party(Role.client, coins=10)
        host = await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        for _ in range(2):
            driver.clock.advance(25)
            await driver.both_heartbeat(call_id, caller, host)
        driver.clock.advance(10.7)  # 60.7 s: past paid_until, the tick a little late
        await driver.tick()
        waiting = await driver.call(call_id, caller)
        assert (waiting["status"], waiting["charged"], waiting["warning"]) == (
            "active",
            0,
            "low_balance",
        )
        await driver.heartbeat(call_id, caller)  # the host is still last seen at 50 s
        assert (await driver.call(call_id, caller))["status"] == "active"
        await driver.heartbeat(call_id, host)
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["billed_seconds"], final["charged"]) == (
            "insufficient_funds",
            60,
            10,
        )
        assert await driver.wallet(caller) == (0, 0)
        await driver.ledger_ok()

    async def test_the_meter_alone_ends_a_silent_call_out_of_coins_at_the_horizon(
        self, driver: CallDriver
    ) -> None:
        """Nobody is heard after 50 s: the call ends connection_lost at 50 s once the
        timeout passes, not insufficient_funds at 60 s."""
        caller = await driver.party(Role.client, coins=10)
        host = await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        for _ in range(2):
            driver.clock.advance(25)
            await driver.both_heartbeat(call_id, caller, host)
        for _ in range(8):  # the meter ticks alone from 55 s to 90 s
            driver.clock.advance(5)
            await driver.tick()
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["billed_seconds"], final["charged"]) == (
            "connection_lost",
            50,
            0,
        )
        assert await driver.wallet(caller) == (10, 0)
        await driver.ledger_ok()

    async def test_a_top_up_lifts_the_limit(self, driver: CallDriver) -> None:
        caller = await driver.party(Role.client, coins=20)
        host = await driver.party(Role.host)
        admin = await driver.party(Role.admin)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=70)
        assert (await driver.call(call_id, caller))["warning"] == "low_balance"
        r = await driver.client.post(
            "/v1/admin/grants",
            json={"user_id": caller.user.id, "amount": 30},
            headers={**admin.headers, "Idempotency-Key": "top-up"},
        )
        assert r.status_code == 201
        await driver.run(call_id, caller, host, until=60)  # 130 s: past the old limit
        call = await driver.call(call_id, caller)
        assert call["status"] == "active"
        assert call["charged"] == 20
        assert call["warning"] is None
        r = await driver.post(f"/v1/calls/{call_id}/end", caller)
        assert r.json()["call"]["charged"] == 20
        assert await driver.wallet(caller) == (30, 0)
        await driver.ledger_ok()


class TestSilence:
    async def test_a_silent_party_ends_the_call_billed_to_its_last_heartbeat(
        self, driver: CallDriver
    ) -> None:
        caller = await driver.party(Role.client, coins=100)
        host = await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=100)  # host's last heartbeat: 100 s
        for _ in range(8):  # only the client keeps talking
            driver.clock.advance(5)
            await driver.heartbeat(call_id, caller)
            await driver.tick()
        final = await driver.call(call_id, caller)
        assert final["end_reason"] == "connection_lost"
        assert final["billed_seconds"] == 100
        assert final["charged"] == 10
        assert await driver.wallet(caller) == (90, 0)
        await driver.ledger_ok()

    async def test_charges_wait_for_both_parties(self, driver: CallDriver) -> None:
        """A boundary passes while heartbeats lag: nothing is charged beyond the moment both
        were last seen, and the charge lands when they report again."""
        caller = await driver.party(Role.client, coins=100)
        host = await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=55)
        driver.clock.advance(7)  # 62 s, last heartbeats at 55 s
        await driver.tick()
        assert (await driver.call(call_id, caller))["charged"] == 0
        await driver.both_heartbeat(call_id, caller, host)
        assert (await driver.call(call_id, caller))["charged"] == 10
        await driver.ledger_ok()


class TestUnbilledEndings:
    async def _assert_free(self, driver: CallDriver, caller: object, call_id: int,
                           reason: str) -> None:  # fmt: skip
        from tests.calls.driver import Party

        assert isinstance(caller, Party)
        call = await driver.call(call_id, caller)
        assert (call["status"], call["end_reason"]) == ("ended", reason)
        assert (call["charged"], call["held"], call["billed_seconds"]) == (0, 0, 0)
        assert await driver.wallet(caller) == (50, 0)
        await driver.ledger_ok()

    async def test_declined(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        assert (await driver.wallet(caller)) == (50, 10)  # the first interval is held
        r = await driver.post(f"/v1/calls/{call['id']}/decline", host)
        assert r.status_code == 200
        await self._assert_free(driver, caller, call["id"], "declined")

    async def test_cancelled(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        await driver.post(f"/v1/calls/{call['id']}/end", caller)
        await self._assert_free(driver, caller, call["id"], "cancelled")

    async def test_missed(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        driver.clock.advance(44)
        await driver.tick()
        assert (await driver.call(call["id"], caller))["status"] == "ringing"
        driver.clock.advance(1)
        await driver.tick()
        await self._assert_free(driver, caller, call["id"], "missed")

    async def test_connect_failed_even_if_one_side_withholds_its_report(
        self, driver: CallDriver
    ) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        await driver.post(f"/v1/calls/{call['id']}/accept", host)
        for _ in range(6):  # the host's media plays; the client never says so
            driver.clock.advance(5)
            await driver.heartbeat(call["id"], host, media=True)
            await driver.heartbeat(call["id"], caller, media=False)
            await driver.tick()
        await self._assert_free(driver, caller, call["id"], "connect_failed")


class TestMediaAgain:
    async def test_a_page_asks_for_its_media_again_while_the_call_lasts(
        self, driver: CallDriver
    ) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        call = await driver.ring(caller, host)
        url = f"/v1/calls/{call['id']}/media"
        r = await driver.client.get(url, headers=caller.headers)
        assert (r.json()["provider"], r.json()["token"]) == ("p2p", None)
        r = await driver.client.get(url, headers=host.headers)
        assert (r.status_code, r.json()["error"]) == (409, "invalid_call_state")  # ringing
        await driver.post(f"/v1/calls/{call['id']}/accept", host)
        assert (await driver.client.get(url, headers=host.headers)).status_code == 200
        stranger = await driver.party(Role.client, 50)
        assert (await driver.client.get(url, headers=stranger.headers)).status_code == 404
        await driver.post(f"/v1/calls/{call['id']}/end", host)
        r = await driver.client.get(url, headers=caller.headers)
        assert (r.status_code, r.json()["error"]) == (409, "call_ended")


class TestCreate:
    async def test_402_when_available_is_below_the_rate(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 9), await driver.party(Role.host)
        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
        assert r.status_code == 402
        # what the client acts on travels as a field (the web client never parses the English)
        assert r.json() == {
            "error": "insufficient_funds",
            "detail": "not enough coins: 10 needed",
            "needed": 10,
        }

    async def test_the_host_rate_is_snapshotted(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        r = await driver.client.put("/v1/hosts/me", json={"rate": 25}, headers=host.headers)
        assert r.json()["rate"] == 25
        call_id = await driver.connect(caller, host)
        r = await driver.client.put("/v1/hosts/me", json={"rate": 5}, headers=host.headers)
        await driver.run(call_id, caller, host, until=60)
        call = await driver.call(call_id, caller)
        assert (call["rate"], call["charged"], call["host_earned"]) == (25, 25, 17)
        await driver.ledger_ok()

    async def test_busy_sides_are_409(self, driver: CallDriver) -> None:
        a, b = await driver.party(Role.client, 50), await driver.party(Role.client, 50)
        h1, h2 = await driver.party(Role.host), await driver.party(Role.host)
        await driver.ring(a, h1)
        r = await driver.post("/v1/calls", b, {"host_id": h1.user.id})
        assert (r.status_code, r.json()["error"]) == (409, "host_busy")
        r = await driver.post("/v1/calls", a, {"host_id": h2.user.id})
        assert (r.status_code, r.json()["error"]) == (409, "client_busy")
        hosts = (await driver.client.get("/v1/hosts", headers=b.headers)).json()
        assert {h["id"]: h["busy"] for h in hosts} == {h1.user.id: True, h2.user.id: False}

    async def test_concurrent_rings_to_one_host(self, driver: CallDriver) -> None:
        host = await driver.party(Role.host)
        callers = [await driver.party(Role.client, 20) for _ in range(10)]
        results = await asyncio.gather(
            *(driver.post("/v1/calls", c, {"host_id": host.user.id}) for c in callers)
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [201] + [409] * 9
        held = [await driver.wallet(c) for c in callers]
        assert sorted(h for _, h in held) == [0] * 9 + [10]
        await driver.ledger_ok()

    async def test_one_client_rings_many_hosts_at_once(self, driver: CallDriver) -> None:
        caller = await driver.party(Role.client, 100)
        hosts = [await driver.party(Role.host) for _ in range(5)]
        results = await asyncio.gather(
            *(driver.post("/v1/calls", caller, {"host_id": h.user.id}) for h in hosts)
        )
        assert sorted(r.status_code for r in results) == [201, 409, 409, 409, 409]
        assert await driver.wallet(caller) == (100, 10)

    async def test_host_not_accepting_and_unknown_host(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        await driver.client.put("/v1/hosts/me", json={"accepting_calls": False},
                                headers=host.headers)  # fmt: skip
        r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
        assert (r.status_code, r.json()["error"]) == (409, "host_unavailable")
        for bad in ({"host_id": caller.user.id}, {"host_id": 10**9}):
            assert (await driver.post("/v1/calls", caller, bad)).status_code == 404
        for bad_body in ({"host_id": "1"}, {"host_id": 0}, {}, {"host_id": 1, "x": 1}):
            assert (await driver.post("/v1/calls", caller, bad_body)).status_code == 422

    async def test_rate_bounds(self, driver: CallDriver) -> None:
        host = await driver.party(Role.host)
        for rate in (0, -1, 10_001):
            r = await driver.client.put("/v1/hosts/me", json={"rate": rate}, headers=host.headers)
            assert r.status_code == 422
        caller = await driver.party(Role.client)
        r = await driver.client.put("/v1/hosts/me", json={"rate": 5}, headers=caller.headers)
        assert r.status_code == 403


class TestAccess:
    async def test_only_parties_and_admins(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
        other_client, other_host = await driver.party(Role.client), await driver.party(Role.host)
        admin = await driver.party(Role.admin)
        call = await driver.ring(caller, host)
        cid = call["id"]
        for outsider in (other_client, other_host):
            h = outsider.headers
            assert (await driver.client.get(f"/v1/calls/{cid}", headers=h)).status_code == 404
            for path, body in [
                (f"/v1/calls/{cid}/heartbeat", {"media_connected": True}),
                (f"/v1/calls/{cid}/end", None),
                (f"/v1/calls/{cid}/accept", None),
                (f"/v1/calls/{cid}/decline", None),
                (f"/v1/calls/{cid}/signal", {"type": "offer", "payload": "x"}),
            ]:
                assert (await driver.post(path, outsider, body)).status_code == 404, path
            r = await driver.client.get(f"/v1/calls/{cid}/events", headers=h)
            assert r.status_code == 404
        assert (await driver.post(f"/v1/calls/{cid}/accept", caller)).status_code == 403
        assert (await driver.client.get(f"/v1/calls/{cid}", headers=admin.headers)).is_success
        assert (await driver.client.get(f"/v1/calls/{cid}")).status_code == 401
        r = await driver.post("/v1/calls", host, {"host_id": host.user.id})
        assert r.status_code == 403
        assert (await driver.call(cid, caller))["status"] == "ringing"


class TestPolicies:
    @pytest.mark.parametrize(
        ("policy", "seconds", "charged"),
        [("per_started_interval", 65, 20), ("per_second", 65, 10), ("per_second", 95, 15)],
    )
    async def test_other_policies(
        self, driver: CallDriver, policy: str, seconds: int, charged: int
    ) -> None:
        driver.runtime.settings = driver.runtime.settings.model_copy(
            update={"billing_policy": policy}
        )
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=seconds)
        r = await driver.post(f"/v1/calls/{call_id}/end", host)
        final = r.json()["call"]
        assert (final["policy"], final["billed_seconds"], final["charged"]) == (
            policy,
            seconds,
            charged,
        )
        assert final["end_reason"] == "host_hangup"
        await driver.ledger_ok()

    async def test_per_second_uses_every_coin(self, driver: CallDriver) -> None:
        driver.runtime.settings = driver.runtime.settings.model_copy(
            update={"billing_policy": "per_second"}
        )
        caller, host = await driver.party(Role.client, 25), await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=200)
        final = await driver.call(call_id, caller)
        assert (final["end_reason"], final["billed_seconds"], final["charged"]) == (
            "insufficient_funds",
            155,
            25,
        )
        assert await driver.wallet(caller) == (0, 0)
        await driver.ledger_ok()

    async def test_free_seconds(self, driver: CallDriver) -> None:
        driver.runtime.settings = driver.runtime.settings.model_copy(update={"free_seconds": 30})
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=85)
        assert (await driver.call(call_id, caller))["charged"] == 0
        await driver.run(call_id, caller, host, until=10)
        r = await driver.post(f"/v1/calls/{call_id}/end", caller)
        assert (r.json()["call"]["billed_seconds"], r.json()["call"]["charged"]) == (95, 10)
        await driver.ledger_ok()


class TestBeaconEnd:
    async def test_the_token_in_the_body_hangs_up(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        outsider = await driver.party(Role.client)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=65)
        url = f"/v1/calls/{call_id}/beacon-end"
        bad = await driver.client.post(url, json={"access_token": "not-a-token"})
        assert bad.status_code == 401
        stranger = outsider.headers["Authorization"].removeprefix("Bearer ")
        assert (await driver.client.post(url, json={"access_token": stranger})).status_code == 404
        token = caller.headers["Authorization"].removeprefix("Bearer ")
        r = await driver.client.post(url, json={"access_token": token})
        assert r.status_code == 200
        final = r.json()["call"]
        assert (final["end_reason"], final["billed_seconds"], final["charged"]) == (
            "client_hangup",
            65,
            10,
        )
        await driver.ledger_ok()
