"""The web client in Debian's Chromium (Playwright), against the real server: a client and a
host in two browser contexts make a real peer-to-peer video call that the server bills; a
client with no coins buys a pack through the built-in test payment provider and calls."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.test_cli import free_port, run, start_server

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "browser-pass"
SCREENSHOTS = os.environ.get("CALLMETER_SCREENSHOTS")  # a folder: save the README's pictures
ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# The users every test starts from (name, role), with the coins granted to each client.
USERS = [
    ("poor", "client"),
    ("rich", "client"),
    ("broke", "client"),
    ("tutor", "host"),
    ("nobody", "host"),  # never opens a page: offline
    ("boss", "admin"),
]
GRANTS = [("poor", "35"), ("rich", "1000")]


@pytest.fixture(scope="session")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with :data:`USERS` and :data:`GRANTS`, made once through the
    CLI (each command a process of its own: done per test, this was most of each test's
    setup); every test starts from a copy of it."""
    folder = tmp_path_factory.mktemp("web-seed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    env.update(
        CALLMETER_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'seed.db'}",
        CALLMETER_PASSWORD_HASH_PROFILE="cheapest",
        COLUMNS="120",
    )
    run(env, "migrate")
    for name, role in USERS:
        run(env, "user", "add", name, "--role", role, "--password", PASSWORD,
            "--display-name", name.title())  # fmt: skip
    for name, coins in GRANTS:
        run(env, "coins", "grant", name, coins)
    return folder / "seed.db"


