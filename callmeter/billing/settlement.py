"""The settlement planner: what a call owes and holds at a moment, as a pure function.

No session, no I/O: :func:`plan` and :func:`plan_finish` take a :class:`CallState` (built
from an ORM row or a batch row alike) and return an :class:`Outcome` — the call's new
billing state and the coins to move (captured from the hold, newly reserved, released).
``calls.settlement`` applies outcomes, one call or a batch of thousands, through the one
ledger writer; every path (heartbeat, hang-up, webhook, meter, admin) plans here.

The rules (docs/design.md):

* billable time is whole seconds since ``started_at``, never past the presence horizon (the
  last moment both parties were known present) nor ``paid_until`` (:func:`billable_seconds`);
* the charge only moves up, to ``cost(billable)``; the host's share is recomputed from the
  cumulative total (``policy.host_earnings``);
* the hold always covers the call until the next settlement point, so
  ``charged + held >= cost(t)`` for every ``t`` up to ``paid_until``; when the wallet
  cannot fund that, it holds what still buys time (``policy.affordable_hold``);
* a call ends ``connection_lost`` at the horizon when a party has been silent past the
  heartbeat timeout, and ``insufficient_funds`` at ``paid_until`` once its paid time is
  over and both parties were seen there (until then it waits, charging nothing more);
* an end is billed to its moment, never past the horizon nor ``paid_until``, never less
  than what was already charged.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from callmeter.billing.policy import (
    Tariff,
    affordable_hold,
    cost,
    covered_seconds,
    host_earnings,
    next_boundary,
)
from callmeter.config import BillingPolicy
from callmeter.models import CallStatus, EndReason

LOW_BALANCE = "low_balance"


@dataclass(slots=True)  # immutable by use; not frozen: a meter batch builds 10,000s
class CallState:
    """What settlement reads of a call."""

    id: int
    version: int
    status: str
    started_at: datetime | None
    policy: str
    rate: int
    interval_seconds: int
    free_seconds: int
    host_share_percent: int
    charged: int
    held: int
    host_earned: int
    billed_seconds: int
    warning: str | None
    paid_until: datetime | None
    next_charge_at: datetime | None
    client_last_seen_at: datetime | None
    host_last_seen_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> CallState:
        """From anything with these attributes: a ``Call`` or a row of a batch query."""
        return cls(*_read_state(row))


STATE_FIELDS = tuple(f.name for f in fields(CallState))
_read_state = operator.attrgetter(*STATE_FIELDS)


def tariff_of(call: Any) -> Tariff:
    """The tariff snapshotted on a call (a ``CallState``, a ``Call`` or a row)."""
    return _tariff(
        call.policy, call.rate, call.interval_seconds, call.free_seconds, call.host_share_percent
    )


@functools.lru_cache(maxsize=256)
def _tariff(policy: str, rate: int, interval: int, free: int, share: int) -> Tariff:
    # a meter batch holds thousands of calls of a handful of tariffs: build each once
    return Tariff(
        policy=BillingPolicy(policy),
        rate=rate,
        interval_seconds=interval,
        free_seconds=free,
        host_share_percent=share,
    )


# What settlement writes back on a call row.
CALL_COLUMNS = (
    "version",
    "status",
    "charged",
    "host_earned",
    "held",
    "billed_seconds",
    "warning",
    "paid_until",
    "next_charge_at",
    "due_at",
    "ended_at",
    "end_reason",
)
# The columns that change while a call stays active (the end columns stay as they were).
ONGOING_COLUMNS = tuple(c for c in CALL_COLUMNS if c not in ("status", "ended_at", "end_reason"))


@dataclass(slots=True)  # immutable by use; not frozen: a meter batch builds 10,000s
class Outcome:
    """A planned settlement: the call's new billing state and the coins that move."""

    call_id: int
    old_version: int
    version: int
    status: str
    charged: int
    host_earned: int
    held: int
    billed_seconds: int
    warning: str | None
    paid_until: datetime | None
    next_charge_at: datetime | None
    due_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    host_part: int = 0  # captured from the hold into the host's earnings
    platform_part: int = 0  # captured from the hold into the platform's revenue
    extension: int = 0  # newly reserved out of the wallet's available coins
    released: int = 0  # given back to the wallet when the call ends

    @property
    def captured(self) -> int:
        return self.host_part + self.platform_part

    @property
    def hold_delta(self) -> int:
        """The change of the call's hold (and of the wallet's held coins)."""
        return self.extension - self.captured - self.released

    @property
    def ended(self) -> bool:
        """Whether this outcome ends the call."""
        return self.status == CallStatus.ended and self.ended_at is not None

    @property
    def changed(self) -> bool:
        """Whether applying this outcome changes anything a party sees or any coin."""
        return self.version != self.old_version or self.hold_delta != 0 or self.captured != 0

    def values(self) -> dict[str, object]:
        """The call's new column values (``CALL_COLUMNS``)."""
        return {name: getattr(self, name) for name in CALL_COLUMNS}


