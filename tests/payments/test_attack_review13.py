"""review13: tests for bugs a cold review found in the purchase money path (issue 13).

Each test asserts what the spec asks for; each failed on the reviewed commit (cad4d0b)
and passes since the fixes. Stripe is the
stand-in (the real ``stripe`` package); webhooks are signed as Stripe signs them. The
PostgreSQL lock-order tests hold a call row the way a call path does and show the webhook
deadlocking with it; the control test shows the same harness passing on a path that keeps
the order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from callmeter.payments.provider import CheckoutRequest, StripeProvider
from tests.calls.driver import CallDriver, Party
from tests.conftest import postgres_only
from tests.factories import auth_headers, make_user
from tests.payments.conftest import Buyer, make_buyer
from tests.payments.stripe_standin import StripeStandin
from tests.payments.test_stripe import deliver, paid

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def buyer(stripe_client: AsyncClient, stripe_runtime: Runtime) -> Buyer:
    return await make_buyer(stripe_client, stripe_runtime)


async def ledger_report(client: AsyncClient, runtime: Runtime) -> dict[str, Any]:
    admin = await make_user(runtime, Role.admin)
    headers = await auth_headers(client, admin.username)
    r = await client.get("/v1/admin/ledger/check", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- 1. a refund applied while a dispute holds the purchase's coins ---------------------


@pytest.mark.parametrize("order", ["dispute_then_refund", "both_before_the_payment"])
async def test_refund_during_open_dispute_then_won_leaves_the_refunded_coins_with_the_client(
    stripe_client: AsyncClient,
    stripe_standin: StripeStandin,
    buyer: Buyer,
    stripe_runtime: Runtime,
    order: str,
) -> None:
    """A third of the price is refunded, then the customer disputes the rest; Stripe delivers
    the dispute first (or both before the payment event, when fulfil() holds for the
    dispute and then applies the refund). The refund should take back 110 coins (they are
    in the wallet, held for the dispute); _take_back only looks at available coins, so all
    110 go to losses as a shortfall, and the won dispute hands them back: the client keeps
    330 coins for 866 cents and losses report coins nobody spent."""
    if order == "dispute_then_refund":
        await paid(buyer, stripe_standin, stripe_client)  # 330 coins for 1299
        session_id = next(iter(stripe_standin.sessions))
        completed = None
    else:
        assert (await buyer.buy("eur-330")).status_code == 201
        session_id = next(iter(stripe_standin.sessions))
        completed = stripe_standin.complete(session_id)
    refund = stripe_standin.refund(session_id, 433)  # a third: 110 coins due back
    dispute = stripe_standin.dispute(session_id)
    assert (await deliver(stripe_standin, stripe_client, dispute)).status_code == 200
    r = await deliver(stripe_standin, stripe_client, refund)
    assert r.status_code == 200, r.text
    if completed is not None:
        assert (await deliver(stripe_standin, stripe_client, completed)).status_code == 200
    won = stripe_standin.close_dispute(session_id, won=True)
    assert (await deliver(stripe_standin, stripe_client, won)).status_code == 200
    report = await ledger_report(stripe_client, stripe_runtime)
    # nothing was ever spent, so nothing is a loss, and the refunded third is gone
    assert report["totals"]["shortfalls"] == 0, report["totals"]
    assert await buyer.wallet() == (220, 0)


async def test_refund_during_open_dispute_then_lost_fails_ledger_check(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer, stripe_runtime: Runtime
) -> None:
    """Same order, dispute lost: _take_back closes the dispute hold with 110 coins still in
    it (HoldChange after=held-from_hold, close=True), so the wallet keeps 110 held coins
    that no open hold accounts for — ``ledger check`` reports a released hold that still
    reserves coins, and the client's 110 coins are stuck."""
    _, session_id = await paid(buyer, stripe_standin, stripe_client)
    refund = stripe_standin.refund(session_id, 433)
    dispute = stripe_standin.dispute(session_id)
    await deliver(stripe_standin, stripe_client, dispute)
    await deliver(stripe_standin, stripe_client, refund)
    lost = stripe_standin.close_dispute(session_id, won=False)
    r = await deliver(stripe_standin, stripe_client, lost)
    assert r.status_code == 200, r.text
    report = await ledger_report(stripe_client, stripe_runtime)
    assert report["ok"], report["problems"]
    assert await buyer.wallet() == (0, 0)


# --- 2. an inquiry (or a prevented dispute) closes with a status other than won/lost -------


