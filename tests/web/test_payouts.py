"""The host's earnings page and the admin's payouts queue in Debian's Chromium (Playwright),
against the real server with earnings that mature at once: the admin credits a host's
earnings, the host withdraws (checked in the page first, one request for a double click,
the server's refusal in words), the admin approves and marks the payout paid, marks another
failed and rejects a third, and the host sees each outcome. With Stripe Connect (the Stripe
stand-in), the host sets up payouts first and an approval pays by transfer at once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, Route, async_playwright, expect

from tests.payments.stripe_standin import (
    CONNECT_WEBHOOK_SECRET,
    SECRET_KEY,
    WEBHOOK_SECRET,
    StripeStandin,
    running_stripe,
)
from tests.test_cli import free_port, run, start_server
from tests.web.test_browser import ARGS, CHROMIUM, PASSWORD, SCREENSHOTS, api_token, logged_in

pytestmark = pytest.mark.slow


def serve(env: dict[str, str], tmp_path: Path) -> contextlib.AbstractContextManager[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (scripts/)")
    env.update(
        CALLMETER_PAYOUT_HOLD_DAYS="0",  # earnings are withdrawable at once
        CALLMETER_PAYOUT_MIN_COINS="100",
        CALLMETER_PAYOUT_MAX_PENDING="1",  # a second request waits for the first's review
    )
    run(env, "migrate")
    for name, role in [("tutor", "host"), ("boss", "admin")]:
        run(env, "user", "add", name, "--role", role, "--password", PASSWORD, "--display-name",
            name.title())  # fmt: skip
    return start_server(env, tmp_path, free_port())


@pytest.fixture
def payouts_server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with serve(env, tmp_path) as base:
        yield base


@pytest.fixture
async def stripe() -> AsyncIterator[StripeStandin]:
    async with running_stripe() as standin:
        yield standin


@pytest.fixture
def connect_server(env: dict[str, str], tmp_path: Path, stripe: StripeStandin) -> Iterator[str]:
    """Payouts through Stripe Connect, against the stand-in."""
    env.update(
        CALLMETER_PAYOUT_PROVIDER="stripe",
        CALLMETER_STRIPE_SECRET_KEY=SECRET_KEY,
        CALLMETER_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CALLMETER_STRIPE_CONNECT_WEBHOOK_SECRET=CONNECT_WEBHOOK_SECRET,
        CALLMETER_STRIPE_API_BASE=stripe.url,
    )
    with serve(env, tmp_path) as base:
        yield base


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        await chromium.close()


async def fits_a_phone(page: Page) -> None:
    size = page.viewport_size
    await page.set_viewport_size({"width": 390, "height": 844})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    if size:
        await page.set_viewport_size(size)


async def test_a_host_withdraws_and_the_admin_pays(
    payouts_server: str, browser: Browser, env: dict[str, str]
) -> None:
    base = payouts_server
    _, host = await logged_in(browser, base, "tutor")
    async with httpx.AsyncClient(base_url=base) as http:
        me = await http.get("/v1/me", headers={"Authorization": f"Bearer {await api_token(host)}"})
    host_id = me.json()["id"]

    # Nothing earned yet: the page says when a payout becomes possible.
    await host.get_by_role("link", name="Earnings", exact=True).click()
    await host.wait_for_url("**/earnings")
    await expect(host.get_by_test_id("matured")).to_have_text("0 coins")
    await expect(host.get_by_test_id("not-yet")).to_contain_text("once 100 coins have matured")
    await expect(host.get_by_role("region", name="Your payouts")).to_contain_text("No payouts yet.")

    # The admin credits the host's earnings (an audited adjustment).
    _, admin = await logged_in(browser, base, "boss")
    await admin.get_by_role("link", name="Payouts", exact=True).click()
    await admin.wait_for_url("**/admin/payouts")
    await expect(admin.get_by_role("region", name="Payouts")).to_contain_text(
        "No payouts are waiting for review."
    )
    adjust = admin.get_by_role("form", name="Adjust a host's earnings")
    await adjust.get_by_label("Host user id").fill(str(host_id))
    await adjust.get_by_label("Coins (negative to take back)").fill("5000")
    await adjust.get_by_label("Reason").fill("Launch bonus")
    await adjust.get_by_role("button", name="Adjust earnings").click()
    await expect(adjust.get_by_role("status")).to_contain_text(
        f"Added 5,000 coins to the earnings of Tutor (host #{host_id})"
    )

    # The host sees them as coins and money (3 euro cents a coin by default).
    await host.reload()
    await expect(host.get_by_test_id("matured")).to_have_text("5,000 coins")
    await expect(host.get_by_test_id("matured-money")).to_have_text("€150.00")
    await expect(host.get_by_role("region", name="Earnings")).to_contain_text(
        "Earnings become withdrawable as soon as they are earned."
    )
    posts: list[Request] = []

    def count_withdrawals(req: Request) -> None:
        if req.method == "POST" and req.url.endswith("/v1/payouts"):
            posts.append(req)

    host.on("request", count_withdrawals)
    form = host.get_by_role("form", name="Withdraw")
    amount = form.get_by_label("Amount in coins")
    submit = form.get_by_role("button", name="Request payout")

    # The page checks the minimum and what has matured before asking the server.
    await amount.fill("50")
    await submit.click()
    await expect(form.get_by_role("alert")).to_have_text("A payout is at least 100 coins (€3.00).")
    await amount.fill("6000")
    await submit.click()
    await expect(form.get_by_role("alert")).to_have_text("Only 5,000 coins are withdrawable now.")
    assert posts == []

    # A double click makes one request, with an Idempotency-Key.
    await amount.fill("2000")
    await expect(form.get_by_test_id("withdraw-money")).to_have_text("You receive €60.00.")
    await submit.dblclick()
    await expect(form.get_by_role("status")).to_contain_text(
        "Payout #1 of 2,000 coins (€60.00) requested."
    )
    assert len(posts) == 1
    assert posts[0].headers.get("idempotency-key")
    await expect(host.get_by_test_id("matured")).to_have_text("3,000 coins")
    await expect(host.get_by_test_id("pending")).to_have_text("2,000 coins")
    newest = host.get_by_test_id("payout").first
    await expect(newest).to_contain_text("Waiting for review")
    await expect(newest).to_contain_text("€60.00")

    # The server's refusal, in words: here one request at a time may wait for review.
    await form.get_by_role("button", name="Use all matured (3,000 coins)").click()
    await expect(amount).to_have_value("3000")
    await submit.click()
    await expect(form.get_by_role("alert")).to_have_text(
        "You have 1 payout request waiting for review. Wait until it is reviewed, then try again."
    )
    assert len(posts) == 2
    await expect(host.get_by_test_id("payout")).to_have_count(1)

    # The admin's queue: the request with its money, date and the host's history.
    await admin.get_by_role("button", name="Refresh").click()
    item = admin.get_by_test_id("review-1")
    await expect(item).to_contain_text(f"#1 · Tutor (host #{host_id})")
    await expect(item).to_contain_text("2,000 coins · €60.00")
    await expect(item).to_contain_text("Host's payouts: 1 requested (2,000 coins)")
    await admin.get_by_role("button", name="Approve payout 1").click()
    message = admin.get_by_test_id("payout-message")
    await expect(message).to_have_text(
        "Payout #1 (2,000 coins, €60.00) is approved. Pay it, then mark it paid with the reference."
    )
    await expect(admin.get_by_test_id("review-1")).to_have_count(0)  # no longer waiting

    # Paid outside callmeter: the admin records the reference.
    await admin.get_by_label("Status").select_option("approved")
    await expect(admin.get_by_test_id("review-1")).to_contain_text("Approved")
    await admin.get_by_role("button", name="Mark payout 1 paid").click()
    item = admin.get_by_test_id("review-1")
    await item.get_by_label("Payment reference").fill("BANK-2026-0001")
    await item.get_by_role("button", name="Mark paid").click()
    await expect(message).to_have_text(
        "Payout #1 (2,000 coins, €60.00) is paid, reference BANK-2026-0001."
    )
    await admin.get_by_label("Status").select_option("paid")
    await expect(admin.get_by_test_id("review-1")).to_contain_text("Reference: BANK-2026-0001")

    await host.reload()
    newest = host.get_by_test_id("payout").first
    await expect(newest).to_contain_text("Paid")
    await expect(newest).to_contain_text("Reference: BANK-2026-0001")
    await expect(host.get_by_test_id("paid")).to_have_text("2,000 coins")
    await expect(host.get_by_test_id("paid-money")).to_have_text("€60.00")
    await expect(host.get_by_test_id("pending")).to_have_text("0 coins")

    # A payment that fails gives the coins back.
    await amount.fill("1000")
    await submit.click()
    await expect(form.get_by_role("status")).to_contain_text("Payout #2 of 1,000 coins")
    await admin.get_by_label("Status").select_option("requested")
    await admin.get_by_role("button", name="Approve payout 2").click()
    await expect(message).to_contain_text("Payout #2 (1,000 coins, €30.00) is approved.")
    await admin.get_by_label("Status").select_option("approved")
    await admin.get_by_role("button", name="Mark payout 2 failed").click()
    item = admin.get_by_test_id("review-2")
    await item.get_by_label("Why the payment failed").fill("The bank account is closed")
    await item.get_by_role("button", name="Mark failed").click()
    await expect(message).to_have_text(
        "Payout #2 (1,000 coins, €30.00) failed: The bank account is closed. "
        "Its coins went back to the host."
    )

    # A rejected request gives them back too.
    await host.reload()
    await expect(host.get_by_test_id("matured")).to_have_text("3,000 coins")
    await form.get_by_role("button", name="Use all matured (3,000 coins)").click()
    await submit.click()
    await expect(form.get_by_role("status")).to_contain_text("Payout #3 of 3,000 coins (€90.00)")
    await admin.get_by_label("Status").select_option("requested")
    item = admin.get_by_test_id("review-3")
    await expect(item).to_contain_text("1 requested (3,000 coins) · 1 paid (2,000 coins)")
    await expect(item).to_contain_text("1 failed (1,000 coins)")
    await admin.get_by_role("button", name="Reject payout 3").click()
    reject = item.get_by_role("button", name="Reject payout", exact=True)
    await reject.click()  # no reason yet: the page asks for one
    await expect(message).to_have_text("Reason for rejecting: please fill it in.")
    await item.get_by_label("Reason for rejecting").fill("Please ask for smaller amounts")
    await reject.click()
    await expect(message).to_contain_text("Payout #3 (3,000 coins, €90.00) was rejected.")
    await expect(admin.get_by_role("region", name="Payouts")).to_contain_text(
        "No payouts are waiting for review."
    )
    await fits_a_phone(admin)

    # The host's page tells each outcome.
    await host.reload()
    await expect(host.get_by_test_id("payout")).to_have_count(3)
    rejected, failed, paid = (host.get_by_test_id("payout").nth(i) for i in range(3))
    await expect(rejected).to_contain_text("Rejected")
    await expect(rejected).to_contain_text("Reason: Please ask for smaller amounts")
    await expect(rejected).to_contain_text("The 3,000 coins went back to your earnings.")
    await expect(failed).to_contain_text("Payment failed")
    await expect(failed).to_contain_text("Reason: The bank account is closed")
    await expect(paid).to_contain_text("Paid")
    await expect(host.get_by_test_id("matured")).to_have_text("3,000 coins")
    await expect(host.get_by_test_id("paid")).to_have_text("2,000 coins")

    # The picture (CALLMETER_SCREENSHOTS=docs/screenshots .venv/bin/pytest tests/web -k payouts
    # refreshes docs/screenshots/earnings.png), and a phone's width.
    await amount.fill("1500")
    await host.set_viewport_size({"width": 1280, "height": 900})
    if SCREENSHOTS:
        await host.screenshot(path=f"{SCREENSHOTS}/earnings.png", full_page=True)
    await fits_a_phone(host)

    async with httpx.AsyncClient(base_url=base) as http:
        auth = {"Authorization": f"Bearer {await api_token(host)}"}
        payouts = (await http.get("/v1/payouts", headers=auth)).json()["items"]
    assert [(p["amount"], p["status"], p["reference"]) for p in payouts] == [
        (3000, "rejected", None),
        (1000, "failed", None),
        (2000, "paid", "BANK-2026-0001"),
    ]
    assert "ledger check passed" in run(env, "ledger", "check").stdout


async def test_stripe_payouts_need_an_account_then_pay_by_transfer(
    connect_server: str, stripe: StripeStandin, browser: Browser, env: dict[str, str]
) -> None:
    base = connect_server
    _, host = await logged_in(browser, base, "tutor")
    async with httpx.AsyncClient(base_url=base) as http:
        me = await http.get("/v1/me", headers={"Authorization": f"Bearer {await api_token(host)}"})
        login = {"username": "boss", "password": PASSWORD}
        admin_token = (await http.post("/v1/auth/login", json=login)).json()["access_token"]
        adjusted = await http.post(
            "/v1/admin/earnings-adjustments",
            json={"host_id": me.json()["id"], "amount": 4000, "reason": "Earned before launch"},
            headers={"Authorization": f"Bearer {admin_token}", "Idempotency-Key": "adjust-1"},
        )
        assert adjusted.status_code == 201, adjusted.text

    # No payout account yet: a button to set one up instead of the form.
    await host.goto("/earnings")
    await expect(host.get_by_test_id("matured")).to_have_text("4,000 coins")
    setup = host.get_by_role("region", name="Set up payouts")
    await expect(setup).to_contain_text("a Stripe account in your name")
    await expect(host.get_by_role("form", name="Withdraw")).to_have_count(0)

    # Stripe's hosted onboarding (the stand-in serves no page) sends the browser back.
    async def hosted_onboarding(route: Route) -> None:
        await route.fulfill(status=302, headers={"Location": f"{base}/earnings?setup=done"})

    await host.route(f"{stripe.url}/connect/**", hosted_onboarding)
    await setup.get_by_role("button", name="Set up payouts").click()
    await host.wait_for_url("**/earnings?setup=done")
    note = host.get_by_test_id("setup-note")
    await expect(note).to_contain_text("Stripe confirms them shortly")
    await expect(setup).to_be_visible()

    # Stripe's account.updated arrives: the page, polling, offers the form.
    [account_id] = list(stripe.accounts)
    delivered = await stripe.deliver(stripe.onboard(account_id), f"{base}/v1/webhooks/stripe")
    assert delivered.status_code == 200, delivered.text
    await expect(note).to_have_text(
        "Your payout account is set up: you can withdraw your earnings.", timeout=10_000
    )
    form = host.get_by_role("form", name="Withdraw")
    await expect(form).to_contain_text("Approved payouts are sent to your Stripe account.")
    await form.get_by_label("Amount in coins").fill("1,500")
    await expect(form.get_by_test_id("withdraw-money")).to_have_text("You receive €45.00.")
    await form.get_by_role("button", name="Request payout").click()
    await expect(form.get_by_role("status")).to_contain_text("Payout #1 of 1,500 coins (€45.00)")

    # Approving pays at once by transfer; its id is the reference.
    _, admin = await logged_in(browser, base, "boss")
    await admin.goto("/admin/payouts")
    await admin.get_by_role("button", name="Approve payout 1").click()
    await expect(admin.get_by_test_id("payout-message")).to_contain_text("is paid, reference")
    [transfer] = stripe.transfers.values()
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (
        4500,
        "eur",
        account_id,
    )
    await expect(admin.get_by_test_id("payout-message")).to_have_text(
        f"Payout #1 (1,500 coins, €45.00) is paid, reference {transfer['id']}."
    )
    await host.reload()
    newest = host.get_by_test_id("payout").first
    await expect(newest).to_contain_text("Paid")
    await expect(newest).to_contain_text(f"Reference: {transfer['id']}")
    await expect(host.get_by_test_id("matured")).to_have_text("2,500 coins")
    assert "ledger check passed" in run(env, "ledger", "check").stdout
