"""`callmeter purchases reconcile`: paid checkouts whose webhook never came are fulfilled,
once, by the same code as the webhook."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest
from httpx import AsyncClient

from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.payments.provider import provider
from callmeter.payments.reconcile import reconcile
from tests.payments.conftest import Buyer, make_buyer
from tests.payments.stripe_standin import SECRET_KEY, WEBHOOK_SECRET, StripeStandin

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
def clock() -> ManualClock:
    # reconcile asks Stripe for sessions created since a moment before *now*
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


async def _three_paid_one_delivered(
    client: AsyncClient, runtime: Runtime, standin: StripeStandin
) -> Buyer:
    buyer = await make_buyer(client, runtime)
    sessions = []
    for _ in range(3):
        r = await buyer.buy("eur-330")
        assert r.status_code == 201, r.text
        sessions.append(next(s for s in standin.sessions if s not in sessions))
    events = [standin.complete(s) for s in sessions]
    r = await standin.deliver(events[0], "/v1/webhooks/stripe", client=client)
    assert r.json()["outcome"] == "fulfilled"
    assert await buyer.wallet() == (330, 0)
    return buyer


async def test_reconcile_fulfils_what_the_webhook_missed_once(
    stripe_client: AsyncClient, stripe_runtime: Runtime, stripe_standin: StripeStandin
) -> None:
    buyer = await _three_paid_one_delivered(stripe_client, stripe_runtime, stripe_standin)
    stripe_standin.fail("GET /v1/checkout/sessions", times=1, status=500)  # retried
    since = stripe_runtime.clock.now() - timedelta(days=3)
    first = await reconcile(stripe_runtime, provider(stripe_runtime), since)
    assert (first.seen, len(first.fulfilled), first.already) == (3, 2, 1)
    again = await reconcile(stripe_runtime, provider(stripe_runtime), since)
    assert (again.seen, len(again.fulfilled), again.already) == (3, 0, 3)
    assert await buyer.wallet() == (990, 0)
    await buyer.ledger_ok()


async def test_the_cli_reconciles_with_a_progress_report(
    stripe_client: AsyncClient, stripe_runtime: Runtime, stripe_standin: StripeStandin,
    backend: str,
) -> None:  # fmt: skip
    if backend != "sqlite":
        pytest.skip("the command runs once, against the SQLite file")
    buyer = await _three_paid_one_delivered(stripe_client, stripe_runtime, stripe_standin)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    environ.update(
        CALLMETER_DATABASE_URL=stripe_runtime.settings.database_url,
        CALLMETER_STRIPE_SECRET_KEY=SECRET_KEY,
        CALLMETER_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CALLMETER_STRIPE_API_BASE=stripe_standin.url,
        COLUMNS="120",
        PYTHONWARNINGS="ignore::DeprecationWarning",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callmeter", "purchases", "reconcile", "--since", "2d",
        env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip  # the stand-in answers from this event loop while the command runs
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert "fulfilled now" in text, text
    assert text.count("fulfilled purchase") == 2, text
    assert await buyer.wallet() == (990, 0)
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callmeter", "purchases", "reconcile", "--since", "5y",
        env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await bad.communicate()
    assert bad.returncode == 2
    assert b"3d, 12h or 90m" in err
    await buyer.ledger_ok()
