"""The arithmetic of taking bought coins back (callmeter.billing.purchases)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callmeter.billing.purchases import reversal_target, reverse

coins = st.integers(min_value=1, max_value=10_000_000)
prices = st.integers(min_value=1, max_value=100_000_000)


@given(coins, prices, st.data())
def test_target_is_proportional_rounded_down_and_monotone(total, price, data) -> None:
    a = data.draw(st.integers(min_value=-5, max_value=price + 5))
    b = data.draw(st.integers(min_value=a, max_value=price + 10))
    ta, tb = reversal_target(total, price, a), reversal_target(total, price, b)
    assert 0 <= ta <= tb <= total  # a larger cumulative refund never takes back less
    clamped = min(max(a, 0), price)
    # never more than the refunded share of the coins, and less than one coin short of it
    assert ta * price <= total * clamped < (ta + 1) * price


@given(coins, prices)
def test_a_full_refund_takes_everything_and_none_takes_nothing(total, price) -> None:
    assert reversal_target(total, price, price) == total
    assert reversal_target(total, price, price * 3) == total
    assert reversal_target(total, price, 0) == 0


@given(coins, prices, st.lists(st.integers(min_value=0, max_value=100_000_000), max_size=8))
def test_cumulative_refunds_in_any_order_move_exactly_the_final_target(total, price, seen) -> None:
    """Events carry the cumulative refunded amount; applying each as "bring the target up to
    this" moves, in all, exactly the largest one's target, whatever the order."""
    taken = 0
    for refunded in seen:
        taken += max(0, reversal_target(total, price, refunded) - taken)
    assert taken == reversal_target(total, price, max(seen, default=0))


@given(st.integers(min_value=-10, max_value=10_000), st.integers(min_value=-10, max_value=10_000))
def test_reverse_takes_what_the_wallet_has_and_the_rest_is_a_shortfall(due, available) -> None:
    r = reverse(due, available)
    assert r.recovered + r.shortfall == r.due == max(due, 0)
    assert 0 <= r.recovered <= max(available, 0)
    assert r.shortfall == 0 or r.recovered == max(available, 0)
