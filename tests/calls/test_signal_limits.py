"""Signals are bounded: payload size, a per-sender rate per call (held across API
processes: counted in the database), and a cap of stored signals per call. Floods get 4xx,
never 5xx."""

from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import func, select

from callmeter.kit.runtime import Runtime
from callmeter.models import CallSignal, Role
from tests.calls.driver import CallDriver, Party
from tests.calls.flood import flood


def ice(n: int = 0) -> dict[str, object]:
    return {"type": "ice", "payload": {"candidate": f"candidate:{n} 1 udp 2122260223 10.0.0.1"}}


async def stored(runtime: Runtime, call_id: int) -> int:
    async with runtime.sessionmaker() as session:
        query = select(func.count()).select_from(CallSignal).where(CallSignal.call_id == call_id)
        return int((await session.execute(query)).scalar_one())


async def ringing(driver: CallDriver) -> tuple[Party, Party, int]:
    caller, host = await driver.party(Role.client, 50), await driver.party(Role.host)
    return caller, host, int((await driver.ring(caller, host))["id"])


class TestPayloadSize:
    async def test_a_payload_over_the_bound_is_413_and_not_stored(self, driver: CallDriver) -> None:
        caller, _host, call_id = await ringing(driver)
        limit = driver.runtime.settings.max_signal_bytes
        overhead = len(json.dumps({"sdp": ""}, separators=(",", ":")))
        fits = {"sdp": "x" * (limit - overhead)}
        r = await driver.post(
            f"/v1/calls/{call_id}/signal", caller, {"type": "offer", "payload": fits}
        )
        assert r.status_code == 202, r.text
        over = {"sdp": "x" * (limit - overhead + 1)}
        r = await driver.post(
            f"/v1/calls/{call_id}/signal", caller, {"type": "offer", "payload": over}
        )
        assert r.status_code == 413, r.text
        assert r.json()["error"] == "payload_too_large"
        assert await stored(driver.runtime, call_id) == 1

    async def test_multibyte_characters_count_as_bytes(self, driver: CallDriver) -> None:
        caller, _host, call_id = await ringing(driver)
        limit = driver.runtime.settings.max_signal_bytes
        r = await driver.post(  # about limit / 2 characters, 2 bytes each in UTF-8
            f"/v1/calls/{call_id}/signal", caller, {"type": "offer", "payload": "é" * (limit // 2)}
        )
        assert r.status_code == 413, r.text


class TestRatePerSender:
    async def test_the_window_refuses_with_retry_after_then_frees(self, driver: CallDriver) -> None:
        caller, host, call_id = await ringing(driver)
        settings = driver.runtime.settings
        url = f"/v1/calls/{call_id}/signal"
        for n in range(settings.signals_per_window):
            assert (await driver.post(url, caller, ice(n))).status_code == 202
        r = await driver.post(url, caller, ice())
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "signal_rate_limited"
        assert r.headers["Retry-After"] == str(settings.signal_window_seconds)
        # per sender: the other party is not held back by the flood
        assert (await driver.post(url, host, ice())).status_code == 202

        driver.clock.advance(settings.signal_window_seconds - 3)
        r = await driver.post(url, caller, ice())
        assert (r.status_code, r.headers["Retry-After"]) == (429, "3")
        driver.clock.advance(3)
        assert (await driver.post(url, caller, ice())).status_code == 202
        assert await stored(driver.runtime, call_id) == settings.signals_per_window + 2

    async def test_a_concurrent_flood_through_two_processes_gets_the_limit_and_429s(
        self, driver: CallDriver, runtime: Runtime
    ) -> None:
        """300 signals at once, half through a second API process (its own engine and
        pool): exactly the limit is accepted, every other answer is 429, and the refused
        ones take no database connection."""
        caller, _host, call_id = await ringing(driver)
        results, peaks = await flood(driver, runtime, caller, f"/v1/calls/{call_id}/signal", ice)
        statuses = Counter(r.status_code for r in results)
        limit = runtime.settings.signals_per_window
        assert statuses == {202: limit, 429: 300 - limit}
        assert max(peaks) <= limit, peaks
        assert await stored(runtime, call_id) == limit


class TestStoredPerCall:
    async def test_a_call_stores_at_most_the_cap(self, driver: CallDriver) -> None:
        driver.runtime.settings = driver.runtime.settings.model_copy(
            update={"max_signals_per_call": 5}
        )
        caller, host, call_id = await ringing(driver)
        url = f"/v1/calls/{call_id}/signal"
        for n in range(5):
            who = caller if n % 2 else host
            assert (await driver.post(url, who, ice(n))).status_code == 202
        driver.clock.advance(3600)  # not a rate: the cap holds however slowly they come
        for who in (caller, host):
            r = await driver.post(url, who, ice())
            assert r.status_code == 409, r.text
            assert r.json()["error"] == "signal_limit_reached"
        assert await stored(driver.runtime, call_id) == 5
