from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient, Response

from callmeter.config import Settings
from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from callmeter.payments.provider import StripeProvider
from tests.conftest import make_settings
from tests.factories import assert_ledger_ok, auth_headers, make_user, wallet_of
from tests.payments.stripe_standin import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    NoBackoffHTTPXClient,
    StripeStandin,
)

_keys = itertools.count(1)


@dataclass
class Buyer:
    client: AsyncClient
    runtime: Runtime
    user_id: int
    headers: dict[str, str]

    async def buy(self, pack_id: str, key: str | None = None) -> Response:
        headers = {**self.headers, "Idempotency-Key": key or f"buy-{next(_keys)}"}
        return await self.client.post("/v1/purchases", json={"pack_id": pack_id}, headers=headers)

    async def purchase(self, purchase_id: int) -> dict[str, Any]:
        r = await self.client.get(f"/v1/purchases/{purchase_id}", headers=self.headers)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def wallet(self) -> tuple[int, int]:
        return await wallet_of(self.runtime, self.user_id)

    async def ledger_ok(self) -> None:
        await assert_ledger_ok(self.runtime)


async def make_buyer(client: AsyncClient, runtime: Runtime, coins: int = 0) -> Buyer:
    user = await make_user(runtime, Role.client, coins=coins)
    return Buyer(client, runtime, user.id, await auth_headers(client, user.username))


@pytest.fixture
async def buyer(client: AsyncClient, runtime: Runtime) -> Buyer:
    return await make_buyer(client, runtime)


@pytest.fixture
def stripe_settings(database_url: str, stripe_standin: StripeStandin) -> Settings:
    return make_settings(
        database_url,
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_standin.url,
        public_url="https://callmeter.example",
    )


@pytest.fixture
async def stripe_runtime(stripe_settings: Settings, clock: ManualClock) -> AsyncIterator[Runtime]:
    from callmeter.app import create_runtime

    runtime = create_runtime(stripe_settings, clock)
    http = NoBackoffHTTPXClient()
    runtime.payments = StripeProvider(stripe_settings, http_client=http)
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def stripe_client(stripe_runtime: Runtime) -> AsyncIterator[AsyncClient]:
    from httpx import ASGITransport

    from callmeter.app import create_app

    app = create_app(runtime=stripe_runtime)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c
