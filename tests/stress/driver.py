"""Multi-process stress with crashes, against PostgreSQL.

Two API processes (`callmeter serve --no-meter`) and two meter workers (`callmeter
worker`) share one database. The driver opens CALLS calls at once with 1-second billing:
both parties heartbeat in duplicate and concurrently, hang up from both sides at once,
and some clients run out of coins. Meanwhile a killer `kill -9`s a random process KILLS
times and restarts it. Afterwards: every call ended, every invariant of the ledger check
(charged = cost(billed seconds), no double charge, balances = postings, sum = 0).

    .venv/bin/python -m tests.stress.driver --calls 500 --kills 20     # make stress
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, make_url, select, text

from callmeter.app import create_runtime
from callmeter.auth import service as auth
from callmeter.auth.tokens import issue_access_token
from callmeter.calls.check import check_ledger_and_calls
from callmeter.config import Settings
from callmeter.kit.db import create_engine
from callmeter.kit.migrate import upgrade
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import Call, CallStatus, Role, Transfer

SECRET = "stress-secret-that-is-long-enough-for-hs256"
ROOT = Path(__file__).resolve().parents[2]
CALLMETER = [sys.executable, "-m", "callmeter"]


@dataclass
class Stats:
    requests: int = 0
    transport_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    kills: int = 0
    ended_by: Counter[str] = field(default_factory=Counter)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Fleet:
    """The API and worker processes, restartable."""

    def __init__(self, env: dict[str, str], logdir: Path) -> None:
        self.env = env
        self.logdir = logdir
        self.ports = [free_port(), free_port()]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Any] = {}

    def start(self, name: str) -> None:
        if name.startswith("api"):
            port = self.ports[int(name[-1])]
            args = [*CALLMETER, "serve", "--no-meter", "--port", str(port)]
        else:
            args = [*CALLMETER, "worker"]
        if name in self.logs:
            self.logs[name].close()
        log = self.logs[name] = (self.logdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(args, env=self.env, stdout=log, stderr=log, cwd=ROOT)

    def start_all(self) -> None:
        for name in ("api0", "api1", "worker0", "worker1"):
            self.start(name)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in self.logs.values():
            log.close()

    @property
    def bases(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]


async def wait_ready(bases: list[str]) -> None:
    async with httpx.AsyncClient(timeout=1) as http:
        for base in bases:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{base}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"{base} did not start")


class Api:
    """Requests spread over both API processes; a dead process is retried on the other."""

    def __init__(self, bases: list[str], stats: Stats) -> None:
        self.bases = bases
        self.stats = stats
        self.http = httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=400))

    async def post(self, path: str, token: str, body: Any = None) -> httpx.Response | None:
        for attempt in range(16):  # a killed process takes a few seconds to come back
            base = random.choice(self.bases)
            self.stats.requests += 1
            try:
                r = await self.http.post(
                    f"{base}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.TransportError:
                self.stats.transport_errors += 1
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            self.stats.statuses[r.status_code] += 1
            if r.status_code >= 500:
                # as a browser does: a 503 says when to come back (database or LiveKit
                # unavailable, e.g. while a killed process's connections are cleaned up)
                wait = r.headers.get("Retry-After")
                await asyncio.sleep(min(2.0, float(wait)) if wait else 0.05 * (attempt + 1))
                continue
            return r
        return None


class Webhooks:
    """LiveKit's side of a call: participants in the stand-in and signed webhooks, sent
    twice and out of order, to either API process."""

    def __init__(self, api: Api, standin: Any) -> None:
        self.api = api
        self.standin = standin
        self.ids = iter(range(10**9))

    async def send(self, kind: str, room: str, identity: str, sid: str) -> None:
        from livekit import api as lk

        from tests.media.standin import signed_webhook

        event = lk.WebhookEvent(
            event=kind,
            id=f"EV_{next(self.ids)}",
            created_at=int(time.time()),
            room=lk.Room(name=room),
            participant=lk.ParticipantInfo(identity=identity, sid=sid),
        )
        body, token = signed_webhook(event)
        for _ in range(2):  # LiveKit retries: the same event id twice
            base = random.choice(self.api.bases)
            self.api.stats.requests += 1
            with contextlib.suppress(httpx.TransportError):
                r = await self.api.http.post(
                    f"{base}/v1/webhooks/livekit",
                    content=body,
                    headers={"Authorization": token, "Content-Type": "application/webhook+json"},
                )
                self.api.stats.statuses[r.status_code] += 1

    async def join(self, room: str, user_ids: tuple[int, int]) -> dict[int, str]:
        sids = {uid: self.standin.join(room, f"user-{uid}") for uid in user_ids}
        order = list(user_ids)
        random.shuffle(order)
        await asyncio.gather(
            *(self.send("participant_joined", room, f"user-{u}", sids[u]) for u in order)
        )
        return sids

    async def leave(self, room: str, uid: int, sid: str) -> None:
        self.standin.drop(room, f"user-{uid}")
        await self.send("participant_left", room, f"user-{uid}", sid)


async def one_call(
    api: Api,
    client: str,
    host: str,
    host_id: int,
    seconds: float,
    delay: float,
    hooks: Webhooks | None = None,
) -> None:
    await asyncio.sleep(delay)  # calls start over a few seconds, then all overlap
    await api.post("/v1/hosts/me/presence", host, {})  # the host's page is open
    r = await api.post("/v1/calls", client, {"host_id": host_id})
    if r is None or r.status_code != 201:
        return
    call = r.json()["call"]
    call_id = call["id"]
    await api.post(f"/v1/calls/{call_id}/accept", host)
    sids: dict[int, str] = {}
    if hooks is not None:
        sids = await hooks.join(f"call-{call_id}", (call["client_id"], call["host_id"]))
    deadline = time.monotonic() + seconds
    duplicate = random.random() < 0.4  # this page runs two timers on each side
    while time.monotonic() < deadline:
        beats = await asyncio.gather(
            *(
                api.post(f"/v1/calls/{call_id}/heartbeat", who, {"media_connected": True})
                for who in ((client, host, client, host) if duplicate else (client, host))
            )
        )
        if any(b is not None and b.json()["call"]["status"] == "ended" for b in beats):
            return  # the server ended it (coins ran out)
        await asyncio.sleep(1.0)
    departs = hooks is not None and random.random() < 0.5
    silent = departs and random.random() < 0.5  # nobody hangs up: the departure alone ends it
    ends: list[Any] = []
    if not silent:
        ends = [api.post(f"/v1/calls/{call_id}/end", who) for who in (client, host, client, host)]
    if departs and hooks is not None:
        # the client's page closes: LiveKit reports it left (around the hang-ups)
        uid = call["client_id"]
        ends.append(hooks.leave(f"call-{call_id}", uid, sids[uid]))
    await asyncio.gather(*ends)


async def killer(fleet: Fleet, stats: Stats, kills: int, every: float, stop: asyncio.Event) -> None:
    names = ["api0", "api1", "worker0", "worker1"]
    while stats.kills < kills and not stop.is_set():
        await asyncio.sleep(every * (0.5 + random.random()))
        name = random.choice(names)
        fleet.kill(name)
        stats.kills += 1
        fleet.start(name)
        if name.startswith("api"):
            await wait_ready([fleet.bases[int(name[-1])]])


async def prepare(runtime: Runtime, n: int, poor_every: int) -> list[tuple[str, str, int]]:
    async with runtime.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade(runtime.engine)
    now = runtime.clock.now()
    pairs = []
    async with runtime.sessionmaker.begin() as session:
        for i in range(n):
            c = await auth.create_user(
                session,
                hasher=runtime.hasher,
                username=f"sc{i}",
                password="stress-pass",
                role=Role.client,
                display_name=None,
                now=now,
            )
            h = await auth.create_user(
                session,
                hasher=runtime.hasher,
                username=f"sh{i}",
                password="stress-pass",
                role=Role.host,
                display_name=None,
                now=now,
            )
            coins = 25 if i % poor_every == 0 else 10_000
            await ledger.grant(
                session, user_id=c.id, amount=coins, idempotency_key=f"stress:{i}", now=now
            )
            token = lambda uid: issue_access_token(  # noqa: E731
                user_id=uid, role="x", secret=SECRET, now=now, ttl_seconds=3600
            )
            pairs.append((token(c.id), token(h.id), h.id))
    return pairs


async def verify(runtime: Runtime, stats: Stats, settle_timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + settle_timeout
    unfinished = -1
    while time.monotonic() < deadline:
        async with runtime.sessionmaker() as session:
            unfinished = await session.scalar(
                select(func.count()).select_from(Call).where(Call.status != CallStatus.ended)
            )
        if unfinished == 0:
            break
        await asyncio.sleep(0.5)
    async with runtime.sessionmaker() as session:
        report = await check_ledger_and_calls(session)
        calls = await session.scalar(select(func.count()).select_from(Call))
        reasons = Counter(
            r
            for (r,) in await session.execute(
                select(Call.end_reason).where(Call.end_reason.is_not(None))
            )
        )
        billed = await session.scalar(
            select(func.count()).select_from(Call).where(Call.started_at.is_not(None))
        )
        charges = await session.scalar(
            select(func.count()).select_from(Transfer).where(Transfer.call_id.is_not(None))
        )
    return {
        "calls": calls,
        "unfinished": unfinished,
        "end_reasons": dict(reasons),
        "calls_connected": billed,
        "charge_transfers": charges,
        "ledger_ok": report.ok,
        "problems": report.problems[:20],
        "totals": report.totals,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    url = args.database_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    env.update(
        CALLMETER_DATABASE_URL=url,
        CALLMETER_SECRET_KEY=SECRET,
        CALLMETER_BILLING_INTERVAL_SECONDS="1",
        CALLMETER_METER_TICK_SECONDS="0.2",
        CALLMETER_HEARTBEAT_TIMEOUT_SECONDS="10",
        CALLMETER_RING_TIMEOUT_SECONDS="30",
        CALLMETER_CONNECT_TIMEOUT_SECONDS="30",
        CALLMETER_PASSWORD_HASH_PROFILE="cheapest",
    )
    standin_context = None
    standin = None
    if args.livekit:
        from tests.media.standin import KEY, running_standin
        from tests.media.standin import SECRET as LK_SECRET

        standin_context = running_standin()
        standin = await standin_context.__aenter__()
        env.update(
            CALLMETER_LIVEKIT_URL=standin.url,
            CALLMETER_LIVEKIT_API_KEY=KEY,
            CALLMETER_LIVEKIT_API_SECRET=LK_SECRET,
            CALLMETER_LIVEKIT_RECONCILE_SECONDS="1",
            CALLMETER_LIVEKIT_ABSENCE_GRACE_SECONDS="3",
        )
    settings = Settings(
        database_url=url,
        secret_key=SECRET,
        password_hash_profile="cheapest",
        billing_interval_seconds=1,
    )
    runtime = create_runtime(settings)
    stats = Stats()
    fleet = Fleet(env, Path(args.logdir))
    started = time.monotonic()
    try:
        pairs = await prepare(runtime, args.calls, args.poor_every)
        fleet.start_all()
        await wait_ready(fleet.bases)
        api = Api(fleet.bases, stats)
        hooks = Webhooks(api, standin) if args.livekit else None
        stop = asyncio.Event()
        kill_task = asyncio.create_task(killer(fleet, stats, args.kills, args.kill_every, stop))
        await asyncio.gather(
            *(
                one_call(
                    api,
                    c,
                    h,
                    hid,
                    random.uniform(args.min_seconds, args.max_seconds),
                    random.uniform(0, args.ramp_seconds),
                    hooks,
                )
                for c, h, hid in pairs
            )
        )
        while stats.kills < args.kills:  # noqa: ASYNC110 - the calls beat the killer
            await asyncio.sleep(0.2)
        stop.set()
        await kill_task
        result = await verify(runtime, stats, settle_timeout=30)
        await api.http.aclose()
    finally:
        fleet.stop_all()
        await runtime.close()
        if standin_context is not None:
            await standin_context.__aexit__(None, None, None)
    result.update(
        requests=stats.requests,
        transport_errors=stats.transport_errors,
        statuses=dict(sorted(stats.statuses.items())),
        # 503 is the designed answer while LiveKit is unreachable (here: the stand-in, which
        # shares the driver's busy event loop, missing its 5 s deadline); anything else 5xx
        # is a bug
        media_unavailable=stats.statuses.get(503, 0),
        server_errors=sum(n for s, n in stats.statuses.items() if s >= 500 and s != 503),
        kills=stats.kills,
        seconds=round(time.monotonic() - started, 1),
    )
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--kill-every", type=float, default=2.0, help="mean seconds")
    parser.add_argument("--poor-every", type=int, default=4, help="every Nth client has 25")
    parser.add_argument("--livekit", action="store_true", help="LiveKit calls and webhooks")
    parser.add_argument("--ramp-seconds", type=float, default=5, help="spread of call starts")
    parser.add_argument("--min-seconds", type=float, default=2)
    parser.add_argument("--max-seconds", type=float, default=10)
    parser.add_argument("--logdir", default=str(Path(tempfile.gettempdir()) / "callmeter-stress"))
    parser.add_argument("--database-url", default=os.environ.get("CALLMETER_TEST_DATABASE_URL"))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("set CALLMETER_TEST_DATABASE_URL or --database-url (PostgreSQL)")
    Path(args.logdir).mkdir(parents=True, exist_ok=True)
    return args


async def in_scratch_database(args: argparse.Namespace) -> dict[str, Any]:
    """Run against a database of its own next to the given one (created and dropped), so
    that a test database in use is never touched."""
    base = make_url(args.database_url)
    scratch = f"{base.database}_stress_{os.getpid()}"
    admin = create_engine(base.render_as_string(hide_password=False), pool_size=1, max_overflow=0)
    admin = admin.execution_options(isolation_level="AUTOCOMMIT")  # type: ignore[assignment]
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{scratch}"'))
    try:
        args.database_url = base.set(database=scratch).render_as_string(hide_password=False)
        return await main(args)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    outcome = asyncio.run(in_scratch_database(parse()))
    for key, value in outcome.items():
        print(f"{key:>18}: {value}")
    ok = outcome["ledger_ok"] and outcome["unfinished"] == 0 and outcome["server_errors"] == 0
    print("STRESS", "PASSED" if ok else "FAILED")
    sys.exit(0 if ok else 1)