@pytest.mark.parametrize("closed_as", ["warning_closed", "prevented"])
async def test_a_dispute_closed_neither_won_nor_lost_does_not_freeze_the_client_forever(
    stripe_client: AsyncClient,
    stripe_standin: StripeStandin,
    buyer: Buyer,
    stripe_runtime: Runtime,
    closed_as: str,
) -> None:
    """Stripe's charge.dispute.closed carries won, lost or warning_closed (an inquiry that
    never became a chargeback; the stripe package also lists `prevented`). dispute_closed
    ignores anything but won/lost, so the purchase stays `open`: the client is frozen, the
    coins are held, and POST /v1/admin/users/{id}/unfreeze answers 409 for ever."""
    _, session_id = await paid(buyer, stripe_standin, stripe_client)
    created = stripe_standin.dispute(session_id)
    created["data"]["object"]["status"] = "warning_needs_response"  # an inquiry
    await deliver(stripe_standin, stripe_client, created)
    closed = stripe_standin.close_dispute(session_id, won=True)
    closed["data"]["object"]["status"] = closed_as
    r = await deliver(stripe_standin, stripe_client, closed)
    assert r.status_code == 200, r.text
    admin = await make_user(stripe_runtime, Role.admin)
    unfreeze = await stripe_client.post(
        f"/v1/admin/users/{buyer.user_id}/unfreeze",
        headers=await auth_headers(stripe_client, admin.username),
    )
    assert unfreeze.status_code == 200, (r.json(), unfreeze.text)
    assert await buyer.wallet() == (330, 0), r.json()


# --- 3. refunds and disputes of a payment that is not the purchase's ------------------


async def _foreign_payment(
    stripe_runtime: Runtime, stripe_standin: StripeStandin, purchase_id: int
) -> str:
    """A Checkout Session on the same Stripe account whose metadata names ``purchase_id``
    but which is not that purchase's: another installation sharing the account (which
    `_stripe_key` explicitly allows for) or another product using `purchase_id` metadata."""
    provider = stripe_runtime.payments
    assert isinstance(provider, StripeProvider)
    checkout = await provider.create_checkout(
        CheckoutRequest(
            purchase_id=purchase_id, product_name="something else", currency="eur",
            unit_amount=1299, success_url="https://other.example/ok",
            cancel_url="https://other.example/no", expires_at=stripe_standin.clock() + 7200,
            idempotency_key="other-installation-1", customer_reference="someone-else",
        )
    )  # fmt: skip
    stripe_standin.complete(checkout.session_id)  # paid there; its event is not ours
    return checkout.session_id


async def test_a_refund_of_another_payment_takes_nothing_from_the_purchase_it_names(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer, stripe_runtime: Runtime
) -> None:
    """refund() never compares the charge's payment_intent with the purchase's
    (service.py:346-349 only fills it in when empty): a refunded charge whose payment
    intent's metadata says purchase_id=N takes N's coins back, whoever paid it."""
    purchase_id, _ = await paid(buyer, stripe_standin, stripe_client)
    other = await _foreign_payment(stripe_runtime, stripe_standin, purchase_id)
    r = await deliver(stripe_standin, stripe_client, stripe_standin.refund(other, 1299))
    assert r.status_code == 200, r.text
    assert await buyer.wallet() == (330, 0), r.json()["outcome"]


async def test_a_dispute_of_another_payment_does_not_freeze_the_client(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer, stripe_runtime: Runtime
) -> None:
    """dispute_opened() has no check at all (not even the currency): a dispute on another
    payment whose intent names purchase N freezes N's client and holds their coins; lost,
    it takes them."""
    purchase_id, _ = await paid(buyer, stripe_standin, stripe_client)
    other = await _foreign_payment(stripe_runtime, stripe_standin, purchase_id)
    r = await deliver(stripe_standin, stripe_client, stripe_standin.dispute(other))
    assert r.status_code == 200, r.text
    assert (await buyer.buy("eur-100")).status_code == 201, r.json()["outcome"]
    assert await buyer.wallet() == (330, 0)


# --- 4. a dispute closed (lost) before its `created` event: the call goes on --------------


async def test_dispute_lost_arriving_before_created_ends_the_clients_call(
    stripe_client: AsyncClient,
    stripe_runtime: Runtime,
    stripe_standin: StripeStandin,
    clock: ManualClock,
) -> None:
    """dispute_closed() freezes the client when the close comes first (service.py:426-427)
    but never ends their call; the `created` event then says "already lost". With coins
    from elsewhere in the wallet the frozen client's call keeps running and billing."""
    driver = CallDriver(stripe_client, stripe_runtime, clock)
    client: Party = await driver.party(Role.client, coins=1000)
    host = await driver.party(Role.host)
    buyer = Buyer(stripe_client, stripe_runtime, client.user.id, client.headers)
    _, session_id = await paid(buyer, stripe_standin, stripe_client)
    call_id = await driver.connect(client, host)
    await driver.run(call_id, client, host, until=70)
    created = stripe_standin.dispute(session_id)
    lost = stripe_standin.close_dispute(session_id, won=False)
    assert (await deliver(stripe_standin, stripe_client, lost)).status_code == 200
    assert (await deliver(stripe_standin, stripe_client, created)).status_code == 200
    ring = await driver.post("/v1/calls", client, {"host_id": host.user.id})
    assert ring.status_code in (403, 409)  # frozen (or busy)
    call = await driver.call(call_id, client)
    assert (call["status"], call["end_reason"]) == ("ended", "account_frozen"), call