# --- time -------------------------------------------------------------------------------


def seconds_between(start: datetime, moment: datetime) -> int:
    """Whole seconds from ``start`` to ``moment`` (0 when ``moment`` is earlier)."""
    return max(0, int((moment - start).total_seconds()))


def presence_horizon(call: Any) -> datetime | None:
    """The latest moment both parties are known to have been on the call."""
    client: datetime | None = call.client_last_seen_at
    host: datetime | None = call.host_last_seen_at
    if client is None or host is None:
        return None
    return min(client, host)


def presence_lost(call: Any, now: datetime, heartbeat_timeout: int) -> bool:
    """Whether a party of an active call has been silent past the heartbeat timeout."""
    horizon = presence_horizon(call)
    return horizon is not None and now >= horizon + timedelta(seconds=heartbeat_timeout)


def may_coalesce(call: Any, seen: datetime | None, now: datetime) -> bool:
    """Whether a party's heartbeat at ``now`` may go unrecorded when its presence was last
    recorded at ``seen``: no change of cost (a billing boundary; each second under
    per-second billing) lies between the two, so billing to either costs the same."""
    started: datetime | None = call.started_at
    if seen is None or started is None or now < seen:
        return False
    tariff = tariff_of(call)
    return cost(tariff, seconds_between(started, seen)) == cost(
        tariff, seconds_between(started, now)
    )


HEARTBEAT_SETTING_UP_SECONDS = 2  # ringing or connecting: billing starts on media reports
HEARTBEAT_MAX_SECONDS = 15


