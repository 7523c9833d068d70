"""A new billing rule is a change of ``billing/policy.py`` only: a minimum charge.

Every call's tariff gets a minimum charge of 15 coins (rate 10 per minute): the test
swaps ``tariff_of`` — everywhere it is imported by name — for one that adds it, as a
configuration of the rule would. Then, through the real services (HTTP, meter, ledger)
on every backend and policy, calls ring with wallets of 10 to 100 coins and end by a
hang-up after 10, 65 or 130 s, by the meter when their coins run out, or by a lost
connection. Every call settles: the meter ends each one (nothing left due, no tick
fails), the first hold is the minimum (10 and 14 coins cannot ring), each charge is what
``cost()`` with the minimum says for the billed time, and the ledger checks.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any

import pytest
from sqlalchemy import func, select

from callmeter.billing import settlement
from callmeter.billing.policy import Tariff, cost, covered_seconds
from callmeter.config import BillingPolicy, Settings
from callmeter.models import Call, CallStatus, Role
from tests.calls.driver import CallDriver, Party
from tests.conftest import make_settings
from tests.factories import assert_ledger_ok

MINIMUM = 15
WALLETS = (10, 14, 15, 19, 25, 100)
HANGUPS = (10, 65, 130)  # seconds after the start
LOST_AT = 95  # the client's last heartbeat in the lost-connection calls
STEP = 5  # seconds between heartbeats (and meter ticks)


@pytest.fixture(params=list(BillingPolicy), ids=lambda p: p.value)
def settings(request: pytest.FixtureRequest, database_url: str) -> Settings:
    return make_settings(database_url, billing_policy=request.param)


@pytest.fixture
def minimum_charge(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call's tariff carries the minimum charge: ``tariff_of`` swapped in every
    module that imported it by name."""
    import callmeter.app  # noqa: F401 - every module that may import tariff_of

    original = settlement.tariff_of

    def with_minimum(call: Any) -> Tariff:
        return replace(original(call), minimum_charge=MINIMUM)

    patched = []
    for name, module in sorted(sys.modules.items()):
        if name.startswith("callmeter") and getattr(module, "tariff_of", None) is original:
            monkeypatch.setattr(module, "tariff_of", with_minimum)
            patched.append(name)
    assert {"callmeter.billing.settlement", "callmeter.calls.service"} <= set(patched)


@dataclass
class Scenario:
    coins: int
    ending: str  # "hangup", "meter" or "lost"
    at: int | None = None  # the hang-up's moment
    caller: Party | None = None
    host: Party | None = None
    call_id: int | None = None

    def beats(self, t: int) -> tuple[bool, bool]:
        """Whether the client and the host heartbeat at ``t``."""
        if self.ending == "lost":
            return t <= LOST_AT, True
        return True, True


def tariff(settings: Settings) -> Tariff:
    return Tariff(
        settings.billing_policy,
        settings.default_rate,
        settings.billing_interval_seconds,
        settings.free_seconds,
        settings.host_share_percent,
        minimum_charge=MINIMUM,
    )


async def test_every_call_settles_with_a_minimum_charge(
    driver: CallDriver, settings: Settings, minimum_charge: None
) -> None:
    rule = tariff(settings)
    scenarios = [
        *(Scenario(coins, "hangup", at) for coins in WALLETS for at in HANGUPS),
        *(Scenario(coins, "meter") for coins in WALLETS),
        *(Scenario(coins, "lost") for coins in WALLETS),
    ]
    for s in scenarios:
        s.caller = await driver.party(Role.client, s.coins)
        s.host = await driver.party(Role.host)
        if s.coins < MINIMUM:
            # the first hold is the cost of the first interval: the minimum
            r = await driver.post("/v1/calls", s.caller, {"host_id": s.host.user.id})
            assert (r.status_code, r.json()["error"]) == (402, "insufficient_funds"), r.text
            continue
        s.call_id = await driver.connect(s.caller, s.host)
        assert (await driver.call(s.call_id, s.caller))["held"] == MINIMUM
    live = [s for s in scenarios if s.call_id is not None]

    t = 0
    ended: set[int] = set()  # an ended call stays ended: it is not read again
    while True:
        calls = {
            s.call_id: await driver.call(s.call_id, s.caller)
            for s in live
            if s.call_id and s.call_id not in ended
        }
        ended |= {i for i, c in calls.items() if c["status"] == CallStatus.ended}
        if all(c["status"] == CallStatus.ended for c in calls.values()):
            break
        assert t <= 800, [c for c in calls.values() if c["status"] != CallStatus.ended]
        driver.clock.advance(STEP)
        t += STEP
        for s in live:
            assert s.caller
            assert s.host
            assert s.call_id
            if s.call_id in ended:
                continue
            for who, beats in zip((s.caller, s.host), s.beats(t), strict=True):
                if beats:
                    r = await driver.heartbeat(s.call_id, who)
                    assert r.status_code == 200, r.text
            if s.ending == "hangup" and t == s.at:
                r = await driver.post(f"/v1/calls/{s.call_id}/end", s.caller)
                assert r.status_code == 200, r.text
        result = await driver.tick()
        assert result.failed == 0, result

    # nothing is left for the meter: no call unfinished, none due
    assert (await driver.tick()).claimed == 0
    async with driver.runtime.sessionmaker() as session:
        unfinished = await session.scalar(
            select(func.count()).select_from(Call).where(Call.status != CallStatus.ended)
        )
    assert unfinished == 0

    for s in live:
        assert s.caller
        assert s.call_id
        call = await driver.call(s.call_id, s.caller)
        paid = covered_seconds(rule, s.coins)  # what the wallet pays for, in all
        if s.ending == "hangup":
            assert s.at is not None
            billed, reason = min(s.at, paid), "client_hangup"
            if paid <= s.at:
                reason = "insufficient_funds"
        elif s.ending == "lost":
            billed, reason = min(LOST_AT, paid), "connection_lost"
            if paid <= LOST_AT:
                reason = "insufficient_funds"
        else:
            billed, reason = paid, "insufficient_funds"
        outcome = (call["end_reason"], call["billed_seconds"], call["charged"], call["held"])
        assert outcome == (reason, billed, cost(rule, billed), 0), (s.coins, s.ending, s.at)
        assert call["host_earned"] == call["charged"] * settings.host_share_percent // 100
        assert await driver.wallet(s.caller) == (s.coins - call["charged"], 0)
        if call["charged"] > 0:
            assert call["charged"] >= MINIMUM
    charged = {(await driver.call(s.call_id, s.caller))["charged"] for s in live if s.call_id}
    assert MINIMUM in charged  # the minimum really applied to some call

    # the calls' check recomputes every ended call's cost through tariff_of: with the rule
    await assert_ledger_ok(driver.runtime)