@pytest.fixture
def web_server(env: dict[str, str], tmp_path: Path, seeded_database: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (scripts/)")
    env.update(
        CALLMETER_BILLING_INTERVAL_SECONDS="2",
        CALLMETER_METER_TICK_SECONDS="0.2",
        CALLMETER_EVENTS_POLL_SECONDS="0.2",
        CALLMETER_HEARTBEAT_TIMEOUT_SECONDS="10",
        CALLMETER_HOST_PRESENCE_TIMEOUT_SECONDS="45",  # the default: hosts online by their pages
    )
    database = env["CALLMETER_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")
    for suffix in ("", "-wal", "-shm"):  # the file, and its log if one was left
        if (seeded := Path(f"{seeded_database}{suffix}")).exists():
            shutil.copyfile(seeded, f"{database}{suffix}")
    with start_server(env, tmp_path, free_port()) as base:
        yield base


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        await chromium.close()


async def logged_in(browser: Browser, base: str, username: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(base_url=base, viewport={"width": 1000, "height": 800})
    await context.grant_permissions(["camera", "microphone"])
    page = await context.new_page()
    await page.goto("/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("link", name="Home").wait_for()
    return context, page


async def start_call(
    browser: Browser, base: str, client: str, host_page: str = "Home"
) -> tuple[Page, Page, int]:
    """The host waits on ``host_page`` (a link in the header): an incoming call rings on
    every page."""
    _, host = await logged_in(browser, base, "tutor")
    await host.get_by_role("link", name=host_page).click()
    _, caller = await logged_in(browser, base, client)
    await caller.get_by_role("button", name="Call Tutor").click()
    await caller.wait_for_url("**/calls/*")
    call_id = int(caller.url.rsplit("/", 1)[1])
    dialog = host.get_by_role("alertdialog", name="Incoming call")
    await expect(dialog.get_by_test_id("caller")).to_have_text(client.title())
    await dialog.get_by_role("button", name="Accept").click()
    await host.wait_for_url(f"**/calls/{call_id}")
    return caller, host, call_id


async def remote_video_plays(page: Page) -> None:
    """Real frames: the remote <video> has a size and its clock advances."""
    video = page.get_by_test_id("remote-video")
    await page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=remote-video]');"
        " return v && v.videoWidth > 0 && v.currentTime > 0.3; }",
        timeout=30_000,
    )
    first = await video.evaluate("v => v.currentTime")
    await asyncio.sleep(0.5)
    assert await video.evaluate("v => v.videoWidth") > 0
    assert await video.evaluate("v => v.currentTime") > first


async def test_a_video_call_billed_until_the_coins_run_out(
    web_server: str, browser: Browser, env: dict[str, str]
) -> None:
    caller, host, call_id = await start_call(browser, web_server, "poor")
    await asyncio.gather(remote_video_plays(caller), remote_video_plays(host))

    # The cost meter steps at each 2-second boundary; the banner warns before the end.
    seen: list[str] = []
    banner = shot = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if await caller.get_by_test_id("end-reason").count():
            break
        # no waiting: the meter may give way to the summary between two reads
        for text in await caller.get_by_test_id("cost").all_inner_texts():
            if not seen or seen[-1] != text:
                seen.append(text)
        banner = banner or await caller.get_by_test_id("low-balance").count() > 0
        if banner and SCREENSHOTS and not shot:
            shot = True
            await host.screenshot(path=f"{SCREENSHOTS}/host-en.png", full_page=True)
            await caller.screenshot(path=f"{SCREENSHOTS}/call-en.png", full_page=True)
        await asyncio.sleep(0.1)
    assert seen[:3] == ["0 coins", "10 coins", "20 coins"], seen
    assert banner

    summary = caller.get_by_role("region", name="Call summary")
    await summary.wait_for()
    await expect(caller.get_by_test_id("end-reason")).to_contain_text("coins ran out")
    await expect(caller.get_by_test_id("charged")).to_have_text("30 coins")
    # the balance appears only once read after the final charge: never a stale figure
    await expect(caller.get_by_test_id("balance")).to_have_text("5 coins")
    await host.get_by_role("region", name="Call summary").wait_for()
    await expect(host.get_by_test_id("earned")).to_have_text("21 coins")
    # media stopped on both sides
    for page in (caller, host):
        assert await page.locator("video").count() == 0

    await caller.get_by_role("link", name="Back home").click()
    await expect(caller.get_by_test_id("balance")).to_have_text("5 coins")
    # the statement: one line per charge, with whom and for how long (not the split)
    statement = caller.get_by_role("region", name="Statement")
    await expect(statement.get_by_test_id("statement-line")).to_have_count(4)  # and the grant
    await expect(statement.get_by_test_id("statement-line").first).to_contain_text(
        "Call with Tutor, 2 s"
    )
    await expect(statement).not_to_contain_text("Call earnings")
    # fits a phone: nothing wider than the screen
    await caller.set_viewport_size({"width": 390, "height": 844})
    assert await caller.evaluate("document.documentElement.scrollWidth") <= 390

    async with httpx.AsyncClient(base_url=web_server) as http:
        token = (
            await http.post("/v1/auth/login", json={"username": "poor", "password": PASSWORD})
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        call = (await http.get(f"/v1/calls/{call_id}", headers=auth)).json()["call"]
        poor_id = (await http.get("/v1/me", headers=auth)).json()["id"]
    assert (call["end_reason"], call["billed_seconds"], call["charged"]) == (
        "insufficient_funds",
        6,
        30,
    )

    # The admin's money forms: a double click grants once and refunds once.
    _, admin = await logged_in(browser, web_server, "boss")
    grant = admin.get_by_role("form", name="Grant coins")
    await grant.get_by_label("Client user id").fill(str(poor_id))
    await grant.get_by_label("Amount").fill("7")
    await grant.get_by_role("button", name="Grant").dblclick()
    await expect(admin.get_by_role("status")).to_have_text(f"Granted 7 coins to user #{poor_id}.")
    refund = admin.get_by_role("form", name="Refund a call")
    await refund.get_by_label("Call id").fill(str(call_id))
    await refund.get_by_label("Amount").fill("10")
    await refund.get_by_label("Reason").fill("double click")
    await refund.get_by_role("button", name="Refund").dblclick()
    await expect(admin.get_by_role("status")).to_have_text(f"Refunded 10 coins on call #{call_id}.")
    async with httpx.AsyncClient(base_url=web_server) as http:
        entries = (await http.get("/v1/wallet/entries?limit=50", headers=auth)).json()["items"]
        wallet = (await http.get("/v1/wallet", headers=auth)).json()
    kinds = [e["kind"] for e in entries]
    assert kinds.count("grant") == 2, kinds  # the CLI's and the admin's one
    assert sum(e["amount"] for e in entries if e["kind"] == "refund") == 10, entries
    assert wallet["balance"] == 5 + 7 + 10
    await expect(grant.get_by_label("Amount")).to_have_value("")  # ready for the next grant
    assert "ledger check passed" in run(env, "ledger", "check").stdout

    if SCREENSHOTS:
        await admin.get_by_role("button", name="Run ledger check").click()
        await admin.get_by_test_id("ledger-ok").wait_for()
        row = admin.get_by_test_id("call-row").filter(has_text=f"#{call_id}")
        await expect(row.get_by_role("cell").nth(6)).to_have_text("10 coins")  # the list polls
        await admin.screenshot(path=f"{SCREENSHOTS}/admin-en.png", full_page=True)


async def frames_flow(page: Page, timeout_ms: float = 30_000) -> None:
    """New frames keep reaching the remote video (a frozen picture does not count)."""
    await page.evaluate("window.__frames = undefined")
    await page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=remote-video]');"
        " if (!v || !v.videoWidth) return false;"
        " const n = v.getVideoPlaybackQuality().totalVideoFrames, prev = window.__frames;"
        " window.__frames = n; return prev !== undefined && n > prev; }",
        polling=250,
        timeout=timeout_ms,
    )


async def both_see_video_within(caller: Page, host: Page, since: float, seconds: float) -> float:
    await asyncio.gather(frames_flow(caller), frames_flow(host))
    took = time.monotonic() - since
    assert took < seconds, f"video came back after {took:.1f} s"
    return took


async def a_charge_lands(page: Page) -> None:
    """The cost shown on the client's call page goes up: billing goes on."""
    cost = page.get_by_test_id("cost")
    before = await cost.inner_text()
    await expect(cost).not_to_have_text(before, timeout=10_000)


