"""How many SQL statements the per-call charge path issues (issue 12: record, then lower).

Two heartbeats at a billing boundary, the client's then the host's (the second one charges
the completed interval), each in its own transaction as the API runs them. Counted with the
engine's ``before_cursor_execute`` event, so every statement the database sees is counted
(not BEGIN/COMMIT, which the driver sends itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event

from callmeter.calls import service as calls
from callmeter.kit.runtime import Runtime
from callmeter.models import Role, User
from tests.factories import assert_ledger_ok, make_user

# Before issue 12: 27 (6 + 21) on SQLite and PostgreSQL; now 13 (5 + 8) on PostgreSQL and
# 14 on SQLite (a transfer id comes from a max(id) read there). The per-call path
# locks its accounts in one statement, reads nothing it has just written and writes the
# ledger with one statement per table; the revenue row, the hottest, is locked last and only
# when a charge moves coins to it.
MAX_STATEMENTS = 14


@contextmanager
def counting(runtime: Runtime) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_two_heartbeats_at_a_boundary(runtime: Runtime) -> None:
    settings, now = runtime.settings, runtime.clock.now()
    client = await make_user(runtime, Role.client, coins=100)
    host = await make_user(runtime, Role.host)
    async with runtime.sessionmaker.begin() as session:
        caller, callee = await session.get(User, client.id), await session.get(User, host.id)
        assert caller is not None
        assert callee is not None
        call = await calls.create_call(
            session, client=caller, host_id=host.id, settings=settings, now=now
        )
        await calls.accept(session, user=callee, call_id=call.id, settings=settings, now=now)
        for user in (caller, callee):
            await calls.heartbeat(
                session,
                user=user,
                call_id=call.id,
                media_connected=True,
                settings=settings,
                now=now,
            )
        call_id = call.id
    interval = settings.billing_interval_seconds
    step = settings.heartbeat_timeout_seconds // 2
    for moment in range(step, interval, step):  # both parties stay present until the boundary
        async with runtime.sessionmaker.begin() as session:
            for user_id in (client.id, host.id):
                user = await session.get(User, user_id)
                assert user is not None
                await calls.heartbeat(
                    session,
                    user=user,
                    call_id=call_id,
                    media_connected=True,
                    settings=settings,
                    now=now + timedelta(seconds=moment),
                )
    later = now + timedelta(seconds=interval + 1)
    counts = []
    for user_id in (client.id, host.id):
        with counting(runtime) as seen:
            async with runtime.sessionmaker.begin() as session:
                user = await session.get(User, user_id)  # the API's token check, not counted
                assert user is not None
                seen.clear()
                result = await calls.heartbeat(
                    session,
                    user=user,
                    call_id=call_id,
                    media_connected=True,
                    settings=settings,
                    now=later,
                )
                charged = result.charged
        counts.append(len(seen))
    assert charged == 10  # the second heartbeat charged the first interval
    print(f"statements: {counts[0]} + {counts[1]} = {sum(counts)}")
    assert sum(counts) <= MAX_STATEMENTS, counts
    await assert_ledger_ok(runtime)
