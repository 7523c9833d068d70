"""Purchases through the built-in test payment provider (no Stripe keys): the local
checkout's pay / fail / cancel buttons go through the same signed-webhook code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from httpx import ASGITransport, AsyncClient

from callmeter.config import Environment
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.conftest import make_settings
from tests.factories import auth_headers, make_user
from tests.payments.conftest import Buyer


async def _checkout(client: AsyncClient, url: str, action: str) -> str:
    assert url.startswith("/test-checkout/"), url
    session_id = url.removeprefix("/test-checkout/")
    page = await client.get(f"/v1/test-checkout/{session_id}")
    assert page.status_code == 200, page.text
    r = await client.post(f"/v1/test-checkout/{session_id}/{action}")
    assert r.status_code == 200, r.text
    return str(r.json()["redirect_url"])


async def test_packs_are_the_servers_with_better_value_on_bigger_packs(
    client: AsyncClient, buyer: Buyer
) -> None:
    r = await client.get("/v1/coin-packs?currency=eur", headers=buyer.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["provider"] == "test"
    assert body["currencies"] == ["eur", "usd"]
    packs = body["items"]
    assert [p["currency"] for p in packs] == ["eur"] * 4
    per_coin = [p["unit_amount"] / p["total_coins"] for p in packs]
    assert per_coin == sorted(per_coin, reverse=True)
    assert len(set(per_coin)) == 4
    assert (await client.get("/v1/coin-packs")).status_code == 401


async def test_buy_and_pay_credits_coins_and_bonus_once(client: AsyncClient, buyer: Buyer) -> None:
    r = await buyer.buy("eur-330", key="k1")
    assert r.status_code == 201, r.text
    purchase = r.json()["purchase"]
    assert purchase["status"] == "pending"
    assert purchase["unit_amount"] == 1299
    again = await buyer.buy("eur-330", key="k1")  # a repeated click: the same purchase
    assert again.json()["purchase"]["id"] == purchase["id"]
    assert again.json()["checkout_url"] == r.json()["checkout_url"]
    redirect = await _checkout(client, r.json()["checkout_url"], "pay")
    assert redirect == f"/coins/return?purchase={purchase['id']}&result=success"
    assert await buyer.wallet() == (330, 0)
    paid = await buyer.purchase(purchase["id"])
    assert paid["status"] == "paid"
    assert paid["checkout_url"] is None
    await _checkout(client, r.json()["checkout_url"], "pay")  # paying twice credits nothing
    assert await buyer.wallet() == (330, 0)
    entries = (await client.get("/v1/wallet/entries", headers=buyer.headers)).json()["items"]
    assert sorted((e["kind"], e["amount"]) for e in entries) == [
        ("purchase", 300),
        ("purchase_bonus", 30),
    ]
    listed = (await client.get("/v1/purchases", headers=buyer.headers)).json()
    assert [p["id"] for p in listed["items"]] == [purchase["id"]]
    await buyer.ledger_ok()


async def test_cancel_and_fail_end_the_purchase_without_coins(
    client: AsyncClient, buyer: Buyer
) -> None:
    cancelled = (await buyer.buy("usd-100")).json()
    redirect = await _checkout(client, cancelled["checkout_url"], "cancel")
    assert redirect.endswith("result=cancel")
    failed = (await buyer.buy("usd-100")).json()
    await _checkout(client, failed["checkout_url"], "fail")
    assert (await buyer.purchase(cancelled["purchase"]["id"]))["status"] == "expired"
    assert (await buyer.purchase(failed["purchase"]["id"]))["status"] == "failed"
    assert await buyer.wallet() == (0, 0)
    await buyer.ledger_ok()


async def test_twenty_concurrent_clicks_make_one_purchase(
    client: AsyncClient, buyer: Buyer
) -> None:
    responses = await asyncio.gather(*(buyer.buy("eur-700", key="same") for _ in range(20)))
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.json()["purchase"]["id"] for r in responses}) == 1
    assert len({r.json()["checkout_url"] for r in responses}) == 1
    pays = await asyncio.gather(
        *(_checkout(client, responses[0].json()["checkout_url"], "pay") for _ in range(20))
    )
    assert len(pays) == 20
    assert await buyer.wallet() == (700, 0)
    await buyer.ledger_ok()


async def test_hostile_input_is_refused_with_4xx(
    client: AsyncClient, runtime: Runtime, buyer: Buyer
) -> None:
    cases = [
        await buyer.buy("no-such-pack"),
        await buyer.buy("eur-100", key="x" * 201),
        await client.post("/v1/purchases", json={"pack_id": "eur-100"}, headers=buyer.headers),
        await client.post(
            "/v1/purchases",
            json={"pack_id": "eur-100", "unit_amount": 1},  # the client never sends a price
            headers={**buyer.headers, "Idempotency-Key": "p"},
        ),
        await client.post(
            "/v1/purchases", json={"pack_id": "eur-100"}, headers={"Idempotency-Key": "anon"}
        ),
        await client.get("/v1/test-checkout/cs_test_local_nope"),
        await client.post("/v1/test-checkout/cs_test_local_nope/pay"),
        await client.post("/v1/test-checkout/x/steal"),
        await client.get("/v1/test-checkout/" + "a" * 300),
        await client.get("/v1/purchases/999999", headers=buyer.headers),
        await client.get("/v1/coin-packs?currency=EURO", headers=buyer.headers),
    ]
    assert [r.status_code for r in cases] == [404, 422, 422, 422, 401, 404, 404, 422, 422, 404, 422]
    r = await buyer.buy("eur-100", key="one-key")
    other = await buyer.buy("eur-330", key="one-key")  # same key, another pack
    assert r.status_code == 201
    assert other.status_code == 409
    host = await make_user(runtime, Role.host)
    as_host = await client.post(
        "/v1/purchases",
        json={"pack_id": "eur-100"},
        headers={**await auth_headers(client, host.username), "Idempotency-Key": "h"},
    )
    assert as_host.status_code == 403
    someone = await make_user(runtime, Role.client)
    theirs = await client.get(
        f"/v1/purchases/{r.json()['purchase']['id']}",
        headers=await auth_headers(client, someone.username),
    )
    assert theirs.status_code == 404  # another client's purchase does not exist for you
    await buyer.ledger_ok()


async def test_a_flood_of_new_purchases_gets_429(client: AsyncClient, buyer: Buyer) -> None:
    codes = [(await buyer.buy("eur-100")).status_code for _ in range(25)]
    assert codes[:20] == [201] * 20
    assert set(codes[20:]) == {429}


def test_production_refuses_the_test_provider(database_url: str) -> None:
    with pytest.raises(ValueError, match="STRIPE"):
        make_settings(
            database_url,
            env=Environment.production,
            secret_key="s" * 40,
            cors_origins=["https://callmeter.example"],
        )


async def test_a_webhook_meeting_a_database_outage_gets_503_so_stripe_retries(
    tmp_path: Path,
) -> None:
    from callmeter.app import create_app
    from callmeter.payments.provider import TestProvider, provider
    from tests.conftest import settle_sqlite_threads, sqlite_url
    from tests.reliability.test_database_errors import runtime_for

    runtime = runtime_for(sqlite_url(tmp_path / "missing" / "db.sqlite"))
    test = provider(runtime)
    assert isinstance(test, TestProvider)
    event = {
        "id": "evt_outage", "object": "event", "type": "checkout.session.completed",
        "created": 1, "data": {"object": {"id": "cs_x", "metadata": {"purchase_id": "1"}}},
    }  # fmt: skip
    body, signature = test.sign(event)
    app = create_app(runtime=runtime)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post(
                "/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": signature}
            )
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"]
    finally:
        await runtime.close()
        await settle_sqlite_threads()
