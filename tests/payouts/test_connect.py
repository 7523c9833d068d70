"""Payouts through Stripe Connect Express — the real ``stripe`` package against the
stand-in: onboarding, account.updated, one transfer per payout however approvals race or
Stripe fails, refusals and reversals returning the coins; ledger check after each step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient, Response

from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from tests.payments.stripe_standin import StripeStandin
from tests.payouts.conftest import Desk, make_desk

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
HOOK = "/v1/webhooks/stripe"


@pytest.fixture
async def desk(connect_client: AsyncClient, connect_runtime: Runtime, clock: ManualClock) -> Desk:
    return await make_desk(connect_client, connect_runtime, clock)


async def deliver(standin: StripeStandin, client: AsyncClient, event: dict[str, Any]) -> Response:
    r = await standin.deliver(event, HOOK, client=client)
    assert r.status_code == 200, r.text
    return r


async def onboarded(desk: Desk, standin: StripeStandin) -> str:
    """The host sets up their Connect account; Stripe says it can receive transfers."""
    link = await desk.client.post("/v1/payouts/account-link", headers=desk.host.headers)
    assert link.status_code == 200, link.text
    [account_id] = list(standin.accounts)
    assert link.json()["url"].startswith(standin.url)
    assert (await desk.earnings())["payouts_enabled"] is False
    await deliver(standin, desk.client, standin.onboard(account_id))
    assert (await desk.earnings())["payouts_enabled"] is True
    again = await desk.client.post("/v1/payouts/account-link", headers=desk.host.headers)
    assert again.status_code == 200
    assert len(standin.accounts) == 1  # one account per host
    return account_id


async def requested(desk: Desk, amount: int = 1000) -> dict[str, Any]:
    r = await desk.request(amount)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_payouts_wait_for_onboarding_then_pay_by_transfer(
    desk: Desk, stripe_standin: StripeStandin
) -> None:
    await desk.earn(minutes=2)
    desk.days(15)
    early = await desk.request(1000)
    assert early.status_code == 409
    assert early.json()["error"] == "payouts_not_enabled"
    account_id = await onboarded(desk, stripe_standin)
    payout = await requested(desk)
    r = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    assert (r.json()["status"], r.json()["reference"][:3]) == ("paid", "tr_"), r.text
    [transfer] = stripe_standin.transfers.values()
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (
        3000, "eur", account_id,
    )  # fmt: skip
    await desk.driver.ledger_ok()


async def test_concurrent_approvals_and_a_500_make_one_transfer(
    desk: Desk, stripe_standin: StripeStandin
) -> None:
    await desk.earn(minutes=3)
    desk.days(15)
    await onboarded(desk, stripe_standin)
    payout = await requested(desk)
    stripe_standin.fail("POST /v1/transfers", times=1, status=500)  # retried, same key
    answers = await asyncio.gather(
        *(desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve") for _ in range(3))
    )
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert len(stripe_standin.transfers) == 1
    keys = {c.idempotency_key for c in stripe_standin.calls_to("POST /v1/transfers")}
    assert len(keys) == 1
    # the answer lost after Stripe made the transfer: a retry replays it, one transfer
    second = await requested(desk)
    stripe_standin.fail("POST /v1/transfers", times=1, status=500, after=True)
    r = await desk.admin_post(f"/v1/admin/payouts/{second['id']}/approve")
    assert r.json()["status"] == "paid", r.text
    assert len(stripe_standin.transfers) == 2
    report = (await desk.client.get("/v1/admin/ledger/check", headers=desk.admin.headers)).json()
    assert report["ok"], report["problems"]
    assert report["totals"]["paid_out"] == 2000


async def test_stripe_down_leaves_the_payout_approved_until_approved_again(
    desk: Desk, stripe_standin: StripeStandin
) -> None:
    await desk.earn(minutes=2)
    desk.days(15)
    await onboarded(desk, stripe_standin)
    payout = await requested(desk)
    stripe_standin.fail("POST /v1/transfers", times=10, status=500)
    down = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    assert down.status_code == 503
    assert down.json()["error"] == "payment_provider_unavailable"
    await desk.driver.ledger_ok()  # approved: the coins wait in payout_clearing
    stripe_standin.fail("POST /v1/transfers", times=0)
    up = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    assert up.json()["status"] == "paid"
    assert len(stripe_standin.transfers) == 1
    await desk.driver.ledger_ok()


async def test_a_refused_transfer_and_a_reversal_return_the_coins(
    desk: Desk, stripe_standin: StripeStandin
) -> None:
    await desk.earn(minutes=3)  # 2,100
    desk.days(15)
    account_id = await onboarded(desk, stripe_standin)
    first = await requested(desk)
    second = await requested(desk)
    paid = await desk.admin_post(f"/v1/admin/payouts/{first['id']}/approve")
    assert paid.json()["status"] == "paid"
    await deliver(stripe_standin, desk.client, stripe_standin.restrict(account_id))
    refused = await desk.admin_post(f"/v1/admin/payouts/{second['id']}/approve")
    assert refused.json()["status"] == "failed", refused.text
    assert (await desk.earnings())["balance"] == 1100  # 2,100 - 1,000 paid
    reversal = stripe_standin.reverse_transfer(paid.json()["reference"])
    r = await deliver(stripe_standin, desk.client, reversal)
    assert r.json()["outcome"] == "reversed: 1000 coins back to earnings"
    await deliver(stripe_standin, desk.client, reversal)  # a duplicate: nothing more
    e = await desk.earnings()
    assert (e["balance"], e["matured"]) == (2100, 2100)  # came back already matured
    listed = (await desk.client.get("/v1/payouts", headers=desk.host.headers)).json()
    assert [p["status"] for p in listed["items"]] == ["failed", "reversed"]
    await desk.driver.ledger_ok()


async def test_a_dispute_lost_after_the_payout_never_makes_the_host_negative(
    desk: Desk, stripe_standin: StripeStandin
) -> None:
    from callmeter.models import Role
    from tests.payments.conftest import Buyer

    await onboarded(desk, stripe_standin)
    client = await desk.driver.party(Role.client)
    buyer = Buyer(desk.client, desk.driver.runtime, client.user.id, client.headers)
    bought = await buyer.buy("eur-1800")
    session_id = next(iter(stripe_standin.sessions))
    assert bought.status_code == 201
    await deliver(stripe_standin, desk.client, stripe_standin.complete(session_id))
    call_id = await desk.driver.connect(client, desk.host)
    await desk.driver.run(call_id, client, desk.host, until=62, step=10)
    await desk.driver.post(f"/v1/calls/{call_id}/end", client)
    assert (await desk.earnings())["balance"] == 700
    desk.days(15)
    payout = await requested(desk, 700)
    paid = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    assert paid.json()["status"] == "paid"
    await deliver(stripe_standin, desk.client, stripe_standin.dispute(session_id))
    await deliver(stripe_standin, desk.client, stripe_standin.close_dispute(session_id, won=False))
    assert (await desk.earnings())["balance"] == 0  # not negative: the platform took the loss
    assert await buyer.wallet() == (0, 0)
    report = (await desk.client.get("/v1/admin/ledger/check", headers=desk.admin.headers)).json()
    assert report["ok"], report["problems"]
    assert (report["totals"]["disputes_lost"], report["totals"]["shortfalls"]) == (1800, 1000)


async def test_approving_again_after_stripe_forgot_the_key_makes_no_second_transfer(
    desk: Desk, stripe_standin: StripeStandin
) -> None:
    await desk.earn(minutes=2)
    desk.days(15)
    await onboarded(desk, stripe_standin)
    payout = await requested(desk)
    # the transfer is made, every answer is lost: the payout stays approved (503)
    stripe_standin.fail("POST /v1/transfers", times=10, status=500, after=True)
    lost = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    assert lost.status_code == 503, lost.text
    assert len(stripe_standin.transfers) == 1
    stripe_standin.fail("POST /v1/transfers", times=0)
    stripe_standin.forget_idempotency_keys()  # a day later
    again = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    assert again.json()["status"] == "paid", again.text
    assert len(stripe_standin.transfers) == 1  # found, not made again
    assert again.json()["reference"] == next(iter(stripe_standin.transfers))
    await desk.driver.ledger_ok()
