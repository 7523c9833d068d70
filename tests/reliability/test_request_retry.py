"""HTTP requests retry lost races like the meter (callmeter/kit/retry.py): a request whose
transaction loses a serialization failure, a deadlock or a compare-and-set is rolled back and
run again; when every attempt loses, 503 ``retry_later`` with Retry-After — never a 500.

Injected failures on SQLite and PostgreSQL, and races that really race on PostgreSQL: many
concurrent grants and refunds on the same accounts in SERIALIZABLE transactions, and a real
deadlock against a transaction that locks the accounts in the opposite order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from callmeter.errors import ConcurrentUpdate
from callmeter.kit.db import create_sessionmaker
from callmeter.kit.retry import REQUEST_ATTEMPTS
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import Account, AccountKind, Role, Transfer
from tests.calls.driver import CallDriver
from tests.conftest import postgres_only
from tests.factories import assert_ledger_ok, auth_headers, make_user, wallet_of

RETRY_LOG = "callmeter.kit.retry"


class _PgError(Exception):
    """What asyncpg's errors carry: the SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def lost_race(kind: str) -> Exception:
    if kind == "serialization_failure":
        return DBAPIError("UPDATE accounts …", None, _PgError("40001"))
    if kind == "deadlock":
        return DBAPIError("UPDATE accounts …", None, _PgError("40P01"))
    return ConcurrentUpdate()


@pytest.fixture
async def admin_headers(runtime: Runtime, client: AsyncClient) -> dict[str, str]:
    admin = await make_user(runtime, Role.admin)
    return await auth_headers(client, admin.username)


def failing_grant(monkeypatch: pytest.MonkeyPatch, kind: str, failures: int) -> list[int]:
    """``ledger.grant`` does its work, then loses a race the first ``failures`` times;
    returns the list of attempts (one entry per call)."""
    real: Callable[..., Awaitable[Any]] = ledger.grant
    attempts: list[int] = []

    async def grant(session: Any, **kwargs: Any) -> Any:
        result = await real(session, **kwargs)  # written, and then lost: must roll back
        attempts.append(len(attempts) + 1)
        if len(attempts) <= failures:
            raise lost_race(kind)
        return result

    monkeypatch.setattr(ledger, "grant", grant)
    return attempts


async def transfers(runtime: Runtime) -> int:
    async with runtime.sessionmaker() as session:
        return len((await session.execute(select(Transfer.id))).all())


