"""The cost of a call as a pure function of its billable seconds (design rule 2).

All arithmetic is on integers: billable time is whole seconds (the server truncates), coins
are whole coins. A :class:`Tariff` is snapshotted onto each call when it is created, so a
later change of configuration never re-prices a call.

This module is the one place that knows what a tariff means. Everything else — settlement,
holds, the call checks — asks it: :func:`cost`, :func:`covered_seconds` (its inverse),
:func:`next_boundary` (when to settle), :func:`first_hold` and :func:`affordable_hold`
(what to reserve) and :func:`host_earnings`. A new billing rule changes these functions
and nothing else (docs/design.md, "Adding a billing rule"); the planner's property tests
hold for any rule that keeps ``cost`` monotone and ``covered_seconds`` its inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

from callmeter.config import BillingPolicy


@dataclass(frozen=True)
class Tariff:
    policy: BillingPolicy
    rate: int  # coins per interval
    interval_seconds: int
    free_seconds: int = 0
    host_share_percent: int = 70
    # The least a call that is charged anything pays. Not configurable (nor stored on
    # calls) yet: tests/billing/test_minimum_charge.py adds it to show that a new rule is
    # a change of this module only.
    minimum_charge: int = 0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.interval_seconds <= 0:
            raise ValueError("rate and interval must be positive")
        if self.free_seconds < 0 or not 0 <= self.host_share_percent <= 100:
            raise ValueError("free seconds must be >= 0 and the host share within 0..100")
        if self.minimum_charge < 0:
            raise ValueError("the minimum charge must be >= 0")


def _billable(tariff: Tariff, seconds: int) -> int:
    return max(0, seconds - tariff.free_seconds)


def _base_cost(tariff: Tariff, seconds: int) -> int:
    t = _billable(tariff, seconds)
    rate, interval = tariff.rate, tariff.interval_seconds
    if tariff.policy is BillingPolicy.per_completed_interval:
        return rate * (t // interval)
    if tariff.policy is BillingPolicy.per_started_interval:
        return rate * -(-t // interval)  # ceil, and 0 for t = 0
    return rate * t // interval  # per_second


def cost(tariff: Tariff, seconds: int) -> int:
    """Coins owed for ``seconds`` of connected call time (monotone in ``seconds``)."""
    base = _base_cost(tariff, seconds)
    return max(base, tariff.minimum_charge) if base > 0 else 0


def covered_seconds(tariff: Tariff, coins: int) -> int:
    """How long a call may run when ``coins`` are committed to it (charged plus held).
    ``cost(covered_seconds(c)) <= c`` always.

    Interval policies only run into an interval whose cost is fully committed, so a call
    that cannot fund its next interval ends at the boundary (25 coins at 10 per minute:
    two minutes). Per-second billing runs until the cost would exceed ``coins``.
    """
    if coins < 0:
        raise ValueError("coins must be >= 0")
    if coins < tariff.minimum_charge:
        coins = 0  # buys only what costs nothing
    free, rate, interval = tariff.free_seconds, tariff.rate, tariff.interval_seconds
    if tariff.policy is BillingPolicy.per_second:
        # the largest t with rate * t // interval <= coins
        return free + ((coins + 1) * interval - 1) // rate
    return free + interval * (coins // rate)


def next_boundary(tariff: Tariff, seconds: int) -> int:
    """The first settlement point strictly after ``seconds`` (an interval boundary)."""
    t = seconds - tariff.free_seconds
    if t < 0:
        return tariff.free_seconds + tariff.interval_seconds
    return tariff.free_seconds + tariff.interval_seconds * (t // tariff.interval_seconds + 1)


def first_hold(tariff: Tariff) -> int:
    """What a call must hold before it may ring: the cost of its first settlement point."""
    return cost(tariff, next_boundary(tariff, 0))


def affordable_hold(tariff: Tariff, committed: int, available: int) -> int:
    """When ``available`` coins cannot cover the next settlement point: the part of them
    worth holding on top of ``committed`` (charged + held) — the least that buys as much
    time as all of them would. A coin that buys no time (a part of an interval, under an
    interval policy) stays in the wallet."""
    if available <= 0:
        return 0
    reach = covered_seconds(tariff, committed + available)
    return max(0, min(available, cost(tariff, reach) - committed))


def host_earnings(tariff: Tariff, charged: int) -> int:
    """The host's cumulative share of ``charged`` (design rule 7): recomputed from the
    total each time, so rounding never accumulates."""
    return charged * tariff.host_share_percent // 100
