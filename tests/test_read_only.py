"""Reads take no write lock (issue 15, point 5): a GET runs in a read-only transaction —
PostgreSQL ``BEGIN READ ONLY``, SQLite a plain ``BEGIN`` — so on SQLite it is answered while
another connection holds the write lock, and a write attempted in one is refused."""

from __future__ import annotations

import time

import pytest
from httpx import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from callmeter.kit.db import ReadOnlyViolation, create_engine
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.factories import auth_headers, make_user


async def test_a_read_only_session_refuses_to_write(runtime: Runtime) -> None:
    user = await make_user(runtime, Role.client)
    async with runtime.read_sessionmaker() as session:
        with pytest.raises((ReadOnlyViolation, DBAPIError)) as caught:
            await session.execute(
                text("UPDATE users SET display_name = 'x' WHERE id = :id"), {"id": user.id}
            )
    assert "read-only" in str(caught.value)


async def test_a_get_is_answered_while_a_writer_holds_the_lock(
    runtime: Runtime, client: AsyncClient
) -> None:
    user = await make_user(runtime, Role.client, coins=5)
    headers = await auth_headers(client, user.username)
    holder = create_engine(runtime.settings.database_url)
    try:
        async with holder.connect() as conn:
            # SQLite: the write lock (its BEGIN IMMEDIATE); PostgreSQL: the user's row
            await conn.execute(
                text("UPDATE users SET display_name = display_name WHERE id = :id"),
                {"id": user.id},
            )
            started = time.monotonic()
            for path in ("/v1/wallet", "/v1/me", "/v1/calls", "/v1/hosts"):
                r = await client.get(path, headers=headers)
                assert r.status_code == 200, (path, r.text)
            assert time.monotonic() - started < 2  # no busy wait (SQLite's is 5 s)
            await conn.rollback()
    finally:
        await holder.dispose()