@pytest.mark.parametrize("kind", ["serialization_failure", "deadlock", "concurrent_update"])
async def test_a_lost_race_is_run_again_and_succeeds(
    runtime: Runtime,
    client: AsyncClient,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    alice = await make_user(runtime, Role.client)
    before = await transfers(runtime)
    attempts = failing_grant(monkeypatch, kind, failures=REQUEST_ATTEMPTS - 1)
    caplog.set_level(logging.INFO, RETRY_LOG)
    r = await client.post(
        "/v1/admin/grants",
        json={"user_id": alice.id, "amount": 25},
        headers={**admin_headers, "Idempotency-Key": "g1"},
    )
    assert r.status_code == 201, r.text
    assert attempts == list(range(1, REQUEST_ATTEMPTS + 1))
    logged = [rec.getMessage() for rec in caplog.records if rec.name == RETRY_LOG]
    assert len(logged) == REQUEST_ATTEMPTS
    assert logged[-1] == f"POST /v1/admin/grants passed on attempt {REQUEST_ATTEMPTS}"
    # the attempts that lost wrote nothing: one transfer, one credit, one stored response
    assert await transfers(runtime) == before + 1
    assert await wallet_of(runtime, alice.id) == (25, 0)
    again = await client.post(
        "/v1/admin/grants",
        json={"user_id": alice.id, "amount": 25},
        headers={**admin_headers, "Idempotency-Key": "g1"},
    )
    assert again.json() == r.json()
    await assert_ledger_ok(runtime)


@pytest.mark.parametrize("kind", ["serialization_failure", "concurrent_update"])
async def test_losing_every_attempt_is_503_retry_later(
    runtime: Runtime,
    client: AsyncClient,
    admin_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    alice = await make_user(runtime, Role.client)
    before = await transfers(runtime)
    attempts = failing_grant(monkeypatch, kind, failures=REQUEST_ATTEMPTS)
    r = await client.post(
        "/v1/admin/grants",
        json={"user_id": alice.id, "amount": 25},
        headers={**admin_headers, "Idempotency-Key": "g1"},
    )
    assert r.status_code == 503
    assert r.json()["error"] == "retry_later"
    assert r.headers["Retry-After"] == "1"
    assert len(attempts) == REQUEST_ATTEMPTS
    assert await transfers(runtime) == before
    assert await wallet_of(runtime, alice.id) == (0, 0)
    # the key was not spent: the client's retry is the first success
    monkeypatch.undo()
    again = await client.post(
        "/v1/admin/grants",
        json={"user_id": alice.id, "amount": 25},
        headers={**admin_headers, "Idempotency-Key": "g1"},
    )
    assert again.status_code == 201, again.text
    assert await wallet_of(runtime, alice.id) == (25, 0)


# --- races that really race (PostgreSQL) --------------------------------------------------


def _outcome(r: Response) -> str:
    if r.status_code < 400:
        return str(r.status_code)
    return f"{r.status_code} {r.json().get('error')}"


@postgres_only
async def test_racing_grants_and_refunds_in_serializable_transactions(
    driver: CallDriver,
    client: AsyncClient,
    admin_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Run every request SERIALIZABLE (as a database whose default isolation is raised
    would): 30 concurrent grants and refunds (as many as the pool has connections, so that
    none waits for one) on three wallets, one host's earnings and the shared issuance and
    revenue accounts lose real serialization failures. None is a 5xx but 503 retry_later;
    the ones retried succeed; resent 503s apply once."""
    runtime = driver.runtime
    host = await driver.party(Role.host)
    callers = [await driver.party(Role.client, coins=1000) for _ in range(3)]
    ended = []
    for caller in callers:
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=120, step=10)  # 2 minutes: 20 coins
        await driver.post(f"/v1/calls/{call_id}/end", caller)
        ended.append(call_id)
    runtime.sessionmaker = create_sessionmaker(
        runtime.engine.execution_options(isolation_level="SERIALIZABLE")
    )
    caplog.set_level(logging.INFO, RETRY_LOG)

    def request(i: int) -> Awaitable[Response]:
        n = i % 3
        headers = {**admin_headers, "Idempotency-Key": f"k{i}"}
        if i % 2:
            body = {"user_id": callers[n].user.id, "amount": 1}
            return client.post("/v1/admin/grants", json=body, headers=headers)
        body = {"amount": 1, "reason": "race"}
        return client.post(f"/v1/admin/calls/{ended[n]}/refund", json=body, headers=headers)

    responses = await asyncio.gather(*(request(i) for i in range(30)))
    outcomes = Counter(_outcome(r) for r in responses)
    logged = [rec.getMessage() for rec in caplog.records if rec.name == RETRY_LOG]
    retries = sum(message.startswith("retrying") for message in logged)
    passed_again = sum(" passed on attempt " in message for message in logged)
    print(f"\n{outcomes}; {retries} retries, {passed_again} requests passed on a retry")
    assert set(outcomes) <= {"200", "201", "503 retry_later"}, outcomes
    assert retries > 0, "no race was lost: the test did not race"
    assert passed_again > 0
    # a client resends what was answered 503 (same key) until it passes
    pending = [i for i, r in enumerate(responses) if r.status_code == 503]
    while pending:
        again = await asyncio.gather(*(request(i) for i in pending))
        assert {_outcome(r) for r in again} <= {"200", "201", "503 retry_later"}
        pending = [i for i, r in zip(pending, again, strict=True) if r.status_code == 503]
    # each wallet: 1000, minus 20 charged, plus 5 grants and 5 refunds of 1
    for caller in callers:
        assert await driver.wallet(caller) == (990, 0)
    await assert_ledger_ok(runtime)


@postgres_only
async def test_a_real_deadlock_is_retried(
    runtime: Runtime,
    client: AsyncClient,
    admin_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """READ COMMITTED, as deployed. Another transaction (an operator's script, say) locks
    the issuance account, then the wallet; a grant in between has locked the wallet (the
    ledger locks users' accounts first, then the platform's) and waits for the issuance
    account. PostgreSQL breaks
    the deadlock by failing the grant's transaction (the grant waited longest); the request
    runs again once the other transaction is done, and succeeds."""
    alice = await make_user(runtime, Role.client)
    async with runtime.sessionmaker() as session:
        wallet = (await ledger.account_for_user(session, alice.id)).id
        issuance = await ledger.system_account_id(session, AccountKind.issuance)
    caplog.set_level(logging.INFO, RETRY_LOG)
    async with runtime.engine.connect() as other:
        # only the grant's backend should detect the deadlock, and fail
        await other.execute(text("SET deadlock_timeout = '30s'"))
        # FOR NO KEY UPDATE: the grant's foreign-key checks pass, its UPDATE of the wallet waits
        locked = select(Account.id).with_for_update(key_share=True)
        await other.execute(locked.where(Account.id == issuance))
        grant = asyncio.create_task(
            client.post(
                "/v1/admin/grants",
                json={"user_id": alice.id, "amount": 5},
                headers={**admin_headers, "Idempotency-Key": "dl"},
            )
        )
        await _until_a_backend_waits_on_a_lock(runtime)
        # the opposite order: wait for the wallet the grant holds
        await other.execute(locked.where(Account.id == wallet))
        await other.commit()
        r = await grant
    assert r.status_code == 201, r.text
    logged = [rec.getMessage() for rec in caplog.records if rec.name == RETRY_LOG]
    assert len(logged) == 2
    assert "deadlock detected" in logged[0]
    assert logged[1] == "POST /v1/admin/grants passed on attempt 2"
    assert await wallet_of(runtime, alice.id) == (5, 0)
    await assert_ledger_ok(runtime)


async def _until_a_backend_waits_on_a_lock(runtime: Runtime) -> None:
    """Poll PostgreSQL (a condition, not a guess of how long): at most 10 s."""
    async with asyncio.timeout(10), runtime.engine.connect() as conn:
        query = text(
            "SELECT COUNT(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        while not await conn.scalar(query):
            await conn.rollback()  # a fresh snapshot of pg_stat_activity
            await asyncio.sleep(0.01)
