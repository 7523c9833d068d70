"""Properties of the pure billing policy (hypothesis) and the table from the issue."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callmeter.billing.policy import Tariff, cost, covered_seconds, host_earnings, next_boundary
from callmeter.config import BillingPolicy

tariffs = st.builds(
    Tariff,
    policy=st.sampled_from(BillingPolicy),
    rate=st.integers(1, 10_000),
    interval_seconds=st.integers(1, 3600),
    free_seconds=st.integers(0, 600),
    host_share_percent=st.integers(0, 100),
)
seconds = st.integers(0, 10 * 24 * 3600)
coins = st.integers(0, 10**9)


def default(policy: BillingPolicy = BillingPolicy.per_completed_interval) -> Tariff:
    return Tariff(policy=policy, rate=10, interval_seconds=60)


@pytest.mark.parametrize(
    ("policy", "t", "expected"),
    [
        (BillingPolicy.per_completed_interval, 0, 0),
        (BillingPolicy.per_completed_interval, 59, 0),
        (BillingPolicy.per_completed_interval, 60, 10),
        (BillingPolicy.per_completed_interval, 65, 10),
        (BillingPolicy.per_completed_interval, 120, 20),
        (BillingPolicy.per_started_interval, 0, 0),
        (BillingPolicy.per_started_interval, 1, 10),
        (BillingPolicy.per_started_interval, 65, 20),
        (BillingPolicy.per_second, 65, 10),
        (BillingPolicy.per_second, 59, 9),
        (BillingPolicy.per_second, 120, 20),
    ],
)
def test_the_table(policy: BillingPolicy, t: int, expected: int) -> None:
    assert cost(default(policy), t) == expected


def test_free_seconds_come_first() -> None:
    tariff = Tariff(BillingPolicy.per_completed_interval, 10, 60, free_seconds=30)
    assert [cost(tariff, t) for t in (30, 89, 90, 150)] == [0, 0, 10, 20]


@given(tariffs)
def test_cost_of_nothing_is_nothing(tariff: Tariff) -> None:
    assert cost(tariff, 0) == 0
    assert cost(tariff, tariff.free_seconds) == 0


@given(tariffs, seconds, seconds)
def test_cost_is_monotone(tariff: Tariff, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert cost(tariff, lo) <= cost(tariff, hi)


@given(tariffs, seconds)
def test_cost_is_bounded_by_started_intervals(tariff: Tariff, t: int) -> None:
    billable = max(0, t - tariff.free_seconds)
    started = -(-billable // tariff.interval_seconds)
    completed = billable // tariff.interval_seconds
    assert tariff.rate * completed <= cost(tariff, t) <= tariff.rate * started


@given(tariffs, coins)
def test_covered_seconds_never_cost_more_than_the_coins(tariff: Tariff, amount: int) -> None:
    reach = covered_seconds(tariff, amount)
    assert cost(tariff, reach) <= amount
    if tariff.policy is BillingPolicy.per_second:
        # one second more would cost more than the coins: nothing is left unused
        assert cost(tariff, reach + 1) > amount
    else:
        # an interval policy stops at a boundary: the next interval is not funded
        assert cost(tariff, reach + tariff.interval_seconds) > amount
        assert (reach - tariff.free_seconds) % tariff.interval_seconds == 0


@given(tariffs, coins, coins)
def test_covered_seconds_is_monotone(tariff: Tariff, a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    assert covered_seconds(tariff, lo) <= covered_seconds(tariff, hi)


@given(tariffs, seconds)
def test_next_boundary_is_after_and_aligned(tariff: Tariff, t: int) -> None:
    nb = next_boundary(tariff, t)
    assert nb > t
    assert nb >= tariff.free_seconds + tariff.interval_seconds
    assert (nb - tariff.free_seconds) % tariff.interval_seconds == 0
    assert nb - t <= tariff.interval_seconds + tariff.free_seconds


@given(tariffs, st.lists(st.integers(0, 10**6), min_size=1, max_size=50))
def test_earnings_split_without_drift(tariff: Tariff, steps: list[int]) -> None:
    """Crediting the difference of the cumulative formula at each settlement adds up to
    exactly the formula on the total, and the platform gets the rest."""
    charged = host = platform = 0
    for step in steps:
        new_charged = charged + step
        host_delta = host_earnings(tariff, new_charged) - host
        assert 0 <= host_delta <= step
        host += host_delta
        platform += step - host_delta
        charged = new_charged
    assert host == charged * tariff.host_share_percent // 100
    assert host + platform == charged


def test_seventy_percent_of_ten() -> None:
    assert host_earnings(default(), 10) == 7
