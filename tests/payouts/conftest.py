from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient, Response

from callmeter.config import Settings
from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.calls.driver import CallDriver, Party
from tests.conftest import make_settings

_keys = itertools.count(1)
RATE = 1000  # coins a minute: a two-minute call earns the host 1,400 (70 %)


@dataclass
class Desk:
    """A host earning coins on calls and withdrawing them; an admin reviewing payouts."""

    driver: CallDriver
    host: Party
    admin: Party

    @property
    def client(self) -> AsyncClient:
        return self.driver.client

    async def earn(self, minutes: int) -> None:
        """A call of ``minutes`` whole minutes with a fresh client: 700 coins a minute."""
        caller = await self.driver.party(Role.client, coins=RATE * (minutes + 2))
        call_id = await self.driver.connect(caller, self.host)
        await self.driver.run(call_id, caller, self.host, until=minutes * 60 + 2, step=10)
        r = await self.driver.post(f"/v1/calls/{call_id}/end", caller)
        assert r.status_code == 200, r.text

    async def request(self, amount: int, key: str | None = None) -> Response:
        headers = {**self.host.headers, "Idempotency-Key": key or f"payout-{next(_keys)}"}
        return await self.client.post("/v1/payouts", json={"amount": amount}, headers=headers)

    async def earnings(self) -> dict[str, Any]:
        r = await self.client.get("/v1/earnings", headers=self.host.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def admin_post(self, path: str, body: Any = None) -> Response:
        headers = {**self.admin.headers, "Idempotency-Key": f"admin-{next(_keys)}"}
        return await self.client.post(path, json=body, headers=headers)

    def days(self, n: float) -> None:
        self.driver.clock.advance(n * 86_400)


async def make_desk(client: AsyncClient, runtime: Runtime, clock: ManualClock) -> Desk:
    driver = CallDriver(client, runtime, clock)
    host = await driver.party(Role.host)
    r = await client.put("/v1/hosts/me", json={"rate": RATE}, headers=host.headers)
    assert r.status_code == 200, r.text
    return Desk(driver, host, await driver.party(Role.admin))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, max_rate=100_000, access_token_ttl_seconds=30 * 86_400)


@pytest.fixture
async def desk(client: AsyncClient, runtime: Runtime, clock: ManualClock) -> Desk:
    return await make_desk(client, runtime, clock)


@pytest.fixture
def connect_settings(database_url: str, stripe_standin: Any) -> Settings:
    from tests.payments.stripe_standin import CONNECT_WEBHOOK_SECRET, SECRET_KEY, WEBHOOK_SECRET

    return make_settings(
        database_url,
        max_rate=100_000,
        access_token_ttl_seconds=30 * 86_400,
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_connect_webhook_secret=CONNECT_WEBHOOK_SECRET,
        stripe_api_base=stripe_standin.url,
        payout_provider="stripe",
        payout_min_coins=100,
        public_url="https://callmeter.example",
    )


@pytest.fixture
async def connect_runtime(connect_settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    from callmeter.app import create_runtime
    from callmeter.payments.provider import StripeProvider
    from callmeter.payouts.provider import StripeConnectPayouts
    from tests.payments.stripe_standin import NoBackoffHTTPXClient

    runtime = create_runtime(connect_settings, clock)
    runtime.payments = StripeProvider(connect_settings, http_client=NoBackoffHTTPXClient())
    runtime.payouts = StripeConnectPayouts(connect_settings, http_client=NoBackoffHTTPXClient())
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def connect_client(connect_runtime: Runtime) -> AsyncIterator[AsyncClient]:
    from callmeter.app import create_app

    app = create_app(runtime=connect_runtime)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c
