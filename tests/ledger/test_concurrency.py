"""Races that really race: many tasks (and, on PostgreSQL, several OS processes) on one wallet."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from httpx import AsyncClient

from callmeter.errors import InsufficientFunds
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import AccountKind, Role
from tests.factories import assert_ledger_ok, auth_headers, make_user, wallet_of
from tests.processes import race_processes

ROOT = Path(__file__).resolve().parents[2]


class TestConcurrentDebitsAndHolds:
    async def test_200_racing_debits_and_holds_never_overdraw(self, runtime: Runtime) -> None:
        # 1000 coins cover exactly 100 of the 200 operations of 10 coins each.
        alice = await make_user(runtime, Role.client, coins=1000)
        async with runtime.sessionmaker() as session:
            wallet_id = (await ledger.account_for_user(session, alice.id)).id
            revenue = await ledger.system_account_id(session, AccountKind.revenue)

        async def debit(i: int) -> str:
            async with runtime.sessionmaker.begin() as session:
                await ledger.transfer(
                    session,
                    debit_account_id=wallet_id,
                    credit_account_id=revenue,
                    amount=10,
                    kind=ledger.TransferKind.adjustment,
                    idempotency_key=f"debit-{i}",
                    now=runtime.clock.now(),
                )
            return "debit"

        async def hold(i: int) -> str:
            async with runtime.sessionmaker.begin() as session:
                await ledger.place_hold(
                    session, account_id=wallet_id, amount=10, reason="race", now=runtime.clock.now()
                )
            return "hold"

        async def attempt(i: int) -> str:
            try:
                return await (debit(i) if i % 2 else hold(i))
            except InsufficientFunds as exc:
                return f"refused: {exc.detail}"

        outcomes = await asyncio.gather(*(attempt(i) for i in range(200)))
        refusal = "refused: not enough coins: 10 needed"
        debits, holds, refused = (outcomes.count(k) for k in ("debit", "hold", refusal))
        assert debits + holds == 100
        assert refused == 100
        balance, held = await wallet_of(runtime, alice.id)
        assert (balance, held) == (1000 - 10 * debits, 10 * holds)
        assert balance - held == 0
        await assert_ledger_ok(runtime)


class TestConcurrentGrantsWithOneKey:
    async def test_50_concurrent_http_grants_credit_once(
        self, runtime: Runtime, client: AsyncClient
    ) -> None:
        admin = await make_user(runtime, Role.admin)
        alice = await make_user(runtime, Role.client)
        headers = {**await auth_headers(client, admin.username), "Idempotency-Key": "race-1"}
        body = {"user_id": alice.id, "amount": 70, "note": "welcome"}

        responses = await asyncio.gather(
            *(client.post("/v1/admin/grants", json=body, headers=headers) for _ in range(50))
        )
        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["transfer"]["id"] for r in responses}) == 1
        assert await wallet_of(runtime, alice.id) == (70, 0)
        await assert_ledger_ok(runtime)

    async def test_50_concurrent_service_grants_credit_once(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client)

        async def grant() -> bool:
            async with runtime.sessionmaker.begin() as session:
                result = await ledger.grant(
                    session,
                    user_id=alice.id,
                    amount=33,
                    idempotency_key="race-2",
                    now=runtime.clock.now(),
                )
                return result.created

        created = await asyncio.gather(*(grant() for _ in range(50)))
        assert sum(created) == 1
        assert await wallet_of(runtime, alice.id) == (33, 0)
        await assert_ledger_ok(runtime)

    @pytest.mark.slow
    async def test_two_processes_grant_once(
        self, runtime: Runtime, backend: str, database_url: str
    ) -> None:
        if backend != "postgresql":
            pytest.skip("the multi-process race runs against PostgreSQL")
        alice = await make_user(runtime, Role.client)
        start_at = time.time() + 2.0
        args = [database_url, str(alice.id), "race-3", "25", "25", str(start_at)]
        results = await race_processes("tests.ledger.grant_race", args)
        assert sum(r["created"] for r in results) == 1
        assert sum(r["replayed"] for r in results) == 49
        assert await wallet_of(runtime, alice.id) == (25, 0)
        await assert_ledger_ok(runtime)