# --- 5. 5xx on a signed event -------------------------------------------------------------


@pytest.mark.parametrize("value", ["\u00b9", "\u00b2\u00b3"])
async def test_a_superscript_digit_purchase_id_in_metadata_is_not_a_500(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer, value: str
) -> None:
    """provider.purchase_id_in uses str.isdigit(), which is True for '¹', then int('¹')
    raises ValueError: the webhook answers 500 and Stripe redelivers the event for days."""
    r = await buyer.buy("eur-330")
    session_id = next(iter(stripe_standin.sessions))
    event = stripe_standin.complete(session_id)
    event["data"]["object"]["metadata"] = {"purchase_id": value}
    answer = await deliver(stripe_standin, stripe_client, event)
    assert answer.status_code == 200, answer.text
    assert r.status_code == 201


# --- 6. PostgreSQL: the pending-purchase limit and the lock order ------------------------


@postgres_only
async def test_concurrent_purchases_cannot_pass_the_hourly_pending_limit(
    client: AsyncClient, runtime: Runtime
) -> None:
    """_claim counts pending purchases with a plain read and then inserts: on PostgreSQL
    concurrent requests all see fewer than 20 and each opens a checkout (with Stripe, one
    Checkout Session each, on the account-wide API rate limit)."""
    buyer = await make_buyer(client, runtime)
    answers = await asyncio.gather(*(buyer.buy("eur-100") for _ in range(40)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(201) <= runtime.settings.pending_purchases_per_hour, str(codes)


async def _call_row_then(
    runtime: Runtime, call_id: int, webhook: Any, statement: str, params: dict[str, Any]
) -> None:
    """Hold the call row as a call path does (heartbeat, hang-up, meter, signal), let
    ``webhook`` run until it waits for a lock, then run ``statement`` — what that call path
    does next. A webhook that keeps the lock order cannot deadlock with this."""
    async with runtime.engine.connect() as other:
        await other.execute(text("SET deadlock_timeout = '50ms'"))  # it notices first
        await other.execute(text("SELECT id FROM calls WHERE id = :id FOR UPDATE"), {"id": call_id})
        task = asyncio.create_task(webhook)
        try:
            waiting = 0
            for _ in range(2000):  # until the webhook's transaction waits for a lock
                await other.execute(text("SELECT pg_stat_clear_snapshot()"))
                waiting = await other.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                )
                if waiting or task.done():
                    break
                await asyncio.sleep(0.005)
            assert waiting, "the webhook never waited for a lock"
            await other.execute(text(statement), params)  # DeadlockDetected: order broken
        finally:
            await other.rollback()
            answer = await task  # the webhook goes on (or was the deadlock's victim, retried)
    assert answer.status_code == 200, answer.text


WALLET = "SELECT id FROM accounts WHERE user_id = :u FOR NO KEY UPDATE"  # settle, end
SIGNAL = (  # add_signal: the call row, then the signal row (FK checks on both users)
    "INSERT INTO call_signals (call_id, sender_id, recipient_id, type, payload, created_at) "
    "SELECT id, host_id, client_id, 'ice', '{}', now() FROM calls WHERE id = :c"
)
RING = "SELECT frozen_at FROM users WHERE id = :u FOR SHARE"  # create_call after end_stale_calls


@postgres_only
async def test_fulfilment_with_a_recorded_refund_keeps_the_lock_order(
    stripe_client: AsyncClient,
    stripe_runtime: Runtime,
    stripe_standin: StripeStandin,
    clock: ManualClock,
) -> None:
    """The refund arrived before the payment; the client (with coins from elsewhere) is in
    a call. fulfil() posts the coins (locking the wallet and issuance) and only then
    _take_back locks the client's call row (service.py:234 then :279) — accounts before the
    call, against the ledger's order. A transaction that follows the order (call row, then
    the wallet: a heartbeat, a hang-up, the meter) deadlocks with it (DeadlockDetected)."""
    driver = CallDriver(stripe_client, stripe_runtime, clock)
    client = await driver.party(Role.client, coins=1000)
    host = await driver.party(Role.host)
    buyer = Buyer(stripe_client, stripe_runtime, client.user.id, client.headers)
    r = await buyer.buy("eur-330")
    assert r.status_code == 201, r.text
    session_id = next(iter(stripe_standin.sessions))
    completed = stripe_standin.complete(session_id)
    refunded = stripe_standin.refund(session_id, 1299)
    r = await deliver(stripe_standin, stripe_client, refunded)
    assert r.json()["outcome"].startswith("recorded"), r.text
    call_id = await driver.connect(client, host)
    await _call_row_then(
        stripe_runtime, call_id, deliver(stripe_standin, stripe_client, completed),
        WALLET, {"u": client.user.id},
    )  # fmt: skip


@postgres_only
async def test_control_a_refund_after_the_payment_keeps_the_lock_order(
    stripe_client: AsyncClient,
    stripe_runtime: Runtime,
    stripe_standin: StripeStandin,
    clock: ManualClock,
) -> None:
    """Control (passes): the same harness against charge.refunded after the payment, whose
    _take_back locks the call row before any account — no deadlock."""
    driver = CallDriver(stripe_client, stripe_runtime, clock)
    client = await driver.party(Role.client, coins=1000)
    host = await driver.party(Role.host)
    buyer = Buyer(stripe_client, stripe_runtime, client.user.id, client.headers)
    _, session_id = await paid(buyer, stripe_standin, stripe_client)
    call_id = await driver.connect(client, host)
    refunded = stripe_standin.refund(session_id, 1299)
    await _call_row_then(
        stripe_runtime, call_id, deliver(stripe_standin, stripe_client, refunded),
        WALLET, {"u": client.user.id},
    )  # fmt: skip


@postgres_only
@pytest.mark.parametrize("then", ["signal", "ring"])
async def test_a_dispute_keeps_the_lock_order_with_the_clients_call(
    stripe_client: AsyncClient,
    stripe_runtime: Runtime,
    stripe_standin: StripeStandin,
    clock: ManualClock,
    then: str,
) -> None:
    """dispute_opened() locks the client's user row FOR UPDATE (_freeze, service.py:360)
    and then the client's call row (:401). Call paths take the call row first and then
    touch the user row: add_signal inserts a signal whose foreign keys take KEY SHARE on
    both users (which FOR UPDATE blocks — hosts.lock_host uses FOR NO KEY UPDATE for this
    reason); create_call locks the client's overdue calls (end_stale_calls: a call whose
    heartbeats stopped, not yet ended by the meter) before client_is_frozen's FOR SHARE.
    Either deadlocks with a dispute arriving then. PostgreSQL breaks the deadlock after
    deadlock_timeout and both sides retry 40P01, so it costs a stall and a retry."""
    driver = CallDriver(stripe_client, stripe_runtime, clock)
    client = await driver.party(Role.client)
    host = await driver.party(Role.host)
    buyer = Buyer(stripe_client, stripe_runtime, client.user.id, client.headers)
    _, session_id = await paid(buyer, stripe_standin, stripe_client)
    call_id = await driver.connect(client, host)
    dispute = deliver(stripe_standin, stripe_client, stripe_standin.dispute(session_id))
    if then == "signal":
        await _call_row_then(stripe_runtime, call_id, dispute, SIGNAL, {"c": call_id})
    else:
        await _call_row_then(stripe_runtime, call_id, dispute, RING, {"u": client.user.id})


# --- 7. a frozen client resumes a purchase with its old Idempotency-Key -------------------


async def test_a_frozen_client_cannot_open_a_checkout_with_an_old_idempotency_key(
    stripe_client: AsyncClient, stripe_standin: StripeStandin, buyer: Buyer
) -> None:
    """_claim returns the purchase made before for a repeated key without the frozen check
    (service.py:83-87), and start_purchase then creates its Checkout Session: a client
    frozen by a dispute gets a payable checkout (the endpoint promises 403 account_frozen)."""
    _, session_id = await paid(buyer, stripe_standin, stripe_client)
    stripe_standin.fail("POST /v1/checkout/sessions", times=10, status=500)
    down = await buyer.buy("eur-100", key="before-the-freeze")
    assert down.status_code == 503  # a pending purchase without a checkout
    stripe_standin.fail("POST /v1/checkout/sessions", times=0)
    await deliver(stripe_standin, stripe_client, stripe_standin.dispute(session_id))
    assert (await buyer.buy("eur-100")).status_code == 403  # frozen
    again = await buyer.buy("eur-100", key="before-the-freeze")
    assert again.status_code == 403, again.json()
