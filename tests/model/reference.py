"""A small, pure reference model of callmeter's billing: integers and dicts, no database.

It restates docs/design.md's rules (settlement to the credible billable time, holds one boundary
ahead, the end at paid_until, earnings split by the cumulative formula, refunds in
proportion) over whole-second model time, using only the pure cost functions. The
model-based test drives it and the real service with the same steps and compares them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callmeter.billing.policy import (
    Tariff,
    affordable_hold,
    cost,
    covered_seconds,
    host_earnings,
    next_boundary,
)
from callmeter.config import BillingPolicy


class Refused(Exception):
    """The service must refuse this step with the error named by ``code``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Timeouts:
    ring: int
    connect: int
    heartbeat: int
    lease: int = 15
    reconcile: int = 5  # LiveKit: ListParticipants period
    grace: int = 15  # LiveKit: how long a departed party may take to come back
    rering_cooldown: int = 60  # after a call that never connected, before ringing that host
    unanswered_rings: int = 10  # rings nobody picked up, per client and window
    ring_window: int = 600


@dataclass
class MCall:
    id: int
    client: int
    host: int
    tariff: Tariff
    created: int
    status: str = "ringing"
    end_reason: str | None = None
    accepted: int | None = None
    started: int | None = None
    ended: int | None = None
    seen: dict[str, int | None] = field(default_factory=lambda: {"client": None, "host": None})
    media: dict[str, int | None] = field(default_factory=lambda: {"client": None, "host": None})
    charged: int = 0
    held: int = 0
    host_earned: int = 0
    refunded: int = 0
    billed: int = 0
    next_charge: int | None = None
    paid_until: int | None = None
    due: int | None = None
    warning: str | None = None
    livekit: bool = False
    lk_sid: dict[str, str | None] = field(default_factory=lambda: {"client": None, "host": None})
    left_at: dict[str, int | None] = field(default_factory=lambda: {"client": None, "host": None})


