"""Async factory functions: users, tokens and coins, made through the real services."""

from __future__ import annotations

import itertools

from httpx import AsyncClient

from callmeter.auth import service as auth
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import Role, User
from callmeter.payments.check import check_everything

PASSWORD = "correct horse battery"
_names = itertools.count(1)


async def make_user(
    runtime: Runtime, role: Role = Role.client, username: str | None = None, coins: int = 0
) -> User:
    username = username or f"{role}{next(_names)}"
    async with runtime.sessionmaker.begin() as session:
        user = await auth.create_user(
            session,
            hasher=runtime.hasher,
            username=username,
            password=PASSWORD,
            role=role,
            display_name=None,
            now=runtime.clock.now(),
        )
        if coins:
            await ledger.grant(
                session,
                user_id=user.id,
                amount=coins,
                idempotency_key=f"test-coins:{user.id}",
                now=runtime.clock.now(),
            )
    return user


async def auth_headers(client: AsyncClient, username: str) -> dict[str, str]:
    response = await client.post(
        "/v1/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def wallet_of(runtime: Runtime, user_id: int) -> tuple[int, int]:
    """(balance, held) of the user's account."""
    async with runtime.sessionmaker() as session:
        account = await ledger.account_for_user(session, user_id)
        return account.balance, account.held


async def assert_ledger_ok(runtime: Runtime) -> None:
    """Every ledger invariant holds (the report names what does not)."""
    async with runtime.sessionmaker() as session:
        report = await check_everything(session, hold_days=runtime.settings.payout_hold_days)
    assert report.ok, report.problems
