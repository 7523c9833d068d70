"""Payouts with the manual provider: maturity on an injected clock, limits, races, review,
and the ledger check after every step (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from httpx import AsyncClient

from tests.payouts.conftest import Desk


async def test_only_matured_earnings_can_be_withdrawn(desk: Desk) -> None:
    await desk.earn(minutes=2)  # 1,400 coins to the host
    e = await desk.earnings()
    assert (e["balance"], e["matured"], e["maturing"]) == (1400, 0, 1400)
    desk.days(13)
    r = await desk.request(1000)
    assert r.status_code == 409, r.text
    assert (r.json()["error"], r.json()["matured"]) == ("payout_exceeds_matured", 0)
    desk.days(2)  # 15 days after the call
    e = await desk.earnings()
    assert (e["matured"], e["maturing"]) == (1400, 0)
    r = await desk.request(1000)
    assert r.status_code == 201, r.text
    payout = r.json()
    assert (payout["status"], payout["amount"], payout["rate"], payout["amount_minor"]) == (
        "requested", 1000, 3, 3000,
    )  # fmt: skip
    e = await desk.earnings()
    assert (e["balance"], e["pending"], e["matured"]) == (1400, 1000, 400)
    over = await desk.request(1000)  # only 400 left to withdraw
    assert over.status_code == 409
    assert over.json()["matured"] == 400
    await desk.driver.ledger_ok()


async def test_minimum_pending_limit_and_a_repeated_key(desk: Desk) -> None:
    await desk.earn(minutes=5)  # 3,500
    desk.days(15)
    assert (await desk.request(999)).status_code == 422
    assert (await desk.request(999)).json()["minimum"] == 1000
    first = await desk.request(1000, key="same")
    again = await desk.request(1000, key="same")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert (await desk.request(1100, key="same")).status_code == 409  # another amount
    assert (await desk.request(1000)).status_code == 201
    assert (await desk.request(1000)).status_code == 201  # three pending: 3,000 of 3,500
    fourth = await desk.request(1000)
    assert fourth.status_code == 409
    assert (fourth.json()["error"], fourth.json()["pending"]) == ("too_many_payouts", 3)
    await desk.driver.ledger_ok()


async def test_two_requests_for_the_whole_balance_at_once_one_wins(desk: Desk) -> None:
    await desk.earn(minutes=2)
    desk.days(15)
    answers = await asyncio.gather(desk.request(1400, key="a"), desk.request(1400, key="b"))
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    e = await desk.earnings()
    assert (e["pending"], e["matured"]) == (1400, 0)
    await desk.driver.ledger_ok()


async def test_review_approve_paid_reject_and_failed(desk: Desk, client: AsyncClient) -> None:
    await desk.earn(minutes=5)  # 3,500
    desk.days(15)
    a, b, c = (
        (await desk.request(1000)).json(),
        (await desk.request(1000)).json(),
        (await desk.request(1000)).json(),
    )
    queue = (await client.get("/v1/admin/payouts", headers=desk.admin.headers)).json()
    assert [i["payout"]["id"] for i in queue["items"]] == [c["id"], b["id"], a["id"]]
    assert queue["items"][0]["host_history"] == {"requested": [3, 3000]}
    # two concurrent approvals of one payout: one capture
    both = await asyncio.gather(
        desk.admin_post(f"/v1/admin/payouts/{a['id']}/approve"),
        desk.admin_post(f"/v1/admin/payouts/{a['id']}/approve"),
    )
    assert [r.json()["status"] for r in both] == ["approved", "approved"], [r.text for r in both]
    await desk.driver.ledger_ok()
    paid = await desk.admin_post(f"/v1/admin/payouts/{a['id']}/paid", {"reference": "SEPA-123"})
    assert (paid.json()["status"], paid.json()["reference"]) == ("paid", "SEPA-123")
    rejected = await desk.admin_post(f"/v1/admin/payouts/{b['id']}/reject", {"reason": "KYC"})
    assert (rejected.json()["status"], rejected.json()["reason"]) == ("rejected", "KYC")
    assert (await desk.admin_post(f"/v1/admin/payouts/{b['id']}/reject", {})).status_code == 422
    await desk.admin_post(f"/v1/admin/payouts/{c['id']}/approve")
    failed = await desk.admin_post(f"/v1/admin/payouts/{c['id']}/failed", {"reason": "IBAN closed"})
    assert failed.json()["status"] == "failed"
    e = await desk.earnings()
    assert (e["balance"], e["pending"], e["paid"], e["matured"]) == (2500, 0, 1000, 2500)
    wrong = await desk.admin_post(f"/v1/admin/payouts/{b['id']}/approve")
    assert wrong.json()["status"] == "rejected"  # approving a rejected payout changes nothing
    assert (
        await desk.admin_post(f"/v1/admin/payouts/{b['id']}/paid", {"reference": "x"})
    ).status_code == 409
    report = (await client.get("/v1/admin/ledger/check", headers=desk.admin.headers)).json()
    assert report["ok"], report["problems"]
    assert report["totals"]["paid_out"] == 1000


async def test_a_refund_after_a_payout_never_makes_earnings_negative(desk: Desk) -> None:
    caller = await desk.driver.party(
        __import__("callmeter.models", fromlist=["Role"]).Role.client, coins=5000
    )
    call_id = await desk.driver.connect(caller, desk.host)
    await desk.driver.run(call_id, caller, desk.host, until=122, step=10)
    await desk.driver.post(f"/v1/calls/{call_id}/end", caller)
    desk.days(15)
    payout = (await desk.request(1400)).json()
    await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/approve")
    await desk.admin_post(f"/v1/admin/payouts/{payout['id']}/paid", {"reference": "r"})
    refund = await desk.admin_post(f"/v1/admin/calls/{call_id}/refund", {"reason": "bad line"})
    assert refund.status_code == 200, refund.text
    e = await desk.earnings()
    assert e["balance"] == 0  # the host's part came from the platform's losses
    report = (await desk.client.get("/v1/admin/ledger/check", headers=desk.admin.headers)).json()
    assert report["ok"], report["problems"]
    assert report["totals"]["absorbed_by_platform"] == 1400


async def test_an_admin_adjustment_needs_a_reason_and_is_in_the_ledger(desk: Desk) -> None:
    body = {"host_id": desk.host.user.id, "amount": 250, "reason": "bonus for March"}
    headers = {**desk.admin.headers, "Idempotency-Key": "adj-1"}
    r = await desk.client.post("/v1/admin/earnings-adjustments", json=body, headers=headers)
    again = await desk.client.post("/v1/admin/earnings-adjustments", json=body, headers=headers)
    assert r.status_code == again.status_code == 201
    assert r.json() == again.json()
    e = await desk.earnings()
    assert (e["balance"], e["matured"]) == (250, 250)  # deliberate: withdrawable at once
    for bad in ({**body, "reason": ""}, {**body, "amount": 0}, {**body, "amount": -10_000}):
        key = f"bad-{bad['amount']}-{bad['reason']}"
        r = await desk.client.post(
            "/v1/admin/earnings-adjustments",
            json=bad,
            headers={**desk.admin.headers, "Idempotency-Key": key},
        )
        assert r.status_code in (402, 409, 422), r.text
    host_tries = await desk.client.post(
        "/v1/admin/earnings-adjustments",
        json=body,
        headers={**desk.host.headers, "Idempotency-Key": "h"},
    )
    assert host_tries.status_code == 403
    await desk.driver.ledger_ok()
