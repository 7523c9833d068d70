"""Regression, found in review: kit/bulk on PostgreSQL casts every bound array to the column's SQL
type (``CAST(:p AS VARCHAR(200)[])``). An explicit cast to ``varchar(n)`` truncates
silently (SQL standard), where an INSERT of the same value fails — and SQLite keeps the
whole string. So a transfer whose idempotency key is longer than its column is inserted
under a shortened key; ``insert_new_rows`` then matches ``RETURNING idempotency_key`` to
the full key, finds nothing, reports the row as a repeat, and ``ledger.post``'s
``_check_repeats`` trips ``assert existing is not None``: a 500 (an AssertionError, or an
AttributeError under ``python -O``) on PostgreSQL where SQLite answers 201.

Reachable from the API: the admin grant's key is ``grant:{admin id}:{Idempotency-Key}``
and the header may be 200 characters, longer than ``transfers.idempotency_key``
(String(200)).

The fix: strings travel as TEXT in kit/bulk (the column refuses what does not fit, nothing
is cut), ``ledger.post`` refuses a key longer than the column (``ledger_error``), and an
admin grant whose key would not fit is keyed by the SHA-256 of its Idempotency-Key.
"""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select

from callmeter.errors import CallmeterError
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import Role, Transfer
from tests.factories import auth_headers, make_user, wallet_of


async def test_a_grant_with_a_200_character_idempotency_key(
    runtime: Runtime, client: AsyncClient
) -> None:
    """The header allows 200 characters: the grant is credited (as on SQLite), or at
    worst refused with a 4xx — never a 500."""
    admin = await make_user(runtime, Role.admin)
    headers = await auth_headers(client, admin.username)
    alice = await make_user(runtime, Role.client)
    r = await client.post(
        "/v1/admin/grants",
        json={"user_id": alice.id, "amount": 5},
        headers={**headers, "Idempotency-Key": "k" * 200},
    )
    assert r.status_code == 201, (r.status_code, r.text)
    assert await wallet_of(runtime, alice.id) == (5, 0)


async def test_post_stores_the_key_it_was_given_or_refuses_it(runtime: Runtime) -> None:
    """``ledger.post`` with a key longer than the column: stored whole (SQLite) or refused
    with a domain error; on PostgreSQL an AssertionError escapes ``_check_repeats``."""
    alice = await make_user(runtime, Role.client)
    key = "grant:1:" + "x" * 200
    async with runtime.sessionmaker.begin() as session:
        try:
            await ledger.grant(
                session, user_id=alice.id, amount=3, idempotency_key=key, now=runtime.clock.now()
            )
        except CallmeterError:  # a refusal with a 4xx is fine
            return
    async with runtime.sessionmaker() as session:
        stored = await session.scalar(select(Transfer.idempotency_key))
    assert stored == key