@dataclass
class Model:
    policy: BillingPolicy
    interval: int
    share: int
    timeouts: Timeouts
    now: int = 0
    balance: dict[int, int] = field(default_factory=dict)
    held: dict[int, int] = field(default_factory=dict)
    earnings: dict[int, int] = field(default_factory=dict)
    revenue: int = 0
    calls: list[MCall] = field(default_factory=list)
    livekit: bool = False
    departed_sids: set[str] = field(default_factory=set)

    # --- helpers ------------------------------------------------------------------------
    def available(self, client: int) -> int:
        return self.balance[client] - self.held[client]

    def unfinished(self, **who: int) -> MCall | None:
        for call in self.calls:
            if call.status != "ended" and all(getattr(call, k) == v for k, v in who.items()):
                return call
        return None

    def paid_seconds(self, call: MCall) -> int:
        return covered_seconds(call.tariff, call.charged + call.held)

    def horizon(self, call: MCall) -> int | None:
        c, h = call.seen["client"], call.seen["host"]
        return None if c is None or h is None else min(c, h)

    def bill_horizon(self, call: MCall) -> int:
        """The latest moment an active call may be billed to."""
        assert call.started is not None
        h = self.horizon(call)
        return max(call.started, call.started if h is None else h)

    def in_room(self, call: MCall, party: str) -> bool:
        return call.lk_sid[party] is not None and call.left_at[party] is None

    def lost(self, call: MCall) -> bool:
        h = self.horizon(call)
        return h is not None and self.now >= h + self.timeouts.heartbeat

    def overdue(self, call: MCall) -> bool:
        """design rule 6: every path first ends a call that passed a deadline."""
        if call.status == "ringing":
            deadline = call.created + self.timeouts.ring
            if self.now >= deadline:
                self.finish(call, deadline, "missed")
                return True
        elif call.status == "connecting":
            assert call.accepted is not None
            deadline = call.accepted + self.timeouts.connect
            if self.now >= deadline:
                self.finish(call, deadline, "connect_failed")
                return True
        elif call.status == "active":
            gone = [t for t in call.left_at.values() if t is not None]
            if gone and self.now >= min(gone) + self.timeouts.grace:
                self.finish(call, min(gone), "media_left")
                return True
            if self.lost(call):
                self.finish(call, self.bill_horizon(call), "connection_lost")
                return True
        return False

    # --- the steps -----------------------------------------------------------------------
    def grant(self, client: int, amount: int) -> None:
        self.balance[client] += amount

    def ring(self, client: int, host: int, rate: int) -> MCall:
        for stale in [c for c in self.calls if c.status != "ended"]:
            if stale.client == client or stale.host == host:
                self.overdue(stale)
        if self.unfinished(client=client):
            raise Refused("client_busy")
        ended = [c for c in self.calls if c.client == client and c.ended is not None]
        if any(
            c.host == host
            and c.end_reason in ("declined", "cancelled", "missed", "connect_failed")
            and c.ended is not None
            and c.ended > self.now - self.timeouts.rering_cooldown
            for c in ended
        ):
            raise Refused("ring_cooldown")
        unanswered = [
            c
            for c in ended
            if c.accepted is None
            and c.ended is not None
            and c.ended > self.now - self.timeouts.ring_window
        ]
        if len(unanswered) >= self.timeouts.unanswered_rings:
            raise Refused("ring_cooldown")
        if self.unfinished(host=host):
            raise Refused("host_busy")
        if self.available(client) < rate:
            raise Refused("insufficient_funds")
        tariff = Tariff(self.policy, rate, self.interval, 0, self.share)
        call = MCall(len(self.calls) + 1, client, host, tariff, self.now, held=rate)
        call.livekit = self.livekit
        call.due = self.now + self.timeouts.ring
        self.held[client] += rate
        self.calls.append(call)
        return call

    def accept(self, call: MCall) -> None:
        self.overdue(call)
        if call.status == "ended":
            raise Refused("call_ended")
        if call.status != "ringing":
            raise Refused("invalid_call_state")
        call.status, call.accepted = "connecting", self.now
        call.due = self.now + self.timeouts.connect
        self.look_again(call)

    def decline(self, call: MCall) -> None:
        self.overdue(call)
        if call.status == "ended":
            raise Refused("call_ended")
        if call.status != "ringing":
            raise Refused("invalid_call_state")
        self.finish(call, self.now, "declined")

    def heartbeat(self, call: MCall, party: str, media: bool) -> None:
        if call.status == "ended" or self.overdue(call):
            return
        if not call.livekit:
            call.seen[party] = self.now
            if media and call.status == "connecting" and call.media[party] is None:
                call.media[party] = self.now
        elif self.in_room(call, party):  # a heartbeat counts only while LiveKit has it in
            seen = call.seen[party]
            call.seen[party] = self.now if seen is None else max(seen, self.now)
        self.activate_if_connected(call)
        if self.charge_pending(call):
            self.settle(call)
        self.look_again(call)

    def activate_if_connected(self, call: MCall) -> None:
        c, h = call.media["client"], call.media["host"]
        if call.status == "connecting" and c is not None and h is not None:
            call.status, call.started = "active", max(c, h)
            call.next_charge = call.started

    # --- LiveKit presence (webhooks and reconciliation) -----------------------------------
    def event_time(self, call: MCall, skew: int) -> int:
        """LiveKit's clock, ``skew`` seconds off ours, clamped to [accepted, arrival]."""
        floor = call.accepted if call.accepted is not None else call.created
        return max(floor, min(self.now + skew, self.now))

    def webhook_joined(self, call: MCall, party: str, sid: str, skew: int = 0) -> None:
        if call.status == "ended" or self.overdue(call) or sid in self.departed_sids:
            return  # an ended call is kicked again; a late joined of a departed sid is void
        if call.status in ("connecting", "active"):
            self.joined(call, party, sid, self.event_time(call, skew))
            self.activate_if_connected(call)
        self.after_presence(call)

    def webhook_left(self, call: MCall, party: str, sid: str, skew: int = 0) -> None:
        self.departed_sids.add(sid)
        if call.status == "ended" or self.overdue(call):
            return
        if call.status in ("connecting", "active"):
            self.left(call, party, sid, self.event_time(call, skew))
        if call.status != "ended":
            self.after_presence(call)

    def after_presence(self, call: MCall) -> None:
        if self.charge_pending(call):
            self.settle(call)
        self.look_again(call)

    def joined(self, call: MCall, party: str, sid: str, at: int) -> None:
        call.lk_sid[party], call.left_at[party] = sid, None
        seen = call.seen[party]
        call.seen[party] = max(seen, at) if seen is not None else at
        if call.status == "connecting" and call.media[party] is None:
            call.media[party] = at

    def left(self, call: MCall, party: str, sid: str | None, at: int) -> None:
        current = call.lk_sid[party]
        if current is None or (sid is not None and sid != current):
            return
        if call.left_at[party] is None:
            seen = call.seen[party]
            gone = max(seen, at) if seen is not None else at
            call.left_at[party] = call.seen[party] = gone
        if call.status == "connecting":
            call.media[party] = None

    def reconcile(self, call: MCall, present: dict[str, str] | None) -> None:
        for party, user in (("client", call.client), ("host", call.host)):
            sid = (present or {}).get(f"user-{user}")
            if sid is not None and sid not in self.departed_sids:
                self.joined(call, party, sid, self.now)
            elif call.lk_sid[party] is not None:
                seen = call.seen[party]
                self.left(call, party, None, seen if seen is not None else self.now)

    def look_again(self, call: MCall) -> None:
        if not call.livekit or call.status == "ended":
            return
        moments = [self.now + self.timeouts.reconcile]
        moments += [t + self.timeouts.grace for t in call.left_at.values() if t is not None]
        call.due = min(call.due if call.due is not None else self.now, *moments)

    def end(self, call: MCall, party: str) -> None:
        if call.status == "ended" or self.overdue(call):
            return
        if call.status == "active" and (not call.livekit or self.in_room(call, party)):
            call.seen[party] = self.now  # the hang-up shows its sender was there
        self.finish(call, self.now, f"{party}_hangup")

    def tick(self, rooms: dict[str, dict[str, str] | None] | None = None) -> None:
        """``rooms``: what ListParticipants answers per room (None: no such room), as seen
        at the start of the tick."""
        due = [
            c for c in self.calls if c.status != "ended" and c.due is not None and c.due <= self.now
        ]
        for call in due:
            call.due = self.now + self.timeouts.lease  # the claim's lease
            if call.livekit and rooms is not None and call.status in ("connecting", "active"):
                self.reconcile(call, rooms.get(f"call-{call.id}"))
                self.activate_if_connected(call)
            if not self.overdue(call):
                if call.status == "ringing":
                    call.due = call.created + self.timeouts.ring
                elif call.status == "connecting":
                    assert call.accepted is not None
                    call.due = call.accepted + self.timeouts.connect
                else:
                    self.settle(call)
            self.look_again(call)

    def refund(self, call: MCall, amount: int | None) -> int:
        if call.status != "ended":
            raise Refused("invalid_call_state")
        refundable = call.charged - call.refunded
        amount = refundable if amount is None else amount
        if amount <= 0 or amount > refundable:
            raise Refused("refund_exceeds_charge")
        total = call.refunded + amount
        host_part = (
            total * call.host_earned // call.charged
            - call.refunded * call.host_earned // call.charged
        )
        platform_part = amount - host_part
        if self.earnings[call.host] < host_part or self.revenue < platform_part:
            raise Refused("insufficient_funds")
        self.earnings[call.host] -= host_part
        self.revenue -= platform_part
        self.balance[call.client] += amount
        call.refunded = total
        return amount

    # --- settlement (design rules 3 to 7) ----------------------------------------------
    def charge_pending(self, call: MCall) -> bool:
        if call.status != "active" or call.started is None:
            return False
        if (call.next_charge is not None and self.now >= call.next_charge) or (
            call.paid_until is not None and self.now >= call.paid_until
        ):
            return True
        horizon = self.horizon(call)
        if horizon is None:
            return False
        billable = min(max(0, min(horizon, self.now) - call.started), self.paid_seconds(call))
        return cost(call.tariff, billable) > call.charged

    def charge_to(self, call: MCall, target: int) -> None:
        if target <= call.charged:
            return
        delta = target - call.charged
        host_total = host_earnings(call.tariff, target)
        self.earnings[call.host] += host_total - call.host_earned
        self.revenue += delta - (host_total - call.host_earned)
        self.balance[call.client] -= delta
        self.held[call.client] -= delta
        call.held -= delta
        call.charged, call.host_earned = target, host_total

    def settle(self, call: MCall) -> None:
        assert call.started is not None
        if self.lost(call):
            self.finish(call, self.bill_horizon(call), "connection_lost")
            return
        t_now = self.now - call.started
        horizon = self.bill_horizon(call)
        # the hold first (up to the next boundary), then the charge within the paid time
        missing = cost(call.tariff, next_boundary(call.tariff, t_now)) - call.charged - call.held
        if missing > 0:
            available = self.available(call.client)
            if available < missing:
                # hold what still buys time: under an interval policy whole intervals
                # only, under per_second no coin that buys no second (rate > interval)
                missing = affordable_hold(call.tariff, call.charged + call.held, available)
            if missing > 0:
                self.held[call.client] += missing
                call.held += missing
        billable = min(max(0, min(horizon, self.now) - call.started), self.paid_seconds(call))
        self.charge_to(call, cost(call.tariff, billable))
        paid = self.paid_seconds(call)
        if paid <= t_now and horizon - call.started >= paid:
            # out of coins, and both were seen at paid_until; otherwise wait for them
            self.finish(call, call.started + paid, "insufficient_funds")
            return
        reach = covered_seconds(call.tariff, call.charged + call.held + self.available(call.client))
        call.warning = "low_balance" if reach - t_now <= call.tariff.interval_seconds else None
        call.billed = billable
        call.paid_until = call.started + paid
        call.next_charge = call.started + next_boundary(call.tariff, t_now)
        deadlines = [call.next_charge]
        if call.paid_until > self.now:
            deadlines.append(call.paid_until)
        h = self.horizon(call)
        if h is not None:
            deadlines.append(h + self.timeouts.heartbeat)
        call.due = min(deadlines)

    def finish(self, call: MCall, at: int, reason: str) -> None:
        if call.status == "ended":
            return
        if call.status == "active":
            assert call.started is not None
            latest = min(self.bill_horizon(call), call.started + self.paid_seconds(call))
            at = max(call.started, min(at, latest))
            if cost(call.tariff, at - call.started) >= call.charged:
                call.billed = at - call.started
            # else: never un-bill a settlement; keep the billed time already charged for
            self.charge_to(call, cost(call.tariff, call.billed))
        else:
            reason = {
                "host_hangup": "declined",
                "client_hangup": "cancelled",
                "insufficient_funds": "cancelled",
                "connection_lost": "connect_failed",
                "media_left": "connect_failed",
            }.get(reason, reason)
        self.held[call.client] -= call.held
        call.held = 0
        call.status, call.end_reason, call.ended = "ended", reason, at
        call.warning = call.due = call.next_charge = None
