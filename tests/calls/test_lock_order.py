"""Regression, found in review: the ledger's lock order is "the call row, then the users' accounts
by id, then the platform's accounts" (ledger/service.py, docs/ledger.md). A ring ends the
stale calls of its client and of its host first (``calls.service.end_stale_calls`` ->
``end_overdue``): it locks all those calls, then ends them one after the other, and each
end locks *its* users' accounts (and revenue when it charges). With two stale calls the
second call's accounts are locked after the first call's — not in one id order across the
transaction (and after revenue, when the first end charged).

A transaction that keeps the documented order (the host's earnings, then the client's
wallet, by id — e.g. a refund of an earlier call between this client and this host,
``ledger.lock_call_accounts``) deadlocks with the ring. PostgreSQL breaks the deadlock by
failing one of them (the request retry then hides it from the client), but the lock order
is the promise that this cannot happen.

The fix: ``end_overdue`` locks every party's accounts in one statement before it ends any
of the calls (revenue, when an end charges, comes after all of them).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import Role
from tests.calls.driver import CallDriver
from tests.conftest import postgres_only
from tests.factories import assert_ledger_ok

RETRY_LOG = "callmeter.kit.retry"


async def _until_a_backend_waits_on_a_lock(runtime: Runtime) -> str:
    """Poll PostgreSQL (a condition, not a guess of how long): at most 10 s. Returns the
    waiting statement."""
    async with asyncio.timeout(10), runtime.engine.connect() as conn:
        query = text(
            "SELECT query FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        while (waiting := await conn.scalar(query)) is None:
            await conn.rollback()
            await asyncio.sleep(0.01)
        return str(waiting)


@postgres_only
async def test_a_ring_that_ends_two_stale_calls_keeps_the_lock_order(
    driver: CallDriver, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = driver.runtime
    host = await driver.party(Role.host)  # the lowest account id: its earnings
    caller = await driver.party(Role.client, coins=100)
    other_host = await driver.party(Role.host)
    other_client = await driver.party(Role.client, coins=100)
    # the caller's call and the host's call both go silent past the heartbeat timeout
    callers_call = await driver.connect(caller, other_host)
    hosts_call = await driver.connect(other_client, host)
    driver.clock.advance(runtime.settings.heartbeat_timeout_seconds + 1)
    async with runtime.sessionmaker() as session:
        earnings = (await ledger.account_for_user(session, host.user.id)).id
        wallet = (await ledger.account_for_user(session, caller.user.id)).id
    assert earnings < wallet
    caplog.set_level(logging.INFO, RETRY_LOG)

    async with runtime.sessionmaker() as documented:
        # only the ring's backend should detect the deadlock
        await documented.execute(text("SET deadlock_timeout = '30s'"))
        # the documented order, one account at a time: the host's earnings (lower id) ...
        await ledger.lock_accounts(documented, [earnings])
        ring = asyncio.create_task(
            client.post("/v1/calls", json={"host_id": host.user.id}, headers=caller.headers)
        )
        # the ring ends the caller's stale call (locking the caller's wallet), then the
        # host's, and waits for the host's earnings
        waiting = await _until_a_backend_waits_on_a_lock(runtime)
        assert "FROM accounts" in waiting, waiting
        # ... then the caller's wallet (a higher id)
        await ledger.lock_accounts(documented, [wallet])
        await documented.commit()
        r = await ring
    assert r.status_code == 201, r.text
    for call_id, party in ((callers_call, caller), (hosts_call, host)):
        assert (await driver.call(call_id, party))["status"] == "ended"
    logged = [rec.getMessage() for rec in caplog.records if rec.name == RETRY_LOG]
    assert not any("deadlock detected" in message for message in logged), logged
    await assert_ledger_ok(runtime)
