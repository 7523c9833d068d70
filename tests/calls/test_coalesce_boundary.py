"""A coalesced heartbeat must not cost a charge (found by the review of issue 15).

A party's beat less than 1 s after its recorded one writes nothing — unless a billing
boundary lies between the two: then recording it can change what is owed, and it takes
the full path. Here both parties beat at 59.5 s, then the client's boundary beat at 60.2 s
and the host's at 60.3 s: the host's beat completes the first interval (both were there
past 60 s), as it does when every beat takes the full path, and the hang-up at 61 s finds
it charged. Before the fix the host's beat was coalesced and the interval never billed.
"""

from __future__ import annotations

import pytest

from callmeter.calls import service
from callmeter.models import Role
from tests.calls.driver import CallDriver


@pytest.mark.parametrize("path", ["quick", "full"])
async def test_a_boundary_beat_just_after_a_regular_beat_still_charges(
    driver: CallDriver, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    if path == "full":  # the reference: every heartbeat takes service.heartbeat

        async def never(*_a: object, **_k: object) -> None:
            return None

        monkeypatch.setattr(service, "quick_heartbeat", never)
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    call_id = await driver.connect(caller, host)  # active, started now
    interval = driver.runtime.settings.billing_interval_seconds  # 60
    rate = driver.runtime.settings.default_rate
    for _ in range(5):  # both beat every 10 s (heartbeat_seconds)
        driver.clock.advance(10)
        await driver.both_heartbeat(call_id, caller, host)
    driver.clock.advance(interval - 50 - 0.5)  # t = 59.5 s: both regular beats
    await driver.both_heartbeat(call_id, caller, host)
    driver.clock.advance(0.7)  # t = 60.2 s: the client's boundary beat (settles, horizon 59.5)
    r = await driver.heartbeat(call_id, caller)
    assert r.json()["call"]["charged"] == 0
    driver.clock.advance(0.1)  # t = 60.3 s: the host's boundary beat: both were there past 60 s
    r = await driver.heartbeat(call_id, host)
    # the full path (service.heartbeat) answers rate here: presence.saw moves the horizon to
    # 60.2 s and charge_pending sees cost(60) > 0
    charged_at_beat = r.json()["call"]["charged"]
    driver.clock.advance(0.7)  # t = 61 s: the client hangs up
    r = await driver.post(f"/v1/calls/{call_id}/end", caller)
    final = r.json()["call"]
    assert (charged_at_beat, final["charged"]) == (rate, rate), (path, charged_at_beat, final)
