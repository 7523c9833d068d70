"""Bulk-load N active calls straight into a migrated database, in exactly the state the
services leave a call in once both parties are connected (``create_call`` + ``accept`` +
two heartbeats): a client with a granted wallet and a hold of one interval, a host with an
earnings account, the call active since ``started_at`` and due at its first boundary.
The ledger check passes on the result (the benchmarks run it after settling).

Going through the services would take ~10 ms per call; this takes ~0.1 ms.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from callmeter.config import Settings
from callmeter.models import Account, AccountKind, Call, Hold, Posting, Transfer, User

PASSWORD = "bench-password"
CHUNK = 5000


@dataclass(frozen=True)
class Seeded:
    call_ids: range
    client_ids: range


def _table(model: type) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


async def seed_calls(
    engine: AsyncEngine,
    settings: Settings,
    hasher: PasswordHasher,
    n: int,
    *,
    started_at: Callable[[int], datetime],
    last_seen_at: Callable[[int], datetime],
    coins: int = 1000,
    progress: Callable[[int], None] = lambda done: None,
) -> Seeded:
    """Insert ``n`` clients, ``n`` hosts and ``n`` active calls (call ``i`` started at
    ``started_at(i)``, both parties last seen at ``last_seen_at(i)``)."""
    password_hash = hasher.hash(PASSWORD)
    rate, interval = settings.default_rate, settings.billing_interval_seconds
    async with engine.begin() as conn:
        maxima = {}
        for model in (User, Account, Transfer, Posting, Hold, Call):
            table = _table(model)
            maxima[table.name] = (
                await conn.execute(select(func.coalesce(func.max(table.c.id), 0)))
            ).scalar_one()
        issuance_id, issuance_balance = (
            await conn.execute(
                select(Account.id, Account.balance).where(
                    Account.kind == AccountKind.issuance, Account.user_id.is_(None)
                )
            )
        ).one()
    user0, account0, transfer0 = maxima["users"], maxima["accounts"], maxima["transfers"]
    posting0, hold0, call0 = maxima["postings"], maxima["holds"], maxima["calls"]
    issuance = issuance_balance
    for start in range(0, n, CHUNK):
        rows: dict[str, list[dict[str, object]]] = {
            name: [] for name in ("users", "accounts", "transfers", "postings", "holds", "calls")
        }
        for i in range(start, min(n, start + CHUNK)):
            begun = started_at(i)
            created = begun - timedelta(seconds=5)
            client, host = user0 + 2 * i + 1, user0 + 2 * i + 2
            wallet, earnings = account0 + 2 * i + 1, account0 + 2 * i + 2
            grant, hold, call = transfer0 + i + 1, hold0 + i + 1, call0 + i + 1
            for user_id, role in ((client, "client"), (host, "host")):
                rows["users"].append(
                    {"id": user_id, "username": f"b{user_id}", "password_hash": password_hash,
                     "role": role, "display_name": f"Bench {user_id}", "created_at": created,
                     "rate": None, "accepting_calls": True}
                )  # fmt: skip
            rows["accounts"] += [
                {"id": wallet, "kind": "wallet", "user_id": client, "balance": coins,
                 "held": rate, "created_at": created},
                {"id": earnings, "kind": "earnings", "user_id": host, "balance": 0,
                 "held": 0, "created_at": created},
            ]  # fmt: skip
            rows["transfers"].append(
                {"id": grant, "debit_account_id": issuance_id, "credit_account_id": wallet,
                 "amount": coins, "kind": "grant", "call_id": None,
                 "idempotency_key": f"bench:grant:{client}", "note": None,
                 "created_at": created}
            )  # fmt: skip
            issuance -= coins
            rows["postings"] += [
                {"id": posting0 + 2 * i + 1, "transfer_id": grant, "account_id": issuance_id,
                 "amount": -coins, "balance_after": issuance},
                {"id": posting0 + 2 * i + 2, "transfer_id": grant, "account_id": wallet,
                 "amount": coins, "balance_after": coins},
            ]  # fmt: skip
            rows["holds"].append(
                {"id": hold, "account_id": wallet, "amount": rate, "reason": "call",
                 "call_id": call, "created_at": created, "released_at": None}
            )  # fmt: skip
            seen = last_seen_at(i)
            boundary = begun + timedelta(seconds=interval)
            rows["calls"].append(
                {"id": call, "client_id": client, "host_id": host, "status": "active",
                 "end_reason": None, "policy": str(settings.billing_policy), "rate": rate,
                 "interval_seconds": interval, "free_seconds": 0,
                 "host_share_percent": settings.host_share_percent, "created_at": created,
                 "accepted_at": created, "started_at": begun, "ended_at": None,
                 "billed_seconds": 0, "charged": 0, "host_earned": 0, "refunded": 0,
                 "hold_id": hold, "held": rate, "paid_until": boundary,
                 "next_charge_at": boundary, "due_at": boundary, "warning": None,
                 "client_last_seen_at": seen, "host_last_seen_at": seen,
                 "client_media_at": begun, "host_media_at": begun, "client_lk_sid": None,
                 "host_lk_sid": None, "client_left_at": None, "host_left_at": None,
                 "media_provider": "p2p", "room": f"call-{call}", "version": 3}
            )  # fmt: skip
        async with engine.begin() as conn:
            for model in (User, Account, Transfer, Posting, Hold, Call):
                table = _table(model)
                await conn.execute(insert(table), rows[table.name])
        progress(min(n, start + CHUNK))
    async with engine.begin() as conn:
        await conn.execute(
            Account.__table__.update()  # type: ignore[attr-defined]
            .where(Account.id == issuance_id)
            .values(balance=issuance)
        )
        if engine.dialect.name == "postgresql":
            for model in (User, Account, Transfer, Posting, Hold, Call):
                name = _table(model).name
                await conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
            await conn.execute(text("ANALYZE"))
    # Measure the meter, not the write-back of the load: flush it before anything runs.
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("CHECKPOINT"))
    else:  # outside any transaction (the engine would BEGIN IMMEDIATE first)
        with contextlib.closing(sqlite3.connect(str(engine.url.database))) as raw:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Seeded(range(call0 + 1, call0 + n + 1), range(user0 + 1, user0 + 2 * n + 1, 2))


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar; yields ``update(done)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        f"[bold]{label}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)