def heartbeat_period(status: str, heartbeat_timeout: int) -> int:
    """Seconds between a party's heartbeats, as the server asks of clients: three a timeout
    while active (two may be lost before a party counts as gone), at most 15 s — a charge
    does not wait for it (clients also beat just after each boundary); faster while the
    call is being set up; 0 once it ended."""
    if status == CallStatus.ended:
        return 0
    period = max(1, min(heartbeat_timeout // 3, HEARTBEAT_MAX_SECONDS))
    if status != CallStatus.active:
        return min(period, HEARTBEAT_SETTING_UP_SECONDS)
    return period


def billing_horizon(call: Any) -> datetime:
    """The latest moment an active call may be billed to: its presence horizon (its start
    while a party has not been seen yet)."""
    started: datetime | None = call.started_at
    assert started is not None
    return max(started, presence_horizon(call) or started)


def paid_seconds(call: Any) -> int:
    """How long the coins committed to the call (charged + held) let it run."""
    return covered_seconds(tariff_of(call), call.charged + call.held)


def billable_seconds(call: Any, now: datetime, paid: int | None = None) -> int:
    """The seconds an active call may be charged for at ``now``: since its start, never
    past the presence horizon, never past its paid time (``paid`` seconds, when the caller
    knows them: the coins committed to the call, :func:`paid_seconds`)."""
    assert call.started_at is not None
    until = min(billing_horizon(call), now)
    paid = paid_seconds(call) if paid is None else paid
    return min(seconds_between(call.started_at, until), paid)


def charge_pending(call: Any, now: datetime) -> bool:
    """Whether settling now would charge, extend or end anything (cheap: no I/O)."""
    if call.status != CallStatus.active or call.started_at is None:
        return False
    if (call.next_charge_at and now >= call.next_charge_at) or (
        call.paid_until and now >= call.paid_until
    ):
        return True
    if presence_horizon(call) is None:
        return False
    charged: int = call.charged
    return cost(tariff_of(call), billable_seconds(call, now)) > charged


def pending_since(call: Any, now: datetime) -> datetime:
    """Since when what :func:`charge_pending` finds at ``now`` has been due: the next
    charge or the end of paid time, when that moment has come; otherwise (a charge owed
    because both parties are now seen past a settlement point) the last settlement point
    at or before ``now``. For an active call (``started_at``, ``next_charge_at`` and
    ``paid_until`` set)."""
    assert call.started_at is not None
    assert call.next_charge_at is not None
    assert call.paid_until is not None
    moment: datetime = min(call.next_charge_at, call.paid_until)
    if moment <= now:
        return moment
    tariff = tariff_of(call)
    point = next_boundary(tariff, seconds_between(call.started_at, now)) - tariff.interval_seconds
    return call.started_at + timedelta(seconds=max(tariff.free_seconds, point))  # type: ignore[no-any-return]


def due_at(
    next_charge_at: datetime,
    paid_until: datetime,
    horizon: datetime | None,
    timeout: int,
    now: datetime,
) -> datetime:
    """When the meter must look at an active call: the next boundary, the end of its paid
    time, or the moment a silent party times out, whichever comes first. A call already
    past its paid time waits for presence (a heartbeat ends it), so the meter looks at the
    timeout rather than at every tick."""
    deadlines = [next_charge_at]
    if paid_until > now:
        deadlines.append(paid_until)
    if horizon is not None:
        deadlines.append(horizon + timedelta(seconds=timeout))
    return min(deadlines)


# --- planning ---------------------------------------------------------------------------


def _unchanged(state: CallState) -> Outcome:
    return Outcome(
        call_id=state.id,
        old_version=state.version,
        version=state.version,
        status=state.status,
        charged=state.charged,
        host_earned=state.host_earned,
        held=state.held,
        billed_seconds=state.billed_seconds,
        warning=state.warning,
        paid_until=state.paid_until,
        next_charge_at=state.next_charge_at,
        due_at=None,
        ended_at=None,
        end_reason=None,
    )


def _charged_to(state: CallState, tariff: Tariff, target: int) -> CallState:
    """``state`` with ``charged`` raised to ``target`` out of the hold (never lowered)."""
    if target <= state.charged:
        return state
    return replace(
        state,
        charged=target,
        host_earned=host_earnings(tariff, target),
        held=state.held - (target - state.charged),
    )


def plan(state: CallState, available: int, now: datetime, heartbeat_timeout: int) -> Outcome:
    """Bring an active call's charges and hold up to ``now`` when its client has
    ``available`` coins: charge and extend the hold (in full, or what still buys time),
    or end the call. Always an outcome; a call that is not active is left as it is.
    Settling the outcome's state again at the same moment changes nothing."""
    if state.status != CallStatus.active or state.started_at is None:
        return _unchanged(state)
    if presence_lost(state, now, heartbeat_timeout):
        # billed to the last moment both were there; no hold is extended for the silence
        return plan_finish(state, billing_horizon(state), EndReason.connection_lost)
    started = state.started_at
    tariff = tariff_of(state)
    t_now = seconds_between(started, now)
    # Cover the call up to the next settlement point after now (a charge moves coins from
    # the hold to charged, so what is committed does not depend on it) ...
    committed = state.charged + state.held
    missing = max(0, cost(tariff, next_boundary(tariff, t_now)) - committed)
    extension = missing if missing <= available else affordable_hold(tariff, committed, available)
    committed += extension
    paid = covered_seconds(tariff, committed)
    # ... then charge up to now, within the paid time the extension makes. A request reads
    # the clock before it waits for the call's lock, so ``now`` may be older than a
    # settlement made meanwhile: billed time, like the charge, never goes back.
    billable = max(state.billed_seconds, billable_seconds(state, now, paid))
    charged, host_earned = state.charged, state.host_earned
    if (target := cost(tariff, billable)) > charged:
        charged, host_earned = target, host_earnings(tariff, target)
    host_part = host_earned - state.host_earned
    platform_part = charged - state.charged - host_part
    if paid <= t_now and seconds_between(started, billing_horizon(state)) >= paid:
        # out of paid time, both parties seen there: the end, at paid_until
        extended = replace(
            state, charged=charged, host_earned=host_earned, held=committed - charged
        )
        end = plan_finish(extended, started + timedelta(seconds=paid), EndReason.insufficient_funds)
        return replace(
            end,
            old_version=state.version,
            host_part=end.host_part + host_part,
            platform_part=end.platform_part + platform_part,
            extension=extension,
        )
    # Out of paid time but a party not yet seen at paid_until: the call waits (nothing more
    # is charged) until a heartbeat shows both there — then it ends at paid_until — or the
    # silence reaches the timeout — then it ends connection_lost at the horizon.
    reach = covered_seconds(tariff, state.charged + state.held + available)
    warning = LOW_BALANCE if reach - t_now <= tariff.interval_seconds else None
    paid_until = started + timedelta(seconds=paid)
    next_charge_at = started + timedelta(seconds=next_boundary(tariff, t_now))
    if state.next_charge_at is not None and state.next_charge_at > next_charge_at:
        next_charge_at = state.next_charge_at
    held = committed - charged
    seen = (charged, held, host_earned, warning, paid_until, next_charge_at, billable)
    return Outcome(
        call_id=state.id,
        old_version=state.version,
        version=state.version + (seen != _seen(state)),  # what a party sees moved
        status=state.status,
        charged=charged,
        host_earned=host_earned,
        held=held,
        billed_seconds=billable,
        warning=warning,
        paid_until=paid_until,
        next_charge_at=next_charge_at,
        due_at=due_at(next_charge_at, paid_until, presence_horizon(state), heartbeat_timeout, now),
        ended_at=None,
        end_reason=None,
        host_part=host_part,
        platform_part=platform_part,
        extension=extension,
    )


def _seen(state: CallState) -> tuple[object, ...]:
    """What a party sees of an active call (its status and end cannot change here)."""
    return (
        state.charged,
        state.held,
        state.host_earned,
        state.warning,
        state.paid_until,
        state.next_charge_at,
        state.billed_seconds,
    )


def plan_many(
    calls: Iterable[tuple[CallState, int]],
    available: dict[int, int],
    now: datetime,
    heartbeat_timeout: int,
) -> list[Outcome]:
    """:func:`plan` for several calls, each given as (state, wallet id): each is planned
    with its wallet's ``available`` coins as the plans before it left them (a hold takes
    coins out, a release gives them back); ``available`` is updated."""
    outcomes = []
    for state, wallet in calls:
        outcome = plan(state, available[wallet], now, heartbeat_timeout)
        available[wallet] += outcome.released - outcome.extension
        outcomes.append(outcome)
    return outcomes


def _host_part(before: CallState, after: CallState) -> int:
    return after.host_earned - before.host_earned


def _platform_part(before: CallState, after: CallState) -> int:
    return (after.charged - before.charged) - _host_part(before, after)


def plan_finish(state: CallState, end_at: datetime, reason: EndReason) -> Outcome:
    """End a call as of ``end_at`` (a hang-up, a timeout, a webhook, an admin): the final
    charge for an active call — never past the presence horizon nor ``paid_until``, never
    less than what was already charged — and whatever the hold still reserves released.
    Ending an ended call changes nothing, so the first ender's summary stands."""
    if state.status == CallStatus.ended:
        return _unchanged(state)
    final, billed = state, state.billed_seconds
    if state.status == CallStatus.active:
        assert state.started_at is not None
        started = state.started_at
        paid = paid_seconds(state)
        billed = billable_seconds(state, end_at, paid)
        latest = min(billing_horizon(state), started + timedelta(seconds=paid))
        end_at = max(started, min(end_at, latest))  # the moment ``billed`` ends
        tariff = tariff_of(state)
        if cost(tariff, billed) < state.charged:
            # Settlement is monotone: an end stamped before a moment already charged for
            # (an early event time, a clock that disagrees) cannot un-bill it.
            billed = state.billed_seconds
            end_at = started + timedelta(seconds=billed)
        final = _charged_to(state, tariff, cost(tariff, billed))
    else:
        reason = unbilled_reason(reason)
    return Outcome(
        call_id=state.id,
        old_version=state.version,
        version=state.version + 1,
        status=CallStatus.ended,
        charged=final.charged,
        host_earned=final.host_earned,
        held=0,
        billed_seconds=billed,
        warning=None,
        paid_until=state.paid_until,
        next_charge_at=None,
        due_at=None,
        ended_at=end_at,
        end_reason=reason,
        host_part=_host_part(state, final),
        platform_part=_platform_part(state, final),
        released=final.held,
    )


def unbilled_reason(reason: EndReason) -> EndReason:
    """A call that never became active ends as declined/cancelled/missed/connect_failed."""
    return {
        EndReason.host_hangup: EndReason.declined,
        EndReason.client_hangup: EndReason.cancelled,
        EndReason.insufficient_funds: EndReason.cancelled,
        EndReason.connection_lost: EndReason.connect_failed,
        EndReason.media_left: EndReason.connect_failed,
        EndReason.account_frozen: EndReason.cancelled,
    }.get(reason, reason)
