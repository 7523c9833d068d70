"""Review 14: attacks on the payout money path. Each test demonstrated a bug a cold review
found (b76e1d4); each passes since the fixes."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient, Response

from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.payments.stripe_standin import StripeStandin
from tests.payouts.conftest import Desk, make_desk

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
HOOK = "/v1/webhooks/stripe"


@pytest.fixture
async def connect_desk(
    connect_client: AsyncClient, connect_runtime: Runtime, clock: ManualClock
) -> Desk:
    return await make_desk(connect_client, connect_runtime, clock)


async def _deliver(standin: StripeStandin, client: AsyncClient, event: dict[str, Any]) -> Response:
    r = await standin.deliver(event, HOOK, client=client)
    assert r.status_code == 200, r.text
    return r


async def _onboarded(desk: Desk, standin: StripeStandin) -> str:
    link = await desk.client.post("/v1/payouts/account-link", headers=desk.host.headers)
    assert link.status_code == 200, link.text
    [account_id] = list(standin.accounts)
    await _deliver(standin, desk.client, standin.onboard(account_id))
    return account_id


async def _check(desk: Desk) -> dict[str, Any]:
    r = await desk.client.get("/v1/admin/ledger/check", headers=desk.admin.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- 1. paid twice: "mark failed" on a Stripe payout whose transfer was made ---------------


async def test_failing_a_stripe_payout_whose_transfer_exists_is_refused(
    connect_desk: Desk, stripe_standin: StripeStandin
) -> None:
    desk = connect_desk
    await desk.earn(minutes=2)  # 1,400
    desk.days(15)
    await _onboarded(desk, stripe_standin)
    payout = (await desk.request(1000)).json()
    # Stripe makes the transfer but every answer (and the package's retries) is lost
    stripe_standin.fail("POST /v1/transfers", times=10, status=500, after=True)
    down = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    assert down.status_code == 503, down.text
    assert len(stripe_standin.transfers) == 1  # the money has left
    stripe_standin.fail("POST /v1/transfers", times=0)
    # the admin queue offers "mark failed" on the approved payout
    failed = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/failed", {"reason": "?"})
    e = await desk.earnings()
    # the coins must not be back while the transfer stands (today: 200, balance 1,400,
    # matured 1,400 — the host withdraws the same 1,000 again)
    assert failed.status_code == 409, (failed.status_code, failed.text, e)


async def test_marking_a_stripe_payout_paid_by_hand_is_refused(
    connect_desk: Desk, stripe_standin: StripeStandin
) -> None:
    desk = connect_desk
    await desk.earn(minutes=2)
    desk.days(15)
    await _onboarded(desk, stripe_standin)
    payout = (await desk.request(1000)).json()
    stripe_standin.fail("POST /v1/transfers", times=10, status=500)  # nothing made
    assert (await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")).status_code == 503
    stripe_standin.fail("POST /v1/transfers", times=0)
    r = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/paid", {"reference": "tr_x"})
    assert r.status_code == 409, r.text


# --- 2. ledger check fails on a legitimate partial reversal ---------------------------------


async def test_a_partial_reversal_keeps_the_ledger_check_ok(
    connect_desk: Desk, stripe_standin: StripeStandin
) -> None:
    desk = connect_desk
    await desk.earn(minutes=2)
    desk.days(15)
    await _onboarded(desk, stripe_standin)
    payout = (await desk.request(1000)).json()
    paid = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    assert paid.json()["status"] == "paid", paid.text
    reversal = stripe_standin.reverse_transfer(paid.json()["reference"], amount=1500)  # half
    r = await _deliver(stripe_standin, desk.client, reversal)
    assert r.json()["outcome"] == "reversed: 500 coins back to earnings"
    report = await _check(desk)
    assert report["ok"], report["problems"]


# --- 3. a refund while a payout is pending: the platform pays the host's part ----------------


async def test_a_refund_while_a_payout_is_pending_is_taken_from_the_host(desk: Desk) -> None:
    caller = await desk.driver.party(Role.client, coins=5000)
    call_id = await desk.driver.connect(caller, desk.host)
    await desk.driver.run(call_id, caller, desk.host, until=122, step=10)
    await desk.driver.post(f"/v1/calls/{call_id}/end", caller)  # host earns 1,400
    desk.days(15)
    payout = (await desk.request(1400)).json()  # held, not paid
    refund = await desk.admin_post(f"/v1/admin/calls/{call_id}/refund", {"reason": "fraud"})
    # the coins are the host's, held for review: the admin reviews the request first
    assert refund.status_code == 409, refund.text
    assert refund.json()["error"] == "refund_blocked_by_payout"
    rejected = await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/reject", {"reason": "x"})
    assert rejected.status_code == 200, rejected.text
    refund = await desk.admin_post(f"/v1/admin/calls/{call_id}/refund", {"reason": "fraud"})
    assert refund.status_code == 200, refund.text
    e = await desk.earnings()
    report = await _check(desk)
    assert report["totals"]["absorbed_by_platform"] == 0, (e, report["totals"])
    assert e["balance"] == 0, e


# --- 4. hostile input on the new endpoints: 4xx, never 5xx ----------------------------------


HOSTILE = [
    pytest.param(
        "/v1/admin/earnings-adjustments",
        {"host_id": 2**63, "amount": 5, "reason": "bonus"},
        id="adjust-host_id-2**63",
    ),
    pytest.param(
        "/v1/admin/earnings-adjustments",
        {"host_id": None, "amount": 5, "reason": "a\x00b"},
        id="adjust-null-host",
    ),
    pytest.param(
        "/v1/admin/earnings-adjustments",
        {"host_id": "HOST", "amount": 5, "reason": "a\x00bc"},
        id="adjust-reason-NUL",
    ),
    pytest.param(
        "/v1/admin/payouts/PAYOUT/reject",
        {"reason": "no\x00"},
        id="reject-reason-NUL",
    ),
    pytest.param(
        "/v1/admin/payouts/PAYOUT/reject",
        {"reason": 12},
        id="reject-reason-int",
    ),
    pytest.param(
        "/v1/payouts",
        {"amount": 10**30},
        id="payout-huge-amount",
    ),
    pytest.param(
        "/v1/payouts",
        {"amount": "1000"},
        id="payout-amount-string",
    ),
]


@pytest.mark.parametrize(("path", "body"), HOSTILE)
async def test_hostile_bodies_are_4xx(desk: Desk, path: str, body: dict[str, Any]) -> None:
    await desk.earn(minutes=2)
    desk.days(15)
    payout = (await desk.request(1000)).json()
    path = path.replace("PAYOUT", str(payout["id"]))
    if body.get("host_id") == "HOST":
        body = {**body, "host_id": desk.host.user.id}
    party = desk.host if path == "/v1/payouts" else desk.admin
    headers = {**party.headers, "Idempotency-Key": "hostile-1"}
    r = await desk.client.post(path, json=body, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


@pytest.mark.parametrize(
    "path",
    ["/v1/admin/payouts/PAYOUT/paid", "/v1/admin/payouts/PAYOUT/failed"],
    ids=["paid", "failed"],
)
async def test_nul_in_settlement_text_is_4xx(desk: Desk, path: str) -> None:
    await desk.earn(minutes=2)
    desk.days(15)
    payout = (await desk.request(1000)).json()
    await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    field = "reference" if path.endswith("paid") else "reason"
    r = await desk.admin_post(path.replace("PAYOUT", str(payout["id"])), {field: "x\x00y"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


async def test_an_adjustment_accepts_any_valid_idempotency_key(desk: Desk) -> None:
    prefix = f"grant:{desk.admin.user.id}:"
    key = "k" * (200 - len(prefix))  # a valid header (<= 200), kept unhashed by grant_key
    body = {"host_id": desk.host.user.id, "amount": 250, "reason": "bonus for March"}
    r = await desk.client.post(
        "/v1/admin/earnings-adjustments",
        json=body,
        headers={**desk.admin.headers, "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
