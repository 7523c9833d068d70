"""Model-based test: random interleavings of everything a call can go through, applied to
the real service (real database, injected clock) and to the reference model; after every
step they must agree on every call, wallet, earning and the platform's revenue, and the
ledger check must pass. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import shutil
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from livekit import api as lk
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.app import create_runtime
from callmeter.auth import service as auth
from callmeter.calls import service as calls
from callmeter.calls import webhooks
from callmeter.calls.check import check_ledger_and_calls
from callmeter.config import BillingPolicy
from callmeter.errors import CallmeterError
from callmeter.kit.clock import ManualClock
from callmeter.kit.db import run_in_transaction
from callmeter.ledger import service as ledger
from callmeter.meter.service import tick
from callmeter.models import Account, AccountKind, Call, Role, User
from tests.conftest import _empty_postgres, make_settings, sqlite_url
from tests.media.standin import KEY, SECRET, running_standin
from tests.model.reference import MCall, Model, Refused, Timeouts

T = TypeVar("T")
EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "8"))
RATES = (10, 7)  # host 0 charges 10 per interval, host 1 charges 7
PARTIES = ("client", "host")
# LiveKit's clock: mostly ours, sometimes an hour behind or ahead (clamped by the server)
SKEWS = st.sampled_from([0, 0, 0, -3600, 3600])


class Killed(Exception):
    """The process died before the transaction committed."""


def machine_for(make_url: Callable[[], str], livekit: bool) -> type[RuleBasedStateMachine]:
    class Billing(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.clock = ManualClock()
            self.t0 = self.clock.now()
            self.url = make_url()

        def run(self, work: Awaitable[T]) -> T:
            return self.loop.run_until_complete(work)

        def tx(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
            return self.run(run_in_transaction(self.runtime.sessionmaker, work))

        def racing(self, work: Callable[[AsyncSession], Awaitable[None]], copies: int) -> None:
            """The same request sent ``copies`` times at once, each in its own transaction."""

            async def all_at_once() -> None:
                await asyncio.gather(
                    *(run_in_transaction(self.runtime.sessionmaker, work) for _ in range(copies))
                )

            self.run(all_at_once())

        def teardown(self) -> None:
            if hasattr(self, "runtime"):
                self.run(self.runtime.close())
            if hasattr(self, "standin_context"):
                self.run(self.standin_context.__aexit__(None, None, None))
            self.loop.close()

        @initialize(
            policy=st.sampled_from(BillingPolicy),
            interval=st.sampled_from([10, 30]),
            coins=st.tuples(st.integers(0, 60), st.integers(0, 60)),
        )
        def setup(self, policy: BillingPolicy, interval: int, coins: tuple[int, int]) -> None:
            # few unanswered rings per window, so that the steps reach the limit
            timeouts = Timeouts(ring=45, connect=30, heartbeat=30, unanswered_rings=4)
            media: dict[str, object] = {}
            if livekit:
                self.standin_context = running_standin()
                self.standin = self.run(self.standin_context.__aenter__())
                media = {
                    "livekit_url": self.standin.url,
                    "livekit_api_key": KEY,
                    "livekit_api_secret": SECRET,
                    "livekit_reconcile_seconds": timeouts.reconcile,
                    "livekit_absence_grace_seconds": timeouts.grace,
                }
            self.runtime = create_runtime(
                make_settings(
                    self.url,
                    billing_policy=policy,
                    billing_interval_seconds=interval,
                    ring_timeout_seconds=timeouts.ring,
                    connect_timeout_seconds=timeouts.connect,
                    heartbeat_timeout_seconds=timeouts.heartbeat,
                    rering_cooldown_seconds=timeouts.rering_cooldown,
                    unanswered_rings_per_window=timeouts.unanswered_rings,
                    ring_window_seconds=timeouts.ring_window,
                    **media,
                ),
                self.clock,
            )
            self.model = Model(policy, interval, 70, timeouts, livekit=livekit)
            self.sent: list[lk.WebhookEvent] = []
            self.clients: list[User] = []
            self.hosts: list[User] = []

            async def users(session: AsyncSession) -> None:
                for i in range(2):
                    for role, bucket in ((Role.client, self.clients), (Role.host, self.hosts)):
                        user = await auth.create_user(
                            session,
                            hasher=self.runtime.hasher,
                            username=f"{role}{i}",
                            password="model-pass",
                            role=role,
                            display_name=None,
                            now=self.clock.now(),
                        )
                        if role is Role.host:
                            user.rate = RATES[i]
                        bucket.append(user)

            self.tx(users)
            for i, c in enumerate(self.clients):
                self.model.balance[c.id], self.model.held[c.id] = 0, 0
                if coins[i]:
                    self.grant(i, coins[i])
            for h in self.hosts:
                self.model.earnings[h.id] = 0

        # --- the steps ---------------------------------------------------------------------
        def both(
            self, service: Callable[[AsyncSession], Awaitable[Any]], model: Callable[[], Any]
        ) -> None:
            """Apply a step to both; they must succeed together or refuse alike. A refused
            step changes nothing (the service's transaction rolls back, even what the step
            did first, such as ending a call that was past a deadline)."""
            expected: str | None = None
            saved = copy.deepcopy(self.model.__dict__)
            try:
                model()
            except Refused as refused:
                expected = refused.code
                self.model.__dict__.update(saved)
            got: str | None = None
            try:
                self.tx(service)
            except CallmeterError as error:
                got = error.code
            assert got == expected, f"service said {got!r}, the model {expected!r}"

        def latest(self, user: User) -> MCall | None:
            mine = [c for c in self.model.calls if user.id in (c.client, c.host)]
            return mine[-1] if mine else None

        @rule(client=st.integers(0, 1), amount=st.integers(1, 40))
        def grant(self, client: int, amount: int) -> None:
            user = self.clients[client]
            self.grants = getattr(self, "grants", 0) + 1
            key = f"model-grant-{self.grants}"

            async def service(session: AsyncSession) -> None:
                await ledger.grant(
                    session,
                    user_id=user.id,
                    amount=amount,
                    idempotency_key=key,
                    now=self.clock.now(),
                )

            self.both(service, lambda: self.model.grant(user.id, amount))

        @rule(client=st.integers(0, 1), host=st.integers(0, 1))
        def ring(self, client: int, host: int) -> None:
            c, h = self.clients[client], self.hosts[host]

            async def service(session: AsyncSession) -> None:
                await calls.create_call(
                    session,
                    client=c,
                    host_id=h.id,
                    settings=self.runtime.settings,
                    now=self.clock.now(),
                    livekit=self.runtime.livekit,
                )

            self.both(service, lambda: self.model.ring(c.id, h.id, RATES[host]))

        @rule(client=st.integers(0, 1), host=st.integers(0, 1))
        def connect(self, client: int, host: int) -> None:
            """Ring, pick up and report media on both sides at once: a call that runs."""
            before = len(self.model.calls)
            self.ring(client, host)
            if len(self.model.calls) == before:
                return
            self.answer(host, True)
            for side, who in (("client", client), ("host", host)):
                if livekit:
                    self.lk_join(side, who, 1, 0)
                else:
                    self.heartbeat(side, who, True, 1)

        # --- LiveKit: participants come and go; webhooks arrive twice, late or never ---------
        def send(self, event: lk.WebhookEvent) -> None:
            async def service(session: AsyncSession) -> None:
                await webhooks.handle(
                    session, event, now=self.clock.now(), settings=self.runtime.settings
                )

            self.tx(service)

        def event(
            self, kind: str, call: MCall, user: User, sid: str, skew: int = 0
        ) -> lk.WebhookEvent:
            """An event stamped by LiveKit's clock, ``skew`` seconds off ours."""
            self.events = getattr(self, "events", 0) + 1
            event = lk.WebhookEvent(
                event=kind,
                id=f"EV_{self.events}",
                created_at=int(self.clock.now().timestamp()) + skew,
                room=lk.Room(name=f"call-{call.id}"),
                participant=lk.ParticipantInfo(identity=f"user-{user.id}", sid=sid),
            )
            self.sent.append(event)
            return event

        @rule(
            side=st.sampled_from(PARTIES),
            who=st.integers(0, 1),
            copies=st.integers(1, 3),
            skew=SKEWS,
        )
        def lk_join(self, side: str, who: int, copies: int, skew: int) -> None:
            user = (self.clients if side == "client" else self.hosts)[who]
            call = self.latest(user)
            if not livekit or call is None:
                return
            sid = self.standin.join(f"call-{call.id}", f"user-{user.id}")
            event = self.event("participant_joined", call, user, sid, skew)
            for _ in range(copies):
                self.send(event)
            self.model.webhook_joined(call, side, sid, skew)

        @rule(side=st.sampled_from(PARTIES), who=st.integers(0, 1), lost=st.booleans(), skew=SKEWS)
        def lk_leave(self, side: str, who: int, lost: bool, skew: int) -> None:
            """A participant disconnects; its webhook may be lost (reconciliation notices)."""
            user = (self.clients if side == "client" else self.hosts)[who]
            call = self.latest(user)
            if not livekit or call is None:
                return
            room, identity = f"call-{call.id}", f"user-{user.id}"
            sid = self.standin.participants.get(room, {}).get(identity)
            if sid is None:
                return
            self.standin.drop(room, identity)
            if not lost:
                self.send(self.event("participant_left", call, user, sid, skew))
                self.model.webhook_left(call, side, sid, skew)

        @rule(data=st.data())
        def lk_replay(self, data: st.DataObject) -> None:
            """LiveKit retries: an event already delivered arrives again, out of order."""
            if not livekit or not self.sent:
                return
            self.send(data.draw(st.sampled_from(self.sent)))

        @rule(host=st.integers(0, 1), accept=st.booleans())
        def answer(self, host: int, accept: bool) -> None:
            h = self.hosts[host]
            call = self.latest(h)
            if call is None:
                return

            async def service(session: AsyncSession) -> None:
                now = self.clock.now()
                if accept:
                    await calls.accept(
                        session,
                        user=h,
                        call_id=call.id,
                        settings=self.runtime.settings,
                        now=now,
                        livekit=self.runtime.livekit,
                    )
                else:
                    await calls.decline(
                        session, user=h, call_id=call.id, settings=self.runtime.settings, now=now
                    )

            self.both(service, lambda: (self.model.accept if accept else self.model.decline)(call))

        def heartbeat_work(
            self, user: User, call: MCall, media: bool
        ) -> Callable[[AsyncSession], Awaitable[None]]:
            async def work(session: AsyncSession) -> None:
                await calls.heartbeat(
                    session,
                    user=user,
                    call_id=call.id,
                    media_connected=media,
                    settings=self.runtime.settings,
                    now=self.clock.now(),
                )

            return work

        @rule(
            side=st.sampled_from(PARTIES),
            who=st.integers(0, 1),
            media=st.booleans(),
            copies=st.integers(1, 3),
        )
        def heartbeat(self, side: str, who: int, media: bool, copies: int) -> None:
            """A heartbeat, possibly sent by several timers at the same moment."""
            user = (self.clients if side == "client" else self.hosts)[who]
            call = self.latest(user)
            if call is None:
                return

            self.racing(self.heartbeat_work(user, call, media), copies)
            self.model.heartbeat(call, side, media)

        @rule(side=st.sampled_from(PARTIES), who=st.integers(0, 1), copies=st.integers(1, 3))
        def hang_up(self, side: str, who: int, copies: int) -> None:
            user = (self.clients if side == "client" else self.hosts)[who]
            call = self.latest(user)
            if call is None:
                return

            async def work(session: AsyncSession) -> None:
                await calls.end(
                    session,
                    user=user,
                    call_id=call.id,
                    settings=self.runtime.settings,
                    now=self.clock.now(),
                )

            self.racing(work, copies)
            self.model.end(call, side)

        @rule(workers=st.integers(1, 2))
        def meter(self, workers: int) -> None:
            rooms: dict[str, dict[str, str] | None] | None = None
            if livekit:  # what ListParticipants will answer at the start of the tick
                rooms = {}
                for c in self.model.calls:
                    room = f"call-{c.id}"
                    exists = room in self.standin.rooms
                    rooms[room] = dict(self.standin.participants.get(room, {})) if exists else None

            async def ticks() -> None:
                await asyncio.gather(
                    *(tick(self.runtime, self.clock.now()) for _ in range(workers))
                )

            self.run(ticks())
            self.model.tick(rooms)

        @rule(seconds=st.integers(1, 40))
        def advance(self, seconds: int) -> None:
            self.clock.advance(seconds)
            self.model.now += seconds

        @rule(seconds=st.integers(30, 150))
        def meter_down(self, seconds: int) -> None:
            """The meter is absent for a while (a crashed worker): time passes with no tick;
            whatever path looks next must bill as if it had run."""
            self.advance(seconds)

        @rule(side=st.sampled_from(PARTIES), who=st.integers(0, 1))
        def heartbeat_killed(self, side: str, who: int) -> None:
            """The API process is killed between a heartbeat's work and its commit: the
            heartbeat changes nothing (the model does not apply it)."""
            user = (self.clients if side == "client" else self.hosts)[who]
            call = self.latest(user)
            if call is None:
                return

            beat = self.heartbeat_work(user, call, True)

            async def work(session: AsyncSession) -> None:
                await beat(session)
                await session.flush()
                raise Killed

            with contextlib.suppress(Killed):
                self.tx(work)

        @rule(amount=st.none() | st.integers(1, 30))
        def refund(self, amount: int | None) -> None:
            ended = [c for c in self.model.calls if c.status == "ended" and c.charged > c.refunded]
            if not ended:
                return
            call = ended[-1]

            async def service(session: AsyncSession) -> None:
                await calls.refund(
                    session, call_id=call.id, amount=amount, reason="model", now=self.clock.now()
                )

            self.both(service, lambda: self.model.refund(call, amount))

        # --- agreement -----------------------------------------------------------------------
        @invariant()
        def service_matches_model(self) -> None:
            if not hasattr(self, "model"):
                return

            async def read(session: AsyncSession) -> tuple[list[Any], int]:
                rows = (await session.execute(select(Call.__table__).order_by(Call.id))).mappings()
                revenue = await session.get(
                    Account, await ledger.system_account_id(session, AccountKind.revenue)
                )
                assert revenue is not None
                return list(rows.all()), revenue.balance

            rows, revenue = self.tx(read)
            assert len(rows) == len(self.model.calls)
            t0 = self.t0
            for row, m in zip(rows, self.model.calls, strict=True):
                got = {
                    "status": row["status"],
                    "end_reason": row["end_reason"],
                    "charged": row["charged"],
                    "host_earned": row["host_earned"],
                    "held": row["held"],
                    "refunded": row["refunded"],
                    "billed": row["billed_seconds"] if row["status"] == "ended" else None,
                    "warning": row["warning"],
                    "paid_until": row["paid_until"] if row["status"] == "active" else None,
                }
                want = {
                    "status": m.status,
                    "end_reason": m.end_reason,
                    "charged": m.charged,
                    "host_earned": m.host_earned,
                    "held": m.held,
                    "refunded": m.refunded,
                    "billed": m.billed if m.status == "ended" else None,
                    "warning": m.warning if m.status == "active" else None,
                    "paid_until": (t0 + timedelta(seconds=m.paid_until)).replace(tzinfo=None)
                    if m.status == "active" and m.paid_until is not None
                    else None,
                }
                if got["paid_until"] is not None and hasattr(got["paid_until"], "replace"):
                    got["paid_until"] = got["paid_until"].replace(tzinfo=None)
                assert got == want, f"call {m.id}"

            async def wallets(session: AsyncSession) -> dict[int, tuple[int, int]]:
                out = {}
                for user in (*self.clients, *self.hosts):
                    account = await ledger.account_for_user(session, user.id)
                    out[user.id] = (account.balance, account.held)
                return out

            got_wallets = self.tx(wallets)
            for c in self.clients:
                assert got_wallets[c.id] == (self.model.balance[c.id], self.model.held[c.id])
            for h in self.hosts:
                assert got_wallets[h.id] == (self.model.earnings[h.id], 0)
            assert revenue == self.model.revenue

            async def check(session: AsyncSession) -> list[str]:
                return (await check_ledger_and_calls(session)).problems

            assert self.tx(check) == []

    return Billing


@pytest.mark.parametrize("media", ["p2p", "livekit"])
def test_the_service_matches_the_model(
    media: str, database_url: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    counter = iter(range(10**6))

    def fresh() -> str:
        if backend == "sqlite":
            template: Path = request.getfixturevalue("sqlite_template")
            path = tmp_path / f"model-{next(counter)}.db"
            shutil.copyfile(template, path)
            return sqlite_url(path)
        asyncio.run(_empty_postgres(database_url))
        return database_url

    run_state_machine_as_test(
        machine_for(fresh, livekit=media == "livekit"),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
