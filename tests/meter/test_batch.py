"""The meter's batch path settles exactly what the per-call path does.

The same calls — every billing policy and several tariffs (rates, intervals, free seconds
and host shares, not only the defaults), wallets from plenty down to nothing left,
parties present past the boundary, present until just before it, or silent — are driven
through the same moments twice: once by the batch path, once by the per-call path
(``advance``). Every call's billing state, every transfer (amount and idempotency key)
and every account must come out identical, and the ledger check must pass. The batch
path settles every due call itself — charges, partial holds and ends alike: nothing
falls back to the per-call path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from callmeter.app import create_runtime
from callmeter.calls import service as calls
from callmeter.config import BillingPolicy
from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.meter.service import TickResult, tick
from callmeter.models import Account, Call, Role, Transfer, User
from tests.conftest import make_settings
from tests.factories import assert_ledger_ok, make_user

# wallets in tenths of the rate: plenty, four intervals, two and a half, one and a half, one
WALLETS = (1000, 40, 25, 15, 10)
PRESENCE = ("past_boundary", "before_boundary", "client_silent")
# (rate, interval seconds, free seconds, host share percent)
TARIFFS = [(10, 60, 0, 70), (7, 13, 5, 33), (1, 1, 0, 100), (25, 30, 40, 0)]
HEARTBEAT_TIMEOUT = 30  # the default: a silent client is lost 35 s after the start


def steps(interval: int, free: int) -> list[int]:
    """Seconds after the calls started: just past the first boundary, within the next
    interval, on the second boundary, past the third, into the fifth — and late enough
    for the silent client's timeout."""
    boundary = [free + k * interval for k in range(5)]
    moments = {
        boundary[1] + 1,
        boundary[1] + max(1, interval // 2),
        boundary[2],
        boundary[3] + 1,
        boundary[4] + 10,
    }
    if max(moments) < 45:
        moments.add(45)
    return sorted(moments)


def coins(wallet: int, rate: int) -> int:
    return max(rate, wallet * rate // 10)


async def _start_calls(runtime: Runtime, tag: str) -> list[int]:
    """One active call per (wallet, presence), all started at the runtime clock's now."""
    ids = []
    now = runtime.clock.now()
    rate = runtime.settings.default_rate
    for wallet in WALLETS:
        for presence in PRESENCE:
            name = f"{wallet}-{presence}"
            client = await make_user(runtime, Role.client, f"{tag}-c-{name}", coins(wallet, rate))
            host = await make_user(runtime, Role.host, f"{tag}-h-{name}")
            async with runtime.sessionmaker.begin() as session:
                caller = await session.get(User, client.id)
                callee = await session.get(User, host.id)
                assert caller is not None
                assert callee is not None
                call = await calls.create_call(
                    session, client=caller, host_id=host.id, settings=runtime.settings, now=now
                )
                await calls.accept(
                    session, user=callee, call_id=call.id, settings=runtime.settings, now=now
                )
                for user in (caller, callee):
                    await calls.heartbeat(
                        session,
                        user=user,
                        call_id=call.id,
                        media_connected=True,
                        settings=runtime.settings,
                        now=now,
                    )
                ids.append(call.id)
    return ids


async def _present(runtime: Runtime, ids: list[int], started: datetime, now: datetime) -> None:
    """What the parties' heartbeats said by ``now`` (without settling: the meter must)."""
    per_presence = {
        "past_boundary": (now, now),
        "before_boundary": (now - timedelta(seconds=3), now - timedelta(seconds=3)),
        "client_silent": (started + timedelta(seconds=5), now),
    }
    async with runtime.sessionmaker.begin() as session:
        for index, call_id in enumerate(ids):
            client_seen, host_seen = per_presence[PRESENCE[index % len(PRESENCE)]]
            await session.execute(
                update(Call)
                .where(Call.id == call_id, Call.status == "active")
                .values(client_last_seen_at=client_seen, host_last_seen_at=host_seen)
            )


async def _outcome(runtime: Runtime, ids: list[int], started: datetime) -> list[tuple[object, ...]]:
    def rel(moment: datetime | None) -> float | None:
        return None if moment is None else (moment - started).total_seconds()

    rows = []
    async with runtime.sessionmaker() as session:
        for call_id in ids:
            call = await session.get(Call, call_id)
            assert call is not None
            accounts = (
                await session.execute(
                    select(Account.balance, Account.held)
                    .where(Account.user_id.in_((call.client_id, call.host_id)))
                    .order_by(Account.id)
                )
            ).all()
            transfers = (
                await session.execute(
                    select(Transfer.kind, Transfer.amount, Transfer.idempotency_key)
                    .where(Transfer.call_id == call_id)
                    .order_by(Transfer.id)
                )
            ).all()
            rows.append(
                (
                    call.status, call.end_reason, rel(call.ended_at), call.charged, call.held,
                    call.host_earned, call.billed_seconds, call.warning, rel(call.paid_until),
                    rel(call.next_charge_at), rel(call.due_at), call.version,
                    [tuple(a) for a in accounts],
                    [(k, a, key.replace(f"call:{call_id}:", "")) for k, a, key in transfers],
                )
            )  # fmt: skip
    return rows


Tariff = tuple[int, int, int, int]


async def _drive(
    database_url: str,
    policy: BillingPolicy,
    tariff: Tariff,
    *,
    batch_path: bool,
    start: datetime,
    tag: str,
) -> tuple[list[list[tuple[object, ...]]], list[TickResult]]:
    rate, interval, free, share = tariff
    clock = ManualClock(start)
    settings = make_settings(
        database_url,
        billing_policy=policy,
        default_rate=rate,
        billing_interval_seconds=interval,
        free_seconds=free,
        host_share_percent=share,
        heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT,
        meter_batch_path=batch_path,
    )
    runtime = create_runtime(settings, clock)
    try:
        ids = await _start_calls(runtime, tag)
        ticks, outcomes = [], []
        for step in steps(interval, free):
            clock.set(start + timedelta(seconds=step))
            await _present(runtime, ids, start, clock.now())
            ticks.append(await tick(runtime, clock.now()))
            outcomes.append(await _outcome(runtime, ids, start))  # after every step
        await assert_ledger_ok(runtime)
        return outcomes, ticks
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    "tariff", TARIFFS, ids=lambda t: "rate{}-every{}s-free{}-share{}".format(*t)
)
@pytest.mark.parametrize("policy", list(BillingPolicy), ids=lambda p: p.value)
async def test_batch_path_settles_what_the_per_call_path_does(
    database_url: str, policy: BillingPolicy, tariff: Tariff
) -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    batched, batch_ticks = await _drive(
        database_url, policy, tariff, batch_path=True, start=start, tag="b"
    )
    # the second run starts after the first has finished with every call, at the same
    # moments relative to its start
    later = start + timedelta(days=1)
    per_call, call_ticks = await _drive(
        database_url, policy, tariff, batch_path=False, start=later, tag="p"
    )
    assert batched == per_call
    assert sum(t.batched for t in call_ticks) == 0

    # The batch path settled every due call itself, partial holds and ends included:
    # nothing was leased to the per-call path, and what ended at a step is its tick's count.
    previous: list[tuple[object, ...] | None] = [None] * len(batched[0])
    partial_holds = ends = 0
    for rows, result in zip(batched, batch_ticks, strict=True):
        assert result.failed == 0
        assert result.batched == result.claimed == result.advanced
        changed = [row for row, before in zip(rows, previous, strict=True) if row != before]
        assert len(changed) <= result.batched  # every call that moved was in the batch
        ended = [row for row in changed if row[0] == "ended"]
        assert result.ended == len(ended)
        ends += len(ended)
        # an active call whose hold stops short of its next boundary: a partial hold
        partial_holds += sum(1 for row in changed if row[0] == "active" and row[8] < row[9])
        previous = list(rows)
    assert partial_holds > 0
    assert ends > 0
    assert sum(t.batched for t in batch_ticks) > len(WALLETS)  # the batch path really ran

    rate = tariff[0]
    charged = [row[3] for row in batched[-1]]
    assert max(charged) >= 3 * rate  # calls really were charged over several boundaries
    assert any(row[7] == "low_balance" for rows in batched for row in rows)
    ended_reasons = {row[1] for row in batched[-1]}
    assert {"insufficient_funds", "connection_lost"} <= ended_reasons
