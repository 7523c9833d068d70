"""The bug we exist to make impossible: a 65-second call charged 20 coins instead of 10.

Duplicate "timers" heartbeat from both sides, the meter ticks, and at 65 s a hang-up races
ten concurrent heartbeats and a second end from the host. Exactly 10 coins are charged:
7 to the host, 3 to the platform, nothing stays held, the ledger check passes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callmeter.models import Role
from tests.calls.driver import CallDriver
from tests.processes import race_processes

ROOT = Path(__file__).resolve().parents[2]


async def test_65_second_call_costs_10(driver: CallDriver) -> None:
    caller = await driver.party(Role.client, coins=100)
    host = await driver.party(Role.host)
    call_id = await driver.connect(caller, host)

    for _ in range(13):  # 0 → 65 s, each side's page running two timers
        driver.clock.advance(5)
        await asyncio.gather(
            *(driver.heartbeat(call_id, who) for who in (caller, host, caller, host))
        )
        await driver.tick()
    assert (await driver.call(call_id, caller))["charged"] == 10

    results = await asyncio.gather(
        driver.post(f"/v1/calls/{call_id}/end", caller),
        *(driver.heartbeat(call_id, who) for who in [caller, host] * 5),
        driver.post(f"/v1/calls/{call_id}/end", host),
        driver.tick(),
    )
    ends = [results[0], results[11]]
    assert [r.status_code for r in ends] == [200, 200]
    finals = [r.json()["call"] for r in ends]
    assert finals[0] == finals[1]
    final = finals[0]
    assert final["status"] == "ended"
    assert final["end_reason"] in {"client_hangup", "host_hangup"}
    assert (final["billed_seconds"], final["charged"], final["host_earned"]) == (65, 10, 7)
    assert final["held"] == 0
    assert await driver.wallet(caller) == (90, 0)
    assert await driver.wallet(host) == (7, 0)
    assert await driver.revenue() == 3
    await driver.ledger_ok()

    # every later end returns the same final summary
    again = await driver.post(f"/v1/calls/{call_id}/end", caller)
    assert again.json()["call"] == final


@pytest.mark.slow
async def test_the_race_from_two_processes(
    driver: CallDriver, backend: str, database_url: str
) -> None:
    if backend != "postgresql":
        pytest.skip("the multi-process race runs against PostgreSQL")
    caller = await driver.party(Role.client, coins=100)
    host = await driver.party(Role.host)
    call_id = await driver.connect(caller, host)
    await driver.run(call_id, caller, host, until=65)
    assert (await driver.call(call_id, caller))["charged"] == 10

    now = driver.clock.now().isoformat()
    args = [database_url, str(call_id), now, "20"]
    outputs = await race_processes("tests.calls.race_worker", args)
    finals = [o["final"] for o in outputs]
    assert finals[0] == finals[1]
    assert (finals[0]["charged"], finals[0]["host_earned"], finals[0]["billed_seconds"]) == (
        10,
        7,
        65,
    )
    assert await driver.wallet(caller) == (90, 0)
    assert await driver.wallet(host) == (7, 0)
    assert await driver.revenue() == 3
    await driver.ledger_ok()
