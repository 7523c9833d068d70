"""Admin controls over calls, and meter ticks racing each other."""

from __future__ import annotations

import asyncio

from callmeter.app import create_runtime
from callmeter.kit.runtime import Runtime
from callmeter.meter.service import tick
from callmeter.models import Role
from tests.calls.driver import CallDriver, Party


async def _ended_call(driver: CallDriver, seconds: int) -> tuple[Party, Party, Party, int]:
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    admin = await driver.party(Role.admin)
    call_id = await driver.connect(caller, host)
    await driver.run(call_id, caller, host, until=seconds)
    await driver.post(f"/v1/calls/{call_id}/end", caller)
    return caller, host, admin, call_id


class TestAdminCalls:
    async def test_force_end_and_list(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        admin = await driver.party(Role.admin)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=70)
        live = await driver.client.get("/v1/admin/calls?status=active", headers=admin.headers)
        assert [c["id"] for c in live.json()["items"]] == [call_id]
        r = await driver.post(f"/v1/admin/calls/{call_id}/end", admin)
        assert (r.json()["call"]["end_reason"], r.json()["call"]["charged"]) == ("admin", 10)
        again = await driver.post(f"/v1/admin/calls/{call_id}/end", admin)
        assert again.json() == r.json()
        live = await driver.client.get("/v1/admin/calls?status=active", headers=admin.headers)
        assert live.json()["items"] == []
        for who in (caller, host):
            assert (await driver.post(f"/v1/admin/calls/{call_id}/end", who)).status_code == 403
        bad = await driver.client.get("/v1/admin/calls?status=bogus", headers=admin.headers)
        assert bad.status_code == 422
        await driver.ledger_ok()

    async def test_refund_in_proportion_and_idempotent(self, driver: CallDriver) -> None:
        caller, host, admin, call_id = await _ended_call(driver, 185)  # 30 coins
        assert await driver.wallet(caller) == (70, 0)
        assert await driver.wallet(host) == (21, 0)
        headers = {**admin.headers, "Idempotency-Key": "refund-1"}
        body = {"amount": 10, "reason": "bad audio"}
        first = await driver.client.post(
            f"/v1/admin/calls/{call_id}/refund", json=body, headers=headers
        )
        assert first.status_code == 200, first.text
        assert first.json()["refunded"] == 10
        assert first.json()["call"]["refunded"] == 10
        again = await driver.client.post(
            f"/v1/admin/calls/{call_id}/refund", json=body, headers=headers
        )
        assert again.json() == first.json()
        conflict = await driver.client.post(
            f"/v1/admin/calls/{call_id}/refund", json={**body, "amount": 11}, headers=headers
        )
        assert conflict.status_code == 409
        assert await driver.wallet(caller) == (80, 0)
        assert await driver.wallet(host) == (14, 0)  # 7 of the 10 came from the host
        # the rest, without an amount
        rest = await driver.client.post(
            f"/v1/admin/calls/{call_id}/refund",
            json={"reason": "goodwill"},
            headers={**admin.headers, "Idempotency-Key": "refund-2"},
        )
        assert rest.json()["refunded"] == 20
        assert await driver.wallet(caller) == (100, 0)
        assert await driver.wallet(host) == (0, 0)
        assert await driver.revenue() == 0
        too_much = await driver.client.post(
            f"/v1/admin/calls/{call_id}/refund",
            json={"amount": 1, "reason": "more"},
            headers={**admin.headers, "Idempotency-Key": "refund-3"},
        )
        assert (too_much.status_code, too_much.json()["error"]) == (409, "refund_exceeds_charge")
        await driver.ledger_ok()

    async def test_refund_needs_an_ended_call_and_an_admin(self, driver: CallDriver) -> None:
        caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
        admin = await driver.party(Role.admin)
        call_id = await driver.connect(caller, host)
        body = {"reason": "x"}
        r = await driver.client.post(
            f"/v1/admin/calls/{call_id}/refund",
            json=body,
            headers={**admin.headers, "Idempotency-Key": "k"},
        )
        assert (r.status_code, r.json()["error"]) == (409, "invalid_call_state")
        r = await driver.client.post(
            f"/v1/admin/calls/{call_id}/refund",
            json=body,
            headers={**caller.headers, "Idempotency-Key": "k"},
        )
        assert r.status_code == 403
        for bad in ({"amount": 0, "reason": "x"}, {"amount": 1.5, "reason": "x"}, {}):
            r = await driver.client.post(
                f"/v1/admin/calls/{call_id}/refund",
                json=bad,
                headers={**admin.headers, "Idempotency-Key": "k2"},
            )
            assert r.status_code == 422


class TestMeterRaces:
    async def test_concurrent_ticks_from_several_workers(
        self, driver: CallDriver, runtime: Runtime
    ) -> None:
        """Twenty calls cross a boundary; four meter "workers" (own engines, as separate
        processes would have) tick at the same moment as both parties of every call
        heartbeat. Each interval is charged once."""
        pairs = []
        for _ in range(20):
            caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
            pairs.append((caller, host, await driver.connect(caller, host)))
        for step in (28, 27):  # heartbeats at 28 s and 55 s: alive, nothing due yet
            driver.clock.advance(step)
            for caller, host, call_id in pairs:
                await driver.both_heartbeat(call_id, caller, host)
        driver.clock.advance(6)
        workers = [create_runtime(runtime.settings, driver.clock) for _ in range(4)]
        try:
            results = await asyncio.gather(
                *(tick(w, driver.clock.now()) for w in workers),
                *(driver.heartbeat(call_id, who) for c, h, call_id in pairs for who in (c, h)),
            )
        finally:
            for w in workers:
                await w.close()
        assert sum(r.failed for r in results[:4]) == 0
        assert all(r.status_code == 200 for r in results[4:])
        for caller, _host, call_id in pairs:
            call = await driver.call(call_id, caller)
            assert (call["charged"], call["held"]) == (10, 10), call
            assert await driver.wallet(caller) == (90, 10)
        await driver.ledger_ok()
