"""Replay-safe endpoints: the first response to an ``Idempotency-Key`` is stored and
replayed for every repeat; the same key with a different body is a conflict.

The record is claimed with INSERT … ON CONFLICT DO NOTHING in the request's transaction:
a concurrent duplicate waits on the unique index until the first commits, then replays it.
If the first request fails, its transaction (and so its claim) rolls back and the key is
free again: only successes are remembered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Header
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.errors import IdempotencyConflict
from callmeter.kit.db import dialect_insert
from callmeter.models import IdempotentRequest

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="a unique key per intended operation; repeats replay the first response",
    ),
]


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    replayed: bool


def request_fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def run_once(
    session: AsyncSession,
    *,
    scope: str,
    key: str,
    request: dict[str, Any],
    now: datetime,
    perform: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> StoredResponse:
    """Run ``perform`` at most once per (scope, key) and return its (replayed) response."""
    fingerprint = request_fingerprint(request)
    claimed = await session.scalars(
        dialect_insert(session, IdempotentRequest.__table__)
        .values(scope=scope, key=key, request_hash=fingerprint, created_at=now)
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotentRequest.__table__.c.id)
    )
    record_id = claimed.one_or_none()
    if record_id is None:
        record = (
            await session.execute(
                select(IdempotentRequest).where(
                    IdempotentRequest.scope == scope, IdempotentRequest.key == key
                )
            )
        ).scalar_one()
        if record.request_hash != fingerprint:
            raise IdempotencyConflict()
        assert record.status_code is not None
        assert record.response_body is not None
        return StoredResponse(record.status_code, dict(record.response_body), replayed=True)
    status_code, body = await perform()
    await session.execute(
        update(IdempotentRequest)
        .where(IdempotentRequest.id == record_id)
        .values(status_code=status_code, response_body=body)
    )
    return StoredResponse(status_code, body, replayed=False)
