"""Purchases through Stripe — the real ``stripe`` package against the stand-in on loopback,
webhooks signed as Stripe signs them — on SQLite and PostgreSQL, with ``ledger check``
after every step."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import func, select

from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.models import Role, Transfer
from tests.calls.driver import CallDriver
from tests.payments.conftest import Buyer, make_buyer
from tests.payments.stripe_standin import StripeStandin

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
HOOK = "/v1/webhooks/stripe"


@pytest.fixture
async def buyer(stripe_client: AsyncClient, stripe_runtime: Runtime) -> Buyer:
    return await make_buyer(stripe_client, stripe_runtime)


async def deliver(
    standin: StripeStandin, client: AsyncClient, event: dict[str, Any], **kw: Any
) -> Response:
    return await standin.deliver(event, HOOK, client=client, **kw)


async def bought(buyer: Buyer, standin: StripeStandin, pack: str = "eur-330") -> tuple[int, str]:
    """A pending purchase and its Checkout Session id."""
    r = await buyer.buy(pack)
    assert r.status_code == 201, r.text
    purchase = r.json()["purchase"]
    session_id = next(
        s
        for s in standin.sessions
        if standin.sessions[s]["metadata"]["purchase_id"] == str(purchase["id"])
    )
    assert r.json()["checkout_url"] == standin.sessions[session_id]["url"]
    return int(purchase["id"]), session_id


async def paid(
    buyer: Buyer, standin: StripeStandin, client: AsyncClient, pack: str = "eur-330"
) -> tuple[int, str]:
    purchase_id, session_id = await bought(buyer, standin, pack)
    r = await deliver(standin, client, standin.complete(session_id))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "fulfilled"
    return purchase_id, session_id


async def purchase_transfers(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(select(Transfer.kind, func.count()).group_by(Transfer.kind))
        return {kind: int(n) for kind, n in rows}


async def test_checkout_is_created_from_the_catalogue_with_an_idempotency_key(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    purchase_id, session_id = await bought(buyer, stripe_standin, "usd-700")
    session = stripe_standin.sessions[session_id]
    assert session["mode"] == "payment"
    assert (session["amount_total"], session["currency"]) == (2499, "usd")
    assert session["client_reference_id"] == str(buyer.user_id)
    assert session["success_url"] == (
        f"https://callmeter.example/coins/return?purchase={purchase_id}&result=success"
    )
    [create] = stripe_standin.calls_to("POST /v1/checkout/sessions")
    assert create.idempotency_key
    assert create.idempotency_key.startswith(f"callmeter-purchase-{purchase_id}-")
    await buyer.ledger_ok()


async def test_a_500_on_creation_is_retried_with_the_same_key_into_one_session(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    stripe_standin.fail("POST /v1/checkout/sessions", times=1, status=500)
    _purchase_id, _ = await bought(buyer, stripe_standin)
    creates = stripe_standin.calls_to("POST /v1/checkout/sessions")
    assert len(creates) == 2
    assert len({c.idempotency_key for c in creates}) == 1
    assert len(stripe_standin.sessions) == 1
    # Stripe down for good: 503, nothing charged; the same key later gives the same checkout
    stripe_standin.fail("POST /v1/checkout/sessions", times=10, status=500)
    down = await buyer.buy("eur-100", key="retry-me")
    assert down.status_code == 503
    assert down.json()["error"] == "payment_provider_unavailable"
    stripe_standin.fail("POST /v1/checkout/sessions", times=0)
    up = await buyer.buy("eur-100", key="retry-me")
    assert up.status_code == 201
    assert up.json()["checkout_url"]
    assert len(stripe_standin.sessions) == 2
    await buyer.ledger_ok()


async def test_forged_and_stale_signatures_are_400_and_credit_nothing(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    _, session_id = await bought(buyer, stripe_standin)
    event = stripe_standin.complete(session_id)
    forged = await deliver(stripe_standin, stripe_client, event, secret="whsec_not_ours")
    stale = await deliver(stripe_standin, stripe_client, event, timestamp=int(time.time()) - 301)
    unsigned = await stripe_client.post(HOOK, content=b"{}")
    tampered_body, headers = stripe_standin.signed(event)
    tampered = await stripe_client.post(
        HOOK, content=tampered_body.replace(b'"paid"', b'"paid" '), headers=headers
    )
    garbage = await stripe_client.post(
        HOOK, content=b"\xff" * 100, headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert [r.status_code for r in (forged, stale, unsigned, tampered, garbage)] == [400] * 5
    assert await buyer.wallet() == (0, 0)
    late = await deliver(
        stripe_standin, stripe_client, {**event, "created": event["created"] - 3 * 86_400}
    )
    assert late.status_code == 200
    assert late.json()["outcome"] == "fulfilled"
    assert await buyer.wallet() == (330, 0)
    await buyer.ledger_ok()


async def test_one_event_twenty_times_at_once_and_two_events_for_one_session_credit_once(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer, stripe_runtime: Runtime
) -> None:
    _, session_id = await bought(buyer, stripe_standin)
    event = stripe_standin.complete(session_id)
    answers = await asyncio.gather(
        *(deliver(stripe_standin, stripe_client, event) for _ in range(20))
    )
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert sorted(r.json()["status"] for r in answers) == ["duplicate"] * 19 + ["ok"]
    # a delayed payment method: completed (unpaid), then async_payment_succeeded
    _, other = await bought(buyer, stripe_standin)
    unpaid = stripe_standin.complete(other, async_payment=True)
    succeeded = stripe_standin.async_succeeded(other)
    both = await asyncio.gather(
        *(deliver(stripe_standin, stripe_client, e) for e in [succeeded, unpaid] * 5)
    )
    assert {r.status_code for r in both} == {200}
    assert await buyer.wallet() == (660, 0)
    assert await purchase_transfers(stripe_runtime) == {"purchase": 2, "purchase_bonus": 2}
    await buyer.ledger_ok()


async def test_amount_or_currency_mismatch_credits_nothing_and_flags_review(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    for field, value in (("amount_total", 1), ("currency", "usd")):
        purchase_id, session_id = await bought(buyer, stripe_standin)
        event = stripe_standin.complete(session_id)
        event["data"]["object"][field] = value
        r = await deliver(stripe_standin, stripe_client, event)
        assert r.json()["outcome"].startswith("review"), r.text
        assert (await buyer.purchase(purchase_id))["status"] == "review"
    assert await buyer.wallet() == (0, 0)
    await buyer.ledger_ok()


async def test_expired_checkout_marks_the_purchase_expired(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    purchase_id, session_id = await bought(buyer, stripe_standin)
    await deliver(stripe_standin, stripe_client, stripe_standin.expire(session_id))
    assert (await buyer.purchase(purchase_id))["status"] == "expired"
    await buyer.ledger_ok()


async def test_partial_then_full_refund_takes_back_the_exact_cumulative_share(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    purchase_id, session_id = await paid(buyer, stripe_standin, stripe_client)  # 330 for 1299
    first = stripe_standin.refund(session_id, 433)  # a third: floor(330 * 433 / 1299) = 110
    r = await deliver(stripe_standin, stripe_client, first)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "refunded: 110 coins taken back"
    await deliver(stripe_standin, stripe_client, first)  # a duplicate changes nothing
    assert await buyer.wallet() == (220, 0)
    await buyer.ledger_ok()
    second = stripe_standin.refund(session_id, 1299 - 433)
    await deliver(stripe_standin, stripe_client, second)
    await deliver(stripe_standin, stripe_client, first)  # late and out of order: nothing
    assert await buyer.wallet() == (0, 0)
    purchase = await buyer.purchase(purchase_id)
    assert (purchase["refunded_amount"], purchase["coins_reversed"]) == (1299, 330)
    await buyer.ledger_ok()


async def test_refund_before_the_payment_event_arrives(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    purchase_id, session_id = await bought(buyer, stripe_standin)
    completed = stripe_standin.complete(session_id)
    refunded = stripe_standin.refund(session_id, 1299)
    r = await deliver(stripe_standin, stripe_client, refunded)  # found through the payment intent
    assert r.json()["outcome"].startswith("recorded"), r.text
    await deliver(stripe_standin, stripe_client, completed)
    assert await buyer.wallet() == (0, 0)
    assert (await buyer.purchase(purchase_id))["coins_reversed"] == 330
    await buyer.ledger_ok()


async def test_refund_after_the_coins_were_spent_books_the_shortfall_to_losses(
    stripe_client: AsyncClient,
    stripe_runtime: Runtime,
    stripe_standin: StripeStandin,
    clock: ManualClock,
) -> None:
    driver = CallDriver(stripe_client, stripe_runtime, clock)
    client, host = await driver.party(Role.client), await driver.party(Role.host)
    buyer = Buyer(stripe_client, stripe_runtime, client.user.id, client.headers)
    _, session_id = await paid(buyer, stripe_standin, stripe_client, "eur-100")  # 100 coins
    call_id = await driver.connect(client, host)
    await driver.run(call_id, client, host, until=600)  # 10 coins a minute: all 100 spent
    assert (await driver.call(call_id, client))["status"] == "ended"
    assert await buyer.wallet() == (0, 0)
    await deliver(stripe_standin, stripe_client, stripe_standin.refund(session_id, 499))
    assert await buyer.wallet() == (0, 0)
    report = await stripe_client.get(
        "/v1/admin/ledger/check", headers=(await driver.party(Role.admin)).headers
    )
    totals = report.json()["totals"]
    assert report.json()["ok"], report.json()["problems"]
    assert (totals["losses"], totals["shortfalls"], totals["refunded"]) == (100, 100, 100)
    assert totals["issued"] == 0  # 100 purchased, 100 refunded


async def test_refund_during_an_active_call_ends_it_billed_correctly(
    stripe_client: AsyncClient,
    stripe_runtime: Runtime,
    stripe_standin: StripeStandin,
    clock: ManualClock,
) -> None:
    driver = CallDriver(stripe_client, stripe_runtime, clock)
    client, host = await driver.party(Role.client), await driver.party(Role.host)
    buyer = Buyer(stripe_client, stripe_runtime, client.user.id, client.headers)
    _, session_id = await paid(buyer, stripe_standin, stripe_client, "eur-100")
    call_id = await driver.connect(client, host)
    await driver.run(call_id, client, host, until=150)  # 2 whole minutes: 20 coins charged
    before = await driver.call(call_id, client)
    assert before["status"] == "active"
    assert before["charged"] == 20
    # a full refund: 100 coins due back, 80 left, part of them held by the call
    await deliver(stripe_standin, stripe_client, stripe_standin.refund(session_id, 499))
    after = await driver.call(call_id, client)
    assert after["status"] == "ended"
    assert after["end_reason"] == "insufficient_funds"
    assert after["charged"] == 20
    assert after["billed_seconds"] <= 150
    assert await buyer.wallet() == (0, 0)
    await driver.ledger_ok()


async def test_a_dispute_freezes_the_client_and_holds_the_coins_won_releases_them(
    stripe_client: AsyncClient,
    stripe_runtime: Runtime,
    stripe_standin: StripeStandin,
    clock: ManualClock,
) -> None:
    driver = CallDriver(stripe_client, stripe_runtime, clock)
    client, host = await driver.party(Role.client), await driver.party(Role.host)
    buyer = Buyer(stripe_client, stripe_runtime, client.user.id, client.headers)
    _, session_id = await paid(buyer, stripe_standin, stripe_client)
    call_id = await driver.connect(client, host)
    await driver.run(call_id, client, host, until=70)  # one minute charged: 10 coins
    await deliver(stripe_standin, stripe_client, stripe_standin.dispute(session_id))
    call = await driver.call(call_id, client)
    assert call["status"] == "ended"
    assert call["end_reason"] == "account_frozen"
    assert await buyer.wallet() == (320, 320)  # what is left of the pack, held
    ring = await driver.post("/v1/calls", client, {"host_id": host.user.id})
    assert ring.status_code == 403
    assert ring.json()["error"] == "account_frozen"
    assert (await buyer.buy("eur-100")).json()["error"] == "account_frozen"
    await driver.ledger_ok()
    await deliver(stripe_standin, stripe_client, stripe_standin.close_dispute(session_id, won=True))
    assert await buyer.wallet() == (320, 0)
    assert (await buyer.buy("eur-100")).status_code == 201  # unfrozen
    await driver.ledger_ok()


async def test_a_lost_dispute_takes_the_coins_back_and_losses_explain_the_rest(
    stripe_client: AsyncClient,
    stripe_runtime: Runtime,
    stripe_standin: StripeStandin,
    clock: ManualClock,
) -> None:
    driver = CallDriver(stripe_client, stripe_runtime, clock)
    client, host = await driver.party(Role.client), await driver.party(Role.host)
    admin = await driver.party(Role.admin)
    buyer = Buyer(stripe_client, stripe_runtime, client.user.id, client.headers)
    purchase_id, session_id = await paid(buyer, stripe_standin, stripe_client)  # 330
    call_id = await driver.connect(client, host)
    await driver.run(call_id, client, host, until=70)
    await deliver(stripe_standin, stripe_client, stripe_standin.dispute(session_id))
    await deliver(
        stripe_standin, stripe_client, stripe_standin.close_dispute(session_id, won=False)
    )
    assert await buyer.wallet() == (0, 0)
    purchase = await buyer.purchase(purchase_id)
    assert (purchase["dispute"], purchase["coins_reversed"]) == ("lost", 330)
    report = (await stripe_client.get("/v1/admin/ledger/check", headers=admin.headers)).json()
    assert report["ok"], report["problems"]
    assert (report["totals"]["disputes_lost"], report["totals"]["losses"]) == (330, 10)
    # still frozen after a lost dispute until an admin says otherwise
    assert (await buyer.buy("eur-100")).status_code == 403
    r = await stripe_client.post(
        f"/v1/admin/users/{client.user.id}/unfreeze", headers=admin.headers
    )
    assert r.status_code == 200
    assert r.json()["frozen"] is False
    assert (await buyer.buy("eur-100")).status_code == 201


async def test_events_that_are_not_ours_are_acknowledged_and_ignored(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    _, session_id = await bought(buyer, stripe_standin)
    event = stripe_standin.complete(session_id)
    foreign = {**event["data"]["object"], "id": "cs_test_not_ours"}
    unknown = {
        **event,
        "id": "evt_unknown",
        "data": {"object": {**foreign, "metadata": {"purchase_id": "99999"}}},
    }
    r = await deliver(stripe_standin, stripe_client, unknown)
    assert r.status_code == 200
    assert r.json()["outcome"].startswith("ignored")
    # another session naming our purchase (whose own session is known) is not ours either
    naming_ours = {**event, "id": "evt_naming_ours", "data": {"object": foreign}}
    r = await deliver(stripe_standin, stripe_client, naming_ours)
    assert r.status_code == 200
    assert r.json()["outcome"].startswith("ignored")
    other = {
        **event,
        "id": "evt_other",
        "type": "customer.created",
        "data": {"object": {"id": "cus_1"}},
    }
    r = await deliver(stripe_standin, stripe_client, other)
    assert r.status_code == 200
    assert r.json()["outcome"].startswith("ignored")
    assert await buyer.wallet() == (0, 0)
    await buyer.ledger_ok()