async def call_of(base: str, username: str, call_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as http:
        token = (
            await http.post("/v1/auth/login", json={"username": username, "password": PASSWORD})
        ).json()["access_token"]
        response = await http.get(
            f"/v1/calls/{call_id}", headers={"Authorization": f"Bearer {token}"}
        )
    call: dict[str, Any] = response.json()["call"]
    return call


async def test_a_call_survives_reloads_and_visits_to_other_pages(
    web_server: str, browser: Browser, env: dict[str, str]
) -> None:
    """Issue 16, "calls that survive": a reload on either side, the host leaving the call
    page and coming back, the client going home and back: the call goes on, video plays
    again within 5 s each time, and every interval is charged once."""
    caller, host, call_id = await start_call(browser, web_server, "rich", host_page="History")
    await asyncio.gather(remote_video_plays(caller), remote_video_plays(host))
    await caller.get_by_test_id("status").filter(has_text="active").wait_for()
    took: dict[str, float] = {}

    for name, page in (("client reload", caller), ("host reload", host)):
        since = time.monotonic()
        await page.reload()
        took[name] = await both_see_video_within(caller, host, since, 5)
        await a_charge_lands(caller)

    for name, page in (("host away and back", host), ("client home and back", caller)):
        await page.get_by_role("link", name="Home").click()
        await page.get_by_test_id("live-call").wait_for()  # the way back, on every page
        await page.get_by_role("link", name="History").click()
        since = time.monotonic()
        await page.get_by_role("link", name="Return to your call").click()
        await page.wait_for_url(f"**/calls/{call_id}")
        took[name] = await both_see_video_within(caller, host, since, 5)
        await a_charge_lands(caller)

    # In-call controls: the other side sees "muted" and "camera off", and their end
    await caller.get_by_role("button", name="Mute microphone").click()
    await expect(host.get_by_test_id("peer-muted")).to_be_visible()
    await caller.get_by_role("button", name="Turn camera off").click()
    await expect(host.get_by_test_id("peer-camera-off")).to_be_visible()
    await caller.get_by_role("button", name="Unmute microphone").click()
    await caller.get_by_role("button", name="Turn camera on").click()
    await expect(host.get_by_test_id("peer-muted")).to_have_count(0)
    await expect(host.get_by_test_id("peer-camera-off")).to_have_count(0)
    await expect(caller.get_by_test_id("quality")).to_contain_text("good")

    live = await call_of(web_server, "rich", call_id)
    assert live["status"] == "active", (live, took)
    await caller.get_by_role("button", name="Hang up").click()
    await caller.get_by_role("region", name="Call summary").wait_for()
    await host.get_by_role("region", name="Call summary").wait_for()
    call = await call_of(web_server, "rich", call_id)
    assert call["end_reason"] == "client_hangup", call
    # every 2-second interval of the call charged once: nothing twice, nothing skipped
    assert call["billed_seconds"] >= 8, (call, took)
    assert call["charged"] == 10 * (call["billed_seconds"] // 2), call
    assert "ledger check passed" in run(env, "ledger", "check").stdout

    # A host with no page open is offline: shown so, and a call to it is refused.
    await caller.get_by_role("link", name="Back home").click()
    await expect(caller.get_by_role("button", name="Call Nobody")).to_be_disabled()
    hosts = caller.get_by_role("region", name="Hosts")
    await expect(hosts.get_by_role("listitem").filter(has_text="Nobody")).to_contain_text("offline")
    await expect(hosts.get_by_role("listitem").filter(has_text="Tutor")).to_contain_text("online")
    async with httpx.AsyncClient(base_url=web_server) as http:
        auth = {"Authorization": f"Bearer {await api_token(caller)}"}
        listed = (await http.get("/v1/hosts", headers=auth)).json()
        nobody = next(h["id"] for h in listed if h["display_name"] == "Nobody")
        r = await http.post("/v1/calls", json={"host_id": nobody}, headers=auth)
    assert (r.status_code, r.json()["error"]) == (409, "host_offline")


async def test_a_closed_tab_ends_the_call_after_the_heartbeat_timeout(
    web_server: str, browser: Browser, env: dict[str, str]
) -> None:
    """Leaving the page does not hang up (a reload must not end the call); a tab that stays
    closed ends it once the heartbeat timeout (10 s here) passes, billed only to when the
    client was last seen."""
    caller, host, call_id = await start_call(browser, web_server, "rich")
    await asyncio.gather(remote_video_plays(caller), remote_video_plays(host))
    await caller.get_by_test_id("status").filter(has_text="active").wait_for()
    await asyncio.sleep(3)
    before = await caller.get_by_test_id("billed").inner_text()
    closed_at = time.monotonic()
    await caller.close(run_before_unload=True)

    await host.get_by_role("region", name="Call summary").wait_for(timeout=25_000)
    noticed = time.monotonic() - closed_at
    call = await call_of(web_server, "tutor", call_id)
    assert call["end_reason"] == "connection_lost", call
    assert 7 <= noticed <= 20, noticed  # the timeout, counted from the client's last beat
    minutes, seconds = before.split(":")
    shown = int(minutes) * 60 + int(seconds)
    # billed to the client's last heartbeat: at most what the page showed plus the moment
    # it took to close, never the time after
    assert call["billed_seconds"] <= shown + 2, call
    assert call["charged"] == 10 * (call["billed_seconds"] // 2)
    assert "ledger check passed" in run(env, "ledger", "check").stdout

    # The API's docs render from this server's own assets (no CDN: offline works)
    await host.goto("/docs")
    await host.locator(".opblock").first.wait_for(timeout=15_000)
    await host.goto("/redoc")
    await host.get_by_text("Pay-per-minute video calls").first.wait_for(timeout=15_000)


async def api_token(page: Page) -> str:
    """The page's own bearer token (its session lives in sessionStorage)."""
    token = await page.evaluate("JSON.parse(sessionStorage.getItem('callmeter.session')).token")
    assert isinstance(token, str)
    return token


async def test_buy_coins_with_the_test_provider_then_call(
    web_server: str, browser: Browser, env: dict[str, str]
) -> None:
    _, host = await logged_in(browser, web_server, "tutor")
    _, buyer = await logged_in(browser, web_server, "broke")
    await expect(buyer.get_by_test_id("balance")).to_have_text("0 coins")

    # No coins: the call is refused (402) and the error offers to buy some.
    await buyer.get_by_role("button", name="Call Tutor").click()
    refusal = buyer.get_by_role("region", name="Hosts").get_by_role("alert")
    await expect(refusal).to_contain_text("Not enough coins")
    await refusal.get_by_role("link", name="Buy coins").click()
    await buyer.wait_for_url("**/coins")

    # The packs: USD for an English browser, the cheapest coins marked, EUR on a switch.
    await buyer.set_viewport_size({"width": 1280, "height": 900})
    await expect(buyer.get_by_test_id("test-mode")).to_contain_text("no money moves")
    usd, eur = (buyer.get_by_role("button", name=n) for n in ("USD $", "EUR €"))
    await expect(usd).to_have_attribute("aria-pressed", "true")
    await expect(buyer.get_by_role("button", name="Buy 330 coins for $12.99")).to_be_enabled()
    await expect(buyer.get_by_test_id("pack-usd-1800")).to_contain_text("Best value")
    await eur.click()
    eur_330 = buyer.get_by_test_id("pack-eur-330")
    await expect(eur_330).to_contain_text("+30 bonus")
    await expect(eur_330).to_contain_text("€0.039 per coin")
    await expect(buyer.get_by_test_id("pack-eur-1800")).to_contain_text("Best value")
    await expect(buyer.locator(".ribbon")).to_have_count(1)

    # A cancelled checkout: nothing charged, back to the packs.
    await buyer.get_by_role("button", name="Buy 100 coins for €4.99").click()
    await buyer.wait_for_url("**/test-checkout/*")
    await buyer.get_by_role("button", name="Cancel and go back").click()
    await buyer.wait_for_url("**/coins/return?*result=cancel")
    await expect(buyer.get_by_test_id("return-state")).to_have_text(
        "Payment cancelled, nothing was charged."
    )
    await buyer.get_by_role("link", name="Back to coin packs").click()
    await buyer.wait_for_url("**/coins")
    await expect(buyer.get_by_test_id("receipt")).to_have_count(1)
    await expect(buyer.get_by_test_id("receipt").first).to_contain_text("Expired, not charged")

    # Buy: a double click opens one checkout for one purchase.
    await eur.click()
    await buyer.get_by_role("button", name="Buy 330 coins for €12.99").dblclick()
    await buyer.wait_for_url("**/test-checkout/*")
    await expect(buyer.get_by_test_id("test-banner")).to_contain_text("TEST PAYMENT")
    await expect(buyer.get_by_test_id("amount")).to_have_text("€12.99")
    await buyer.get_by_role("button", name="Pay €12.99 (test)").click()

    # Back from the checkout: the page waits for the server, then shows the coins.
    await buyer.wait_for_url("**/coins/return?*result=success")
    await expect(buyer.get_by_test_id("return-state")).to_have_text("Coins added")
    await expect(buyer.get_by_test_id("coins-added")).to_have_text(
        "330 coins were added to your wallet (300 + 30 bonus)."
    )
    await expect(buyer.get_by_test_id("balance")).to_have_text("330 coins")

    async with httpx.AsyncClient(base_url=web_server) as http:
        auth = {"Authorization": f"Bearer {await api_token(buyer)}"}
        purchases = (await http.get("/v1/purchases", headers=auth)).json()["items"]
    assert [(p["pack_id"], p["status"]) for p in purchases] == [
        ("eur-330", "paid"),
        ("eur-100", "expired"),
    ]

    # The receipts, and the picture of the page (docs/screenshots/buy-coins.png:
    # CALLMETER_SCREENSHOTS=docs/screenshots .venv/bin/pytest tests/web -k buy_coins); it
    # fits a phone too.
    await buyer.get_by_role("link", name="Buy more coins").click()
    await buyer.wait_for_url("**/coins")
    await expect(buyer.get_by_test_id("receipt")).to_have_count(2)
    newest = buyer.get_by_test_id("receipt").first
    await expect(newest).to_contain_text("Paid")
    await expect(newest).to_contain_text("330 coins (300 + 30 bonus)")
    await expect(eur).to_have_attribute("aria-pressed", "true")  # remembered
    if SCREENSHOTS:
        await buyer.screenshot(path=f"{SCREENSHOTS}/buy-coins.png", full_page=True)
    await buyer.set_viewport_size({"width": 390, "height": 844})
    assert await buyer.evaluate("document.documentElement.scrollWidth") <= 390
    await buyer.set_viewport_size({"width": 1000, "height": 800})

    # The wallet's entries say what came in; the bought coins pay for a call.
    await buyer.get_by_role("link", name="Home").click()
    entries = buyer.get_by_role("region", name="Statement")
    await expect(entries).to_contain_text("Coins bought")
    await expect(entries).to_contain_text("Bonus coins")
    await expect(buyer.get_by_test_id("balance")).to_have_text("330 coins")
    await buyer.get_by_role("button", name="Call Tutor").click()
    await buyer.wait_for_url("**/calls/*")
    call_id = int(buyer.url.rsplit("/", 1)[1])
    dialog = host.get_by_role("alertdialog", name="Incoming call")
    await dialog.get_by_role("button", name="Accept").click()
    await host.wait_for_url(f"**/calls/{call_id}")
    await asyncio.gather(remote_video_plays(buyer), remote_video_plays(host))
    await expect(buyer.get_by_test_id("cost")).to_have_text("10 coins", timeout=15_000)
    await buyer.get_by_role("button", name="Hang up").click()
    await buyer.get_by_role("region", name="Call summary").wait_for()
    charged = int((await buyer.get_by_test_id("charged").inner_text()).split()[0])
    assert charged >= 10
    await expect(buyer.get_by_test_id("balance")).to_have_text(f"{330 - charged} coins")
    assert "ledger check passed" in run(env, "ledger", "check").stdout


PAGES = {
    "rich": ["Home", "Buy coins", "History"],
    "tutor": ["Home", "Earnings", "History"],
    "boss": ["Admin", "Payouts"],
}


async def test_a_profile_clients_find_and_every_page_fits_a_phone(
    web_server: str, browser: Browser
) -> None:
    """Issue 16: a host's profile (picture, bio, languages, topics) is what clients search;
    and nothing is wider than a 390 px screen, on any page of any role (the history table
    overflowed), a long bio included."""
    context, tutor = await logged_in(browser, web_server, "tutor")
    profile = tutor.get_by_role("region", name="Profile")
    await profile.get_by_label("About you").fill("Profesora de matemáticas " * 20)
    await profile.get_by_label("Languages").fill("es, EN")
    await profile.get_by_label("Topics").fill("algebra, calculus")
    await profile.get_by_role("button", name="Save profile").click()
    await expect(profile.get_by_role("status")).to_have_text("Profile saved.")
    picture = io.BytesIO()
    Image.new("RGB", (640, 480), (20, 120, 200)).save(picture, format="PNG")
    await profile.locator("input[type=file]").set_input_files(
        files=[{"name": "me.png", "mimeType": "image/png", "buffer": picture.getvalue()}]
    )
    await expect(profile.get_by_role("status")).to_have_text("Picture saved.")
    await context.close()

    context, client = await logged_in(browser, web_server, "rich")
    hosts = client.get_by_role("region", name="Hosts")
    tutor_card = hosts.get_by_test_id("host").filter(has_text="Tutor")
    await expect(tutor_card).to_contain_text("ES · EN · algebra · calculus")
    await client.wait_for_function(
        "() => [...document.querySelectorAll('.hosts img.avatar')]"
        ".some(i => i.complete && i.naturalWidth === 256)"
    )
    await hosts.get_by_label("Speaks").select_option("es")
    await expect(hosts.get_by_test_id("host")).to_have_count(1)  # not Nobody
    await hosts.get_by_label("Topic").fill("chess")
    await expect(hosts.get_by_test_id("host")).to_have_count(0)
    await context.close()

    wide: list[str] = []
    for username, links in PAGES.items():
        context, page = await logged_in(browser, web_server, username)
        await page.set_viewport_size({"width": 390, "height": 844})
        for name in links:
            await (
                page.get_by_role("navigation", name="main")
                .get_by_role("link", name=name, exact=True)
                .click()
            )
            await page.wait_for_load_state("networkidle")
            fits = await page.evaluate(
                "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
            )
            if not fits:
                wide.append(f"{username}: {name} ({page.url})")
            if SCREENSHOTS:
                await page.screenshot(path=f"{SCREENSHOTS}/phone-{username}-{name}.png")
        await context.close()
    assert not wide, wide


# English that must not show on a Spanish page (its text, and what a screen reader says:
# aria-label, title, placeholder, alt). Whole words, any case; names ("Tutor", "Rich"),
# codes ("EUR", "US$") and the language picker's "English" are no leak.
ENGLISH = (
    "coin", "coins", "balance", "held", "available", "hang up", "status", "call", "calls",
    "call with", "loading", "buy", "grant", "granted", "refund", "refunded", "history",
    "log out", "home", "host", "hosts", "client", "admin", "statement", "wallet", "summary",
    "accept", "decline", "incoming", "duration", "charged", "earned", "earnings", "payout",
    "payouts", "search", "find", "topic", "speaks", "online", "offline", "away", "busy",
    "next charge", "rate", "mute", "camera", "microphone", "show older", "download", "users",
    "amount", "reason", "ledger", "check", "paid", "pay", "cancel", "cancelled", "test payment",
    "best value", "bonus", "price", "problems", "not found", "page", "minute", "minutes",
    "seconds", "active", "ended", "ringing", "connecting", "hung up", "ran out", "accounts",
    "transfers", "issued", "wallets", "revenue", "losses", "purchased", "shortfalls", "main",
    "the", "and", "you", "your", "with", "for", "not", "was", "back", "more", "waiting",
    "review", "added", "nothing", "please", "try again", "failed",
)  # fmt: skip
LEAK = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in ENGLISH) + r")\b", re.IGNORECASE)
READ = """() => [
    document.title, document.body.innerText,
    ...[...document.querySelectorAll('[aria-label],[title],[placeholder],[alt]')].flatMap(
        e => ['aria-label', 'title', 'placeholder', 'alt'].map(a => e.getAttribute(a) ?? ''))
].join('\\n')"""


async def in_spanish(page: Page, where: str) -> None:
    """The page is declared Spanish and no English shows on it."""
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    text = await page.evaluate(READ)
    leaks = sorted({m.group(0) for m in LEAK.finditer(text)}, key=str.lower)
    assert not leaks, f"English on the Spanish {where} page: {leaks}\n{text}"


async def logged_in_in_spanish(
    browser: Browser, base: str, username: str
) -> tuple[BrowserContext, Page]:
    """A browser set to English (Playwright's default); the user picks Español on the
    login page."""
    context = await browser.new_context(base_url=base, viewport={"width": 1000, "height": 800})
    await context.grant_permissions(["camera", "microphone"])
    page = await context.new_page()
    await page.goto("/")
    await page.get_by_label("Language").select_option("es")
    await expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    await in_spanish(page, "login")
    await page.get_by_label("Usuario").fill(username)
    await page.get_by_label("Contraseña").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.get_by_role("link", name="Inicio").wait_for()
    return context, page


async def test_the_whole_client_flow_in_spanish_and_the_choice_is_kept(
    web_server: str, browser: Browser, env: dict[str, str]
) -> None:
    """Issue 16, "Spanish and English": a host and a client pick Español on the login page;
    the client calls, both see video, the call is billed, the client hangs up, reads the
    summary, statement and history, buys coins; an admin grants, refunds and checks the
    ledger: every page reads in Spanish, with no English left on it. The choice is kept on
    the user: the next login, from a browser set to English, is in Spanish too."""
    started = time.monotonic()
    _, host = await logged_in_in_spanish(browser, web_server, "tutor")
    await in_spanish(host, "host home")
    _, client = await logged_in_in_spanish(browser, web_server, "rich")
    await expect(client.get_by_role("region", name="Monedero")).to_contain_text("1000 monedas")
    hosts = client.get_by_role("region", name="Anfitriones")
    await expect(hosts).to_contain_text("desconectado")  # Nobody never opened a page
    await expect(hosts.get_by_test_id("host").filter(has_text="Tutor")).to_contain_text("en línea")
    await expect(client.get_by_role("region", name="Movimientos")).to_be_visible()
    await in_spanish(client, "client home")
    if SCREENSHOTS:
        await client.screenshot(path=f"{SCREENSHOTS}/client-home-es.png", full_page=True)

    # The call: it rings in Spanish, both see video, the meter counts in monedas.
    await client.get_by_role("button", name="Llamar a Tutor").click()
    await client.wait_for_url("**/calls/*")
    call_id = int(client.url.rsplit("/", 1)[1])
    dialog = host.get_by_role("alertdialog", name="Llamada entrante")
    await expect(dialog.get_by_test_id("caller")).to_have_text("Rich")
    await expect(dialog.get_by_test_id("incoming-text")).to_contain_text("te llama: 10 monedas")
    await in_spanish(host, "incoming call")
    await dialog.get_by_role("button", name="Aceptar").click()
    await host.wait_for_url(f"**/calls/{call_id}")
    await asyncio.gather(remote_video_plays(client), remote_video_plays(host))
    for page in (client, host):
        await expect(page.get_by_test_id("status")).to_have_text("en curso")
    await expect(client.get_by_role("button", name="Colgar")).to_be_visible()
    await expect(client.get_by_test_id("cost")).to_have_text(
        re.compile(r"^[1-9][0-9]* monedas$"), timeout=15_000
    )  # a charge landed
    await expect(host.get_by_test_id("cost")).to_have_text(re.compile(r"^[1-9][0-9]* monedas$"))
    await in_spanish(client, "client's call")
    await in_spanish(host, "host's call")
    if SCREENSHOTS:
        await host.screenshot(path=f"{SCREENSHOTS}/host-es.png", full_page=True)
        await client.screenshot(path=f"{SCREENSHOTS}/call-es.png", full_page=True)
    call_took = time.monotonic() - started

    await client.get_by_role("button", name="Colgar").click()
    summary = client.get_by_role("region", name="Resumen de la llamada")
    await expect(summary.get_by_test_id("end-reason")).to_have_text(
        "La llamada terminó porque el cliente colgó."
    )
    await expect(summary.get_by_test_id("charged")).to_have_text(
        re.compile(r"^[1-9][0-9]* monedas$")
    )
    charged = int((await summary.get_by_test_id("charged").inner_text()).split()[0])
    await expect(summary.get_by_test_id("balance")).to_have_text(f"{1000 - charged} monedas")
    await in_spanish(client, "client's call summary")
    host_summary = host.get_by_role("region", name="Resumen de la llamada")
    await expect(host_summary.get_by_test_id("earned")).to_have_text(
        re.compile(r"^[0-9]+ monedas$")
    )
    await in_spanish(host, "host's call summary")

    # The statement and the history say what the call was, in Spanish.
    await client.get_by_role("link", name="Volver al inicio").click()
    statement = client.get_by_role("region", name="Movimientos")
    await expect(statement.get_by_test_id("statement-line").first).to_contain_text(
        re.compile(r"Llamada con Tutor, [0-9]+ s")
    )
    await in_spanish(client, "statement")
    await client.get_by_role("navigation").get_by_role("link", name="Historial").click()
    await expect(client.get_by_role("heading", name="Historial de llamadas")).to_be_visible()
    await expect(client.get_by_role("row").filter(has_text=f"#{call_id}")).to_contain_text(
        "el cliente colgó"
    )
    await in_spanish(client, "history")
    await host.get_by_role("link", name="Volver al inicio").click()
    await expect(host.get_by_role("region", name="Perfil")).to_be_visible()
    await in_spanish(host, "host home after the call")
    await host.get_by_role("navigation").get_by_role("link", name="Ganancias").click()
    await expect(host.get_by_role("heading", name="Ganancias")).to_be_visible()
    await in_spanish(host, "earnings")

    # Buying coins: prices written the Spanish way, in dollars (this browser is English) or
    # in euros; the test checkout and the way back in Spanish too.
    await client.get_by_role("navigation").get_by_role("link", name="Comprar monedas").click()
    await expect(client.get_by_role("heading", name="Comprar monedas")).to_be_visible()
    await expect(client.get_by_test_id("test-mode")).to_contain_text("no se mueve dinero")
    await expect(
        client.get_by_role("button", name="Comprar 330 monedas por 12,99 US$")
    ).to_be_enabled()
    await client.get_by_role("button", name="EUR €").click()
    await expect(
        client.get_by_role("button", name="Comprar 330 monedas por 12,99 €")
    ).to_be_enabled()
    eur_330 = client.get_by_test_id("pack-eur-330")
    await expect(eur_330).to_contain_text("12,99 €")
    await expect(eur_330).to_contain_text("+30 de regalo")
    await expect(eur_330).to_contain_text("0,039 € por moneda")
    await expect(client.get_by_test_id("pack-eur-1800")).to_contain_text("Mejor precio")
    await in_spanish(client, "buy coins")
    await client.get_by_role("button", name="Comprar 100 monedas por 4,99 €").click()
    await client.wait_for_url("**/test-checkout/*")
    await expect(client.get_by_test_id("test-banner")).to_contain_text("PAGO DE PRUEBA")
    await expect(client.get_by_test_id("amount")).to_have_text("4,99 €")
    await in_spanish(client, "test checkout")
    await client.get_by_role("button", name="Pagar 4,99 € (prueba)").click()
    await client.wait_for_url("**/coins/return?*result=success")
    await expect(client.get_by_test_id("return-state")).to_have_text("Monedas añadidas")
    await expect(client.get_by_test_id("coins-added")).to_have_text(
        "Se añadieron 100 monedas a tu monedero."
    )
    await expect(client.get_by_test_id("balance")).to_have_text(f"{1100 - charged} monedas")
    await in_spanish(client, "checkout return")
    await client.get_by_role("link", name="Comprar más monedas").click()
    await expect(client.get_by_test_id("receipt").first).to_contain_text("Pagada")
    await in_spanish(client, "buy coins, with a receipt")

    # The admin, in Spanish: grants, refunds part of the call, checks the ledger.
    rich = (await call_of(web_server, "rich", call_id))["client_id"]
    _, admin = await logged_in_in_spanish(browser, web_server, "boss")
    grant = admin.get_by_role("form", name="Otorgar monedas")
    await grant.get_by_label("Id de usuario del cliente").fill(str(rich))
    await grant.get_by_label("Cantidad").fill("7")
    await grant.get_by_role("button", name="Otorgar", exact=True).click()
    await expect(admin.get_by_role("status")).to_have_text(
        f"Se otorgaron 7 monedas al usuario #{rich}."
    )
    refund = admin.get_by_role("form", name="Reembolsar una llamada")
    await refund.get_by_label("Id de llamada").fill(str(call_id))
    await refund.get_by_label("Cantidad").fill("10")
    await refund.get_by_label("Motivo").fill("prueba")
    await refund.get_by_role("button", name="Reembolsar", exact=True).click()
    await expect(admin.get_by_role("status")).to_have_text(
        f"Se reembolsaron 10 monedas de la llamada #{call_id}."
    )
    await admin.get_by_role("button", name="Comprobar el libro mayor").click()
    await expect(admin.get_by_test_id("ledger-ok")).to_have_text(
        "Se cumplen todos los invariantes."
    )
    row = admin.get_by_test_id("call-row").filter(has_text=f"#{call_id}")
    await expect(row).to_contain_text("terminada (el cliente colgó)")
    await expect(row.get_by_role("cell").nth(6)).to_have_text("10 monedas")  # the list polls
    await in_spanish(admin, "admin")
    if SCREENSHOTS:
        await admin.screenshot(path=f"{SCREENSHOTS}/admin-es.png", full_page=True)
    await admin.get_by_role("navigation").get_by_role("link", name="Pagos").click()
    await expect(admin.get_by_role("heading", name="Pagos")).to_be_visible()
    await in_spanish(admin, "payouts queue")
    assert "ledger check passed" in run(env, "ledger", "check").stdout
    spanish_took = time.monotonic() - started
    print(f"call with a charge: {call_took:.1f} s, the Spanish flow: {spanish_took:.1f} s")

    # another browser, in English: the user's choice comes with the login
    english = await browser.new_context(
        base_url=web_server, viewport={"width": 1000, "height": 800}
    )
    again = await english.new_page()
    await again.goto("/")
    await again.get_by_label("Username").fill("rich")  # this browser has not chosen: English
    await again.get_by_label("Password").fill(PASSWORD)
    await again.get_by_role("button", name="Log in").click()
    await expect(again.get_by_role("link", name="Inicio")).to_be_visible()
    await expect(again.get_by_label("Idioma")).to_have_value("es")
    await in_spanish(again, "client home, in an English browser")
    await again.get_by_label("Idioma").select_option("en")
    await expect(again.get_by_role("link", name="Home")).to_be_visible()
    await expect(again.locator("html")).to_have_attribute("lang", "en")
    await expect(again.get_by_test_id("balance")).to_have_text(f"{1117 - charged:,} coins")
    await expect(again.get_by_role("region", name="Statement")).to_contain_text("Call with Tutor")
    await expect(again.get_by_role("region", name="Hosts")).to_contain_text("Nobody")
    if SCREENSHOTS:
        await again.screenshot(path=f"{SCREENSHOTS}/client-home-en.png", full_page=True)


HOSTILE = '<img src=x onerror="window.__owned=1"><script>window.__owned=2</script>'


async def test_chat_and_a_tip_during_a_real_call_and_the_receipt(
    web_server: str, browser: Browser, env: dict[str, str]
) -> None:
    """Issue 17: the two parties of a real call chat (each line reaches the other through
    the server's stream), markup typed by one is inert text for the other, a phone's
    closed chat counts what it missed, the client tips once however often Yes is clicked,
    and the receipt lists the charges and the tip with the transcript."""
    caller, host, call_id = await start_call(browser, web_server, "rich")
    await asyncio.gather(remote_video_plays(caller), remote_video_plays(host))
    caller_chat = caller.get_by_role("region", name="Chat")
    host_chat = host.get_by_role("region", name="Chat")
    await expect(caller_chat.get_by_test_id("chat-line").first).to_have_text(
        re.compile("The call connected.")
    )

    await caller_chat.get_by_label("Write a message").fill("Hola, ¿me oyes?\nSegunda línea")
    await caller_chat.get_by_label("Write a message").press("Enter")
    await expect(host_chat.get_by_test_id("chat-line").filter(has_text="me oyes")).to_have_count(1)
    await host_chat.get_by_label("Write a message").fill(HOSTILE + " https://example.com/x")
    await host_chat.get_by_role("button", name="Send").click()
    hostile = caller_chat.get_by_test_id("chat-line").filter(has_text="onerror")
    await expect(hostile).to_contain_text(HOSTILE)  # shown as typed, as text
    await expect(hostile.get_by_role("link")).to_have_attribute("href", "https://example.com/x")
    for page in (caller, host):
        assert await page.locator(".chat-log img, .chat-log script").count() == 0
        assert await page.evaluate("window.__owned") is None

    # a phone: the chat starts closed and counts what arrives meanwhile
    await host.set_viewport_size({"width": 390, "height": 844})
    await host.reload()
    await host.get_by_role("button", name="Chat").wait_for()
    await caller_chat.get_by_label("Write a message").fill("¿Sigues ahí?")
    await caller_chat.get_by_label("Write a message").press("Enter")
    await expect(host.get_by_test_id("unread")).to_have_text("1")
    assert await host.evaluate("document.documentElement.scrollWidth") <= 390
    await host.get_by_role("button", name="Chat").click()
    await expect(host.get_by_test_id("unread")).to_have_count(0)
    await expect(
        host.get_by_role("region", name="Chat").get_by_text("¿Sigues ahí?")
    ).to_be_visible()

    # a tip: asked first, sent once however often Yes is clicked
    await caller_chat.get_by_role("button", name="50 coins").click()
    await caller_chat.get_by_role("button", name="Yes, tip").dblclick()
    await expect(caller_chat.get_by_role("status")).to_have_text(
        "Thank you: 50 coins sent to the host."
    )
    await expect(
        host.get_by_role("region", name="Chat")
        .get_by_test_id("chat-line")
        .filter(has_text="Client tipped 50 coins.")
    ).to_have_count(1)
    await a_charge_lands(caller)  # the meter's charges are in the chat too
    await expect(
        caller_chat.get_by_test_id("chat-line").filter(has_text="Charged 10 coins.").first
    ).to_be_visible()
    if SCREENSHOTS:
        await caller.screenshot(path=f"{SCREENSHOTS}/call-chat.png", full_page=True)

    await caller.get_by_role("button", name="Hang up").click()
    summary = caller.get_by_role("region", name="Call summary")
    await expect(summary.get_by_role("region", name="Chat")).to_contain_text(
        "The call ended: the client hung up."
    )
    await summary.get_by_role("link", name="Receipt").click()
    receipt = caller.get_by_role("article", name="Receipt")
    await expect(receipt.get_by_test_id("receipt-tipped")).to_have_text("50 coins")
    await expect(receipt.get_by_test_id("receipt-host")).to_have_text("Tutor")
    charged = await receipt.get_by_test_id("receipt-charged").inner_text()
    await receipt.get_by_role("button", name="Show the chat").click()
    transcript = receipt.get_by_test_id("transcript")
    await expect(transcript).to_contain_text("Tutor: " + HOSTILE)
    await expect(transcript).to_contain_text("You tipped 50 coins.")
    assert await caller.locator(".receipt img, .receipt script").count() == 0
    await caller.set_viewport_size({"width": 390, "height": 844})  # a receipt on a phone
    assert await caller.evaluate("document.documentElement.scrollWidth") <= 390

    call = await call_of(web_server, "rich", call_id)
    assert charged == f"{call['charged']} coins"
    async with httpx.AsyncClient(base_url=web_server) as http:
        auth = {"Authorization": f"Bearer {await api_token(caller)}"}
        chat = (await http.get(f"/v1/calls/{call_id}/messages?limit=200", headers=auth)).json()
    said = [m for m in chat["items"] if m["kind"] != "system"]
    assert [m["kind"] for m in said] == ["text", "text", "text", "tip"], said
    assert said[-1]["amount"] == 50
    assert "ledger check passed" in run(env, "ledger", "check").stdout
