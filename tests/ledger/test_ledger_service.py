"""The ledger service on a real database: transfers, idempotency, holds, immutability."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from callmeter.errors import IdempotencyConflict, InsufficientFunds, LedgerError
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.ledger.check import check_ledger
from callmeter.models import AccountKind, Posting, Role
from tests.factories import assert_ledger_ok, make_user, wallet_of


class TestGrant:
    async def test_credits_the_wallet_with_two_postings(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client)
        async with runtime.sessionmaker.begin() as session:
            result = await ledger.grant(
                session, user_id=alice.id, amount=250, idempotency_key="g1", now=runtime.clock.now()
            )
        assert result.created
        assert await wallet_of(runtime, alice.id) == (250, 0)
        async with runtime.sessionmaker() as session:
            postings = (
                await session.scalars(
                    select(Posting).where(Posting.transfer_id == result.transfer.id)
                )
            ).all()
            issuance = await ledger.system_account_id(session, AccountKind.issuance)
        assert sorted((p.account_id == issuance, p.amount, p.balance_after) for p in postings) == [
            (False, 250, 250),
            (True, -250, -250),
        ]
        await assert_ledger_ok(runtime)

    async def test_same_key_credits_once(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client)
        for _ in range(3):
            async with runtime.sessionmaker.begin() as session:
                result = await ledger.grant(
                    session,
                    user_id=alice.id,
                    amount=40,
                    idempotency_key="same",
                    now=runtime.clock.now(),
                )
        assert not result.created
        assert await wallet_of(runtime, alice.id) == (40, 0)
        await assert_ledger_ok(runtime)

    async def test_same_key_other_terms_conflicts(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client)
        async with runtime.sessionmaker.begin() as session:
            await ledger.grant(
                session, user_id=alice.id, amount=40, idempotency_key="k", now=runtime.clock.now()
            )
        with pytest.raises(IdempotencyConflict):
            async with runtime.sessionmaker.begin() as session:
                await ledger.grant(
                    session,
                    user_id=alice.id,
                    amount=41,
                    idempotency_key="k",
                    now=runtime.clock.now(),
                )
        assert await wallet_of(runtime, alice.id) == (40, 0)

    @pytest.mark.parametrize("amount", [0, -5, 10**12 + 1])
    async def test_refuses_bad_amounts(self, runtime: Runtime, amount: int) -> None:
        alice = await make_user(runtime, Role.client)
        with pytest.raises(LedgerError):
            async with runtime.sessionmaker.begin() as session:
                await ledger.grant(
                    session,
                    user_id=alice.id,
                    amount=amount,
                    idempotency_key="bad",
                    now=runtime.clock.now(),
                )

    async def test_refuses_fractional_and_boolean_amounts(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client)
        for amount in (1.5, True):
            with pytest.raises(LedgerError):
                async with runtime.sessionmaker.begin() as session:
                    await ledger.grant(
                        session,
                        user_id=alice.id,
                        amount=amount,  # type: ignore[arg-type]
                        idempotency_key="bad",
                        now=runtime.clock.now(),
                    )


class TestDebit:
    async def test_cannot_overdraw(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client, coins=30)
        async with runtime.sessionmaker() as session:
            wallet = await ledger.account_for_user(session, alice.id)
            revenue = await ledger.system_account_id(session, AccountKind.revenue)
        with pytest.raises(InsufficientFunds):
            async with runtime.sessionmaker.begin() as session:
                await ledger.transfer(
                    session,
                    debit_account_id=wallet.id,
                    credit_account_id=revenue,
                    amount=31,
                    kind=ledger.TransferKind.adjustment,
                    idempotency_key="overdraw",
                    now=runtime.clock.now(),
                )
        assert await wallet_of(runtime, alice.id) == (30, 0)
        await assert_ledger_ok(runtime)

    async def test_held_coins_are_not_available(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client, coins=30)
        async with runtime.sessionmaker.begin() as session:
            wallet = await ledger.account_for_user(session, alice.id)
            revenue = await ledger.system_account_id(session, AccountKind.revenue)
            await ledger.place_hold(
                session, account_id=wallet.id, amount=25, reason="test", now=runtime.clock.now()
            )
        with pytest.raises(InsufficientFunds):
            async with runtime.sessionmaker.begin() as session:
                await ledger.transfer(
                    session,
                    debit_account_id=wallet.id,
                    credit_account_id=revenue,
                    amount=10,
                    kind=ledger.TransferKind.adjustment,
                    idempotency_key="x",
                    now=runtime.clock.now(),
                )
        assert await wallet_of(runtime, alice.id) == (30, 25)
        await assert_ledger_ok(runtime)


class TestHolds:
    async def test_place_capture_extend_release(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client, coins=100)
        now = runtime.clock.now()
        async with runtime.sessionmaker.begin() as session:
            wallet = await ledger.account_for_user(session, alice.id)
            revenue = await ledger.system_account_id(session, AccountKind.revenue)
            hold = await ledger.place_hold(
                session, account_id=wallet.id, amount=30, reason="test", now=now
            )
        assert await wallet_of(runtime, alice.id) == (100, 30)
        async with runtime.sessionmaker.begin() as session:
            await ledger.capture_hold(
                session,
                hold_id=hold.id,
                credit_account_id=revenue,
                amount=20,
                kind=ledger.TransferKind.adjustment,  # a call's charges need their call
                idempotency_key="cap1",
                now=now,
            )
        assert await wallet_of(runtime, alice.id) == (80, 10)
        async with runtime.sessionmaker.begin() as session:
            await ledger.extend_hold(session, hold_id=hold.id, amount=15, now=now)
        assert await wallet_of(runtime, alice.id) == (80, 25)
        with pytest.raises(LedgerError):
            async with runtime.sessionmaker.begin() as session:
                await ledger.capture_hold(
                    session,
                    hold_id=hold.id,
                    credit_account_id=revenue,
                    amount=26,
                    kind=ledger.TransferKind.adjustment,
                    idempotency_key="cap2",
                    now=now,
                )
        async with runtime.sessionmaker.begin() as session:
            assert await ledger.release_hold(session, hold_id=hold.id, now=now) == 25
            assert await ledger.release_hold(session, hold_id=hold.id, now=now) == 0
        assert await wallet_of(runtime, alice.id) == (80, 0)
        await assert_ledger_ok(runtime)

    async def test_hold_beyond_available_writes_nothing(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client, coins=10)
        async with runtime.sessionmaker.begin() as session:
            wallet = await ledger.account_for_user(session, alice.id)
            with pytest.raises(InsufficientFunds):
                await ledger.place_hold(
                    session,
                    account_id=wallet.id,
                    amount=11,
                    reason="test",
                    now=runtime.clock.now(),
                )
            # The transaction is still usable: the failed hold wrote nothing.
            await ledger.place_hold(
                session, account_id=wallet.id, amount=10, reason="test", now=runtime.clock.now()
            )
        assert await wallet_of(runtime, alice.id) == (10, 10)
        await assert_ledger_ok(runtime)


class TestImmutability:
    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE transfers SET amount = amount + 1",
            "DELETE FROM transfers",
            "UPDATE postings SET amount = amount + 1",
            "DELETE FROM postings",
        ],
    )
    async def test_database_refuses_to_change_history(
        self, runtime: Runtime, statement: str
    ) -> None:
        await make_user(runtime, Role.client, coins=10)
        with pytest.raises(DBAPIError, match="immutable"):
            async with runtime.sessionmaker.begin() as session:
                await session.execute(text(statement))


class TestLedgerCheck:
    async def test_names_a_tampered_balance(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client, coins=10)
        async with runtime.sessionmaker.begin() as session:
            await session.execute(
                text("UPDATE accounts SET balance = balance + 5 WHERE user_id = :u"),
                {"u": alice.id},
            )
        async with runtime.sessionmaker() as session:
            report = await check_ledger(session)
        assert not report.ok
        assert any("sum of all account balances is 5" in p for p in report.problems)
        assert any("has balance 15 but its postings sum to 10" in p for p in report.problems)

    async def test_names_a_held_mismatch(self, runtime: Runtime) -> None:
        alice = await make_user(runtime, Role.client, coins=10)
        async with runtime.sessionmaker.begin() as session:
            await session.execute(
                text("UPDATE accounts SET held = 3 WHERE user_id = :u"), {"u": alice.id}
            )
        async with runtime.sessionmaker() as session:
            report = await check_ledger(session)
        assert report.problems == [
            f"account {alice.id + 2} (wallet) holds 3 but its open holds sum to 0"
        ] or any("holds 3 but its open holds sum to 0" in p for p in report.problems)
        assert report.totals["held"] == 3


def test_no_code_updates_or_deletes_ledger_history() -> None:
    """Besides the database triggers: no statement in the package targets those tables."""
    import pathlib
    import re

    package = pathlib.Path(__file__).resolve().parents[2] / "callmeter"
    pattern = re.compile(
        r"(update|delete)\(\s*(Transfer|Posting)\b|(UPDATE|DELETE FROM)\s+(transfers|postings)\b"
    )
    offenders = [
        f"{path.relative_to(package)}:{n}"
        for path in package.rglob("*.py")
        if "migrations" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
