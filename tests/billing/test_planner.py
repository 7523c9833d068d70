"""Properties of the pure settlement planner (``billing/settlement.py``), no database.

Random tariffs (every policy, rate 1..100, interval 1..120 s, free seconds 0..90, host
share 0..100, minimum charge 0..50) and random walks of one active call: heartbeats of
either party at random moments, silences, the client's available coins going up and down,
settlements at random moments and ends of every reason. Each step plans with
:func:`plan` / :func:`plan_finish` and builds the next :class:`CallState` from the
outcome, tracking the wallet as the apply step does (``available -= extension -
released``). After every step:

* ``charged + held >= cost(t)`` for every ``t`` up to ``paid_until`` (cost is monotone, so
  checking at ``paid_until`` is enough), and ``paid_until`` is exactly what the committed
  coins buy — never a hold that cannot pay the next charge;
* ``charged`` and ``host_earned`` only move up, ``host_earned == host_earnings(charged)``
  and the captured parts add up to the moves;
* what is captured never exceeds the hold it came from, the extension never exceeds the
  available coins, the hold is never negative;
* a full hold reaches the next settlement point whenever the wallet can pay for it, and a
  partial hold buys as much time as all the available coins would;
* settling again at the same moment changes nothing;
* an end releases the whole hold, bills no more than the presence horizon and the paid
  time, and charges exactly ``cost(billed)``.

Then the same walks drive the reference model (``tests/model/reference.py``) and must agree
on charged, held, host earned, billed seconds, paid_until, the schedule, the warning, the
wallet and the end reason.

``PLANNER_EXAMPLES`` (default 300) sets the number of walks per test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callmeter.billing import settlement
from callmeter.billing.policy import (
    Tariff,
    affordable_hold,
    cost,
    covered_seconds,
    first_hold,
    host_earnings,
    next_boundary,
)
from callmeter.billing.settlement import (
    CallState,
    Outcome,
    billing_horizon,
    charge_pending,
    paid_seconds,
    plan,
    plan_finish,
    presence_lost,
    seconds_between,
)
from callmeter.config import BillingPolicy
from callmeter.models import CallStatus, EndReason
from tests.model.reference import MCall, Model, Timeouts

EXAMPLES = int(os.environ.get("PLANNER_EXAMPLES", "300"))
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PARTIES = ("client", "host")
ENDS = (
    EndReason.client_hangup,
    EndReason.host_hangup,
    EndReason.connection_lost,
    EndReason.insufficient_funds,
    EndReason.media_left,
    EndReason.admin,
)

walk_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def tariffs(minimum: st.SearchStrategy[int] = st.integers(0, 50)) -> st.SearchStrategy[Tariff]:
    return st.builds(
        Tariff,
        policy=st.sampled_from(BillingPolicy),
        rate=st.integers(1, 100),
        interval_seconds=st.integers(1, 120),
        free_seconds=st.integers(0, 90),
        host_share_percent=st.integers(0, 100),
        minimum_charge=minimum,
    )


# --- walks --------------------------------------------------------------------------------

# Times are in milliseconds after the previous step (the service truncates to seconds);
# the reference model runs on whole seconds, so its walks use whole seconds only. Most
# steps come sooner than the heartbeat timeout (a call that goes on, both parties beating);
# silences are longer, and an end comes now and then.
Step = tuple[object, ...]


def steps(timeout: int, whole_seconds: bool) -> st.SearchStrategy[list[Step]]:
    unit = 1000 if whole_seconds else 1

    def ms(seconds: int) -> st.SearchStrategy[int]:
        return st.integers(0, seconds * 1000 // unit).map(lambda d: d * unit)

    soon = ms((timeout - 1) // 2)  # two steps in a row keep the call alive
    beat = st.tuples(st.just("beat"), soon, st.sampled_from(PARTIES))
    # both parties heartbeating every `period` seconds for a while (the web client's beat)
    run = st.tuples(st.just("run"), ms(400), st.integers(1, max(1, (timeout - 1) // 2)))
    step = st.one_of(
        *[beat] * 3,
        *[run] * 3,
        st.tuples(st.just("heartbeat"), soon, st.sampled_from(PARTIES)),
        st.tuples(st.just("settle"), soon),
        st.tuples(st.just("settle"), st.just(0)),  # the same moment again
        st.tuples(st.just("wallet"), st.integers(-150, 150)),  # coins come and go
        st.tuples(st.just("wallet="), st.integers(0, 120)),  # down to a few coins
        st.tuples(st.just("wait"), ms(2 * timeout)),  # a silence
        st.tuples(
            st.just("end"),
            soon,
            st.sampled_from(ENDS),
            ms(120),  # stamped this much before its arrival (events, admins)
        ),
    )
    return st.lists(step, min_size=20, max_size=80)


@st.composite
def walks(
    draw: st.DrawFn, tariff: st.SearchStrategy[Tariff], whole_seconds: bool = False
) -> tuple[Tariff, int, int, int, list[Step]]:
    """(tariff, heartbeat timeout, available coins after the first hold, how long before
    the start the client was last seen (ms), steps)."""
    unit = 1000 if whole_seconds else 1
    timeout = draw(st.integers(5, 60))
    return (
        draw(tariff),
        timeout,
        draw(st.integers(0, 300)),
        draw(st.integers(0, 10 * 1000 // unit)) * unit,
        draw(steps(timeout, whole_seconds)),
    )


def at(ms: int) -> datetime:
    return START + timedelta(milliseconds=ms)


def active_call(tariff: Tariff, client_seen_ms: int) -> CallState:
    """A call the moment it became active (both parties' media up), its first hold placed."""
    return CallState(
        id=1,
        version=3,
        status=CallStatus.active,
        started_at=START,
        policy=tariff.policy.value,
        rate=tariff.rate,
        interval_seconds=tariff.interval_seconds,
        free_seconds=tariff.free_seconds,
        host_share_percent=tariff.host_share_percent,
        charged=0,
        held=first_hold(tariff),
        host_earned=0,
        billed_seconds=0,
        warning=None,
        paid_until=None,
        next_charge_at=START,  # settle right away
        client_last_seen_at=at(-client_seen_ms),
        host_last_seen_at=START,
    )


def after(state: CallState, outcome: Outcome) -> CallState:
    """The call's state once ``outcome`` is applied (what the apply step writes)."""
    return replace(
        state,
        version=outcome.version,
        status=outcome.status,
        charged=outcome.charged,
        held=outcome.held,
        host_earned=outcome.host_earned,
        billed_seconds=outcome.billed_seconds,
        warning=outcome.warning,
        paid_until=outcome.paid_until,
        next_charge_at=outcome.next_charge_at,
    )


def saw(state: CallState, party: str, now: datetime) -> CallState:
    """A heartbeat (or a hang-up) of ``party`` at ``now``: last-seen only moves forward."""
    name = f"{party}_last_seen_at"
    seen: datetime | None = getattr(state, name)
    return replace(state, **{name: now if seen is None else max(seen, now)})


@dataclass
class Walk:
    """One call stepped through planner outcomes, checking the properties at every step."""

    tariff: Tariff
    timeout: int
    state: CallState
    available: int
    now: datetime = START
    captured: int = 0
    host_parts: int = 0
    due: datetime | None = START
    ended: Outcome | None = None  # the outcome that ended the call

    def cost(self, seconds: int) -> int:
        return cost(self.tariff, seconds)

    def covered(self, coins: int) -> int:
        return covered_seconds(self.tariff, coins)

    # --- steps ----------------------------------------------------------------------
    def step(self, step: Step) -> None:
        kind = step[0]
        if kind in ("wallet", "wallet="):
            amount = step[1]
            assert isinstance(amount, int)
            self.available = max(0, self.available + amount) if kind == "wallet" else amount
            return
        delay = step[1]
        assert isinstance(delay, int)
        self.now += timedelta(milliseconds=delay)
        if kind == "heartbeat":
            self.heartbeat(str(step[2]))
        elif kind == "beat":  # both parties, in either order
            first = str(step[2])
            self.heartbeat(first)
            self.heartbeat(PARTIES[1 - PARTIES.index(first)])
        elif kind == "settle":
            self.settle()
        elif kind == "run":
            period = step[2]
            assert isinstance(period, int)
            until = self.now
            self.now -= timedelta(milliseconds=delay)
            while self.now < until:
                self.now = min(until, self.now + timedelta(seconds=period))
                self.heartbeat("client")
                self.heartbeat("host")
        elif kind == "end":
            reason, early = step[2], step[3]
            assert isinstance(reason, EndReason)
            assert isinstance(early, int)
            self.end(reason, early)

    def heartbeat(self, party: str) -> None:
        """As the service does: a party silent past the timeout ends the call first; else
        the heartbeat is seen and the call settled when a charge is pending."""
        if self.state.status != CallStatus.active:
            return
        if presence_lost(self.state, self.now, self.timeout):
            self.settle()
            return
        self.state = saw(self.state, party, self.now)
        if charge_pending(self.state, self.now):
            self.settle()

    def end(self, reason: EndReason, early_ms: int) -> None:
        if self.state.status != CallStatus.active:
            self.apply(plan_finish(self.state, self.now, reason))  # changes nothing
            return
        if presence_lost(self.state, self.now, self.timeout):
            self.settle()
            return
        if reason in (EndReason.client_hangup, EndReason.host_hangup):
            # the hang-up shows its sender was there
            self.state = saw(self.state, reason.value.removesuffix("_hangup"), self.now)
            end_at = self.now
        elif reason is EndReason.connection_lost:
            end_at = billing_horizon(self.state)
        else:  # an event stamped earlier (media left, a webhook), an admin's end
            end_at = self.now - timedelta(milliseconds=early_ms)
        self.apply(plan_finish(self.state, end_at, reason))

    def settle(self) -> None:
        before = self.state
        outcome = plan(before, self.available, self.now, self.timeout)
        self.check_plan(before, outcome)
        self.apply(outcome)
        # settling again at the same moment changes nothing
        again = plan(self.state, self.available, self.now, self.timeout)
        assert not again.changed, (outcome, again)
        assert (again.captured, again.extension, again.released) == (0, 0, 0)
        if self.state.status == CallStatus.active:
            assert again.values() == outcome.values()
        else:
            assert again.status == CallStatus.ended
            assert (again.charged, again.held, again.host_earned, again.billed_seconds) == (
                outcome.charged,
                0,
                outcome.host_earned,
                outcome.billed_seconds,
            )

    # --- properties -----------------------------------------------------------------
    def apply(self, outcome: Outcome) -> None:
        before, available = self.state, self.available
        assert outcome.call_id == before.id
        assert outcome.old_version == before.version
        # coins: the extension comes out of the available coins, the capture out of the hold
        assert 0 <= outcome.extension <= available
        assert outcome.released >= 0
        assert outcome.host_part >= 0
        assert outcome.platform_part >= 0
        assert outcome.captured <= before.held + outcome.extension
        assert outcome.held == before.held + outcome.hold_delta
        assert outcome.held >= 0
        assert outcome.captured == outcome.charged - before.charged
        assert outcome.host_part == outcome.host_earned - before.host_earned
        # charges only move up; the host's share is the cumulative formula
        assert outcome.charged >= before.charged
        assert outcome.host_earned >= before.host_earned
        assert outcome.host_earned == host_earnings(self.tariff, outcome.charged)
        assert outcome.version >= before.version
        self.available = available - outcome.extension + outcome.released
        self.captured += outcome.captured
        self.host_parts += outcome.host_part
        self.state = after(before, outcome)
        self.due = outcome.due_at
        assert self.state.charged == self.captured
        assert self.state.host_earned == self.host_parts
        if outcome.ended:
            self.ended = outcome
            self.check_end(before, outcome)
        elif outcome.status == CallStatus.active:
            self.check_active(outcome)
        else:
            assert not outcome.changed  # an ended call stays as it was

    def check_plan(self, before: CallState, outcome: Outcome) -> None:
        """What only :func:`plan` promises (an end by :func:`plan_finish` captures from the
        hold it had)."""
        if before.status != CallStatus.active:
            assert not outcome.changed
            return
        if not outcome.ended:
            t_now = seconds_between(START, self.now)
            committed = before.charged + before.held
            needed = self.cost(next_boundary(self.tariff, t_now)) - committed
            assert outcome.next_charge_at == START + timedelta(
                seconds=next_boundary(self.tariff, t_now)
            )
            if needed <= self.available:
                # the wallet can pay for the next settlement point: the hold reaches it
                assert outcome.extension == max(0, needed)
                assert outcome.next_charge_at is not None
                assert outcome.paid_until is not None
                assert outcome.paid_until >= outcome.next_charge_at
            else:
                # a partial hold buys as much time as all the available coins would, and
                # no more coins than that
                kept = self.available - outcome.extension
                now_committed = outcome.charged + outcome.held
                assert self.covered(now_committed) == self.covered(now_committed + kept)
                assert outcome.extension == affordable_hold(self.tariff, committed, self.available)

    def check_active(self, outcome: Outcome) -> None:
        state = self.state
        paid = self.covered(state.charged + state.held)
        assert paid == paid_seconds(state)
        assert state.paid_until == START + timedelta(seconds=paid)
        # the hold pays every charge up to paid_until: cost(t) - charged <= held for t <= paid
        assert self.cost(paid) - state.charged <= state.held
        # charged is what the billed time costs, and billed time is within the paid time
        assert state.billed_seconds <= paid
        assert state.charged == self.cost(state.billed_seconds)
        assert outcome.due_at is not None
        assert outcome.next_charge_at is not None
        assert outcome.due_at <= outcome.next_charge_at
        assert outcome.due_at > self.now or (
            state.paid_until is not None and state.paid_until <= self.now
        )

    def check_end(self, before: CallState, outcome: Outcome) -> None:
        assert outcome.held == 0
        assert outcome.released == before.held + outcome.extension - outcome.captured
        assert outcome.ended_at is not None
        if before.status != CallStatus.active:
            assert outcome.charged == before.charged == 0
            return
        billed = outcome.billed_seconds
        # never past the presence horizon, never past the paid time
        assert billed <= seconds_between(START, billing_horizon(before))
        assert billed <= self.covered(before.charged + before.held + outcome.extension)
        assert seconds_between(START, outcome.ended_at) == billed  # the end, truncated
        # charged exactly for the billed time (an end stamped before a moment already
        # billed may bill less time, never fewer coins: then it keeps the billed time)
        assert outcome.charged == self.cost(billed)


@contextmanager
def minimum_charge(minimum: int) -> Iterator[None]:
    """The planner sees ``minimum`` on every call's tariff (it is not stored on calls, so
    ``tariff_of`` cannot read it): what a new billing rule looks like to the planner."""
    original = settlement.tariff_of
    settlement.tariff_of = lambda call: replace(original(call), minimum_charge=minimum)
    try:
        yield
    finally:
        settlement.tariff_of = original


def walk_through(tariff: Tariff, timeout: int, available: int, client_seen_ms: int) -> Walk:
    state = active_call(tariff, client_seen_ms)
    assert settlement.tariff_of(state) == tariff
    return Walk(tariff, timeout, state, available)


def end_by_the_meter(w: Walk) -> None:
    """Past every deadline, one settlement ends the call (the meter's last look)."""
    w.now += timedelta(seconds=paid_seconds(w.state) + w.timeout + w.tariff.interval_seconds)
    w.settle()
    assert w.state.status == CallStatus.ended
    assert w.state.held == 0


@walk_settings
@given(walks(tariffs()))
def test_walks_keep_the_invariants(walk: tuple[Tariff, int, int, int, list[Step]]) -> None:
    tariff, timeout, available, client_seen_ms, path = walk
    with minimum_charge(tariff.minimum_charge):
        w = walk_through(tariff, timeout, available, client_seen_ms)
        for step in path:
            w.step(step)
        end_by_the_meter(w)


# --- agreement with the reference model ---------------------------------------------------


def reference_for(tariff: Tariff, timeout: int, available: int, client_seen: int) -> Model:
    """The reference model holding the same call, at the moment it became active."""
    model = Model(
        tariff.policy,
        tariff.interval_seconds,
        tariff.host_share_percent,
        Timeouts(ring=30, connect=30, heartbeat=timeout),
    )
    hold = first_hold(tariff)
    model.balance[1], model.held[1], model.earnings[2] = available + hold, hold, 0
    call = MCall(1, client=1, host=2, tariff=tariff, created=-10, status="active")
    call.accepted, call.started, call.next_charge, call.due = -5, 0, 0, 0
    call.seen = {"client": -client_seen, "host": 0}
    call.held = hold
    model.calls.append(call)
    return model


def reference_step(model: Model, step: Step) -> None:
    """``step`` as the service would take it, on the reference model."""
    call = model.calls[0]
    kind = step[0]
    if kind in ("wallet", "wallet="):
        amount = step[1]
        assert isinstance(amount, int)
        available = model.available(1)
        model.balance[1] += max(amount, -available) if kind == "wallet" else amount - available
        return
    delay = step[1]
    assert isinstance(delay, int)
    model.now += delay // 1000
    if call.status == "ended":
        return
    if kind == "heartbeat":
        model.heartbeat(call, str(step[2]), media=True)
    elif kind == "beat":
        first = str(step[2])
        model.heartbeat(call, first, media=True)
        model.heartbeat(call, PARTIES[1 - PARTIES.index(first)], media=True)
    elif kind == "settle":
        if not model.overdue(call):
            model.settle(call)
    elif kind == "run":
        period = step[2]
        assert isinstance(period, int)
        until = model.now
        model.now -= delay // 1000
        while model.now < until:
            model.now = min(until, model.now + period)
            model.heartbeat(call, "client", media=True)
            model.heartbeat(call, "host", media=True)
    elif kind == "end":
        reason, early = step[2], step[3]
        assert isinstance(reason, EndReason)
        assert isinstance(early, int)
        if reason in (EndReason.client_hangup, EndReason.host_hangup):
            model.end(call, reason.value.removesuffix("_hangup"))
        elif not model.overdue(call):
            if reason is EndReason.connection_lost:
                end_at = model.bill_horizon(call)
            else:
                end_at = model.now - early // 1000
            model.finish(call, end_at, reason.value)


def seconds(moment: datetime | None) -> int | None:
    return None if moment is None else seconds_between(START, moment)


def agree(w: Walk, model: Model) -> None:
    call, state = model.calls[0], w.state
    planner = {
        "status": state.status,
        "end_reason": None,
        "charged": state.charged,
        "held": state.held,
        "host_earned": state.host_earned,
        "billed": state.billed_seconds,
        "paid_until": seconds(state.paid_until),
        "next_charge": seconds(state.next_charge_at),
        "due": seconds(w.due),
        "warning": state.warning,
        "available": w.available,
    }
    if w.ended is not None:
        planner["end_reason"] = w.ended.end_reason
    reference = {
        "status": call.status,
        "end_reason": call.end_reason,
        "charged": call.charged,
        "held": call.held,
        "host_earned": call.host_earned,
        "billed": call.billed,
        "paid_until": call.paid_until,
        "next_charge": call.next_charge,
        "due": call.due,
        "warning": call.warning,
        "available": model.available(1),
    }
    assert planner == reference


@walk_settings
@given(walks(tariffs(st.just(0)), whole_seconds=True))
def test_the_planner_agrees_with_the_reference_model(
    walk: tuple[Tariff, int, int, int, list[Step]],
) -> None:
    tariff, timeout, available, client_seen_ms, path = walk
    w = walk_through(tariff, timeout, available, client_seen_ms)
    model = reference_for(tariff, timeout, available, client_seen_ms // 1000)
    agree(w, model)
    for step in path:
        w.step(step)
        reference_step(model, step)
        agree(w, model)
    # the books: what the client paid went to the host and the platform
    assert model.earnings[2] == w.state.host_earned
    assert model.revenue == w.state.charged - w.state.host_earned


def test_a_late_settlement_charges_what_its_extension_pays_for() -> None:
    """Found by the walks: the charge was capped at the paid time before the hold was
    extended, so a call settled past its paid time (a meter 5 s late, a wallet topped up
    while the call waited) kept a charge pending — and settling again at the same moment
    charged it (10 coins, then 20)."""
    tariff = Tariff(BillingPolicy.per_started_interval, rate=10, interval_seconds=60)
    state = replace(
        active_call(tariff, 0),  # held 10: paid until 60 s
        client_last_seen_at=at(65_000),
        host_last_seen_at=at(65_000),
    )
    first = plan(state, 100, at(65_000), 30)
    assert (first.charged, first.held, first.extension) == (20, 0, 10)
    assert first.paid_until == at(120_000)
    assert not charge_pending(after(state, first), at(65_000))
    again = plan(after(state, first), 100 - first.extension, at(65_000), 30)
    assert not again.changed


@given(
    tariffs(st.just(0)),
    st.integers(0, 400_000),  # ms of the call when it was last settled, both present
    st.integers(0, 200_000),  # ms from then to a heartbeat
    st.integers(0, 200_000),  # ms the other party was last seen before that heartbeat
    st.integers(0, 10_000),  # coins available
)
def test_what_is_pending_came_due_at_a_deadline_or_the_last_settlement_point(
    tariff: Tariff, settled_ms: int, later_ms: int, other_ms: int, available: int
) -> None:
    """``pending_since``: when what a heartbeat finds due (``charge_pending``) came due —
    the next charge or the end of paid time once that moment has come, otherwise the last
    settlement point (a charge owed because both are now seen past it). It is never after
    now, and never more than one interval before it in the second case: what decides how
    long a charge may be left to the meter (``calls.beats``)."""
    state = active_call(tariff, 0)
    settled = at(settled_ms)
    present = saw(saw(state, "client", settled), "host", settled)
    state = after(state, plan(present, available, settled, 10**6))
    assume(state.status == CallStatus.active)  # not ended for want of coins
    now = settled + timedelta(milliseconds=later_ms)
    state = saw(
        saw(state, "client", now), "host", max(settled, now - timedelta(milliseconds=other_ms))
    )
    if not charge_pending(state, now):
        return
    since = settlement.pending_since(state, now)
    assert since <= now
    assert state.next_charge_at is not None
    assert state.paid_until is not None
    deadline = min(state.next_charge_at, state.paid_until)
    if deadline <= now:
        assert since == deadline
    else:
        offset = (since - START).total_seconds()
        assert offset >= tariff.free_seconds
        assert (offset - tariff.free_seconds) % tariff.interval_seconds == 0
        assert now - since < timedelta(seconds=tariff.interval_seconds + 1)
