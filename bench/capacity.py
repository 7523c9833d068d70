"""Capacity: how many concurrent calls one machine carries (issue 15).

For N calls, replays what the web client does during a call — per call, two parties
heartbeating at the period the server asks for (``heartbeat_seconds``) and once just after
each billing boundary, and two open event streams — against `callmeter serve --workers W`
(W API processes and one meter worker) on PostgreSQL, all on this machine, for a window of
S seconds, after ``WARMUP_SECONDS`` of the same heartbeats that are not counted (each
process has then read every call once; a cold start is a restart, not the steady state
measured here). The calls' boundaries are spread over the first minute of the window, so
the meter charges about N calls a minute. Passes when, over the window:

* heartbeat p99 ≤ 100 ms and no errors (every heartbeat 200, no stream lost);
* every charge reached both of its call's streams within 1 s of its commit (p99);
* charge lag p99 ≤ 1 s (a charge's commit after its boundary, the meter's lag plus the
  wait for the boundary heartbeat);
* the ledger check passes and every call was charged exactly once per boundary it crossed.

The load generator is this process (asyncio, plain sockets: HTTP/1.1 by hand so that it
costs the machine as little as possible; the heartbeats share ``CONNECTIONS`` keep-alive
connections, and one still waiting for a free connection ``LATE_S`` after it was due is
an error and is not sent) and, for the event streams, child processes of
it holding up to ``STREAMS_PER_HOLDER`` each (one process may hold at most 20,000 sockets
here). It also measures the database's transactions per
second with streams open and no heartbeats, to show that the fan-out does not poll per
stream.

    python -m bench.capacity --postgres URL --sizes 250,500,1000 --seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from bench.run import PG_DEFAULT, free_port, fresh_database, say
from bench.seed import seed_calls
from callmeter.auth.tokens import issue_access_token
from callmeter.config import PasswordHashProfile, Settings
from callmeter.kit.db import create_engine, create_sessionmaker
from callmeter.kit.runtime import password_hasher
from callmeter.models import Call, Transfer
from callmeter.payments.check import check_everything

SECRET = "capacity-bench-secret-that-is-long-enough-for-hs256"
HEARTBEAT_P99_MS = 100.0
DELIVERY_P99_S = 1.0
LAG_P99_S = 1.0
BOUNDARY_BEAT_LAG_S = 0.4  # as the web client: a beat just after each boundary
CONNECTIONS = 512  # keep-alive connections the heartbeats share (browsers have one each:
# with 64, chance alone put 21 on one API process and 43 on the other in a run at 8,000)
LATE_S = 5.0  # a heartbeat still waiting for a connection this long after it was due is
# counted as an error and not sent (the server does not keep up)
WARMUP_SECONDS = 15.0  # the same heartbeats before the window, not counted: every process
# has read every call once (a cold start is its own scenario: a restart, not steady state)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- HTTP/1.1 by hand -------------------------------------------------------------------


class Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opens = 0  # connections opened (a reconnect after the server closed one: 2)

    @property
    def local_port(self) -> int | None:
        if self.writer is None:
            return None
        return int(self.writer.get_extra_info("sockname")[1])

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.opens += 1
        assert self.reader is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status_line = await self.reader.readline()
        if not status_line:
            self.writer = None
            raise ConnectionError("closed")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload


@dataclass
class Load:
    """What the load generator saw."""

    beats: list[float] = field(default_factory=list)  # seconds per heartbeat
    beat_log: list[tuple[float, float, bool]] = field(default_factory=list)  # sent, s, boundary
    beat_errors: int = 0
    beats_late: int = 0  # not sent: due more than LATE_S before a connection was free
    counted_from: float = 0.0  # wall time: heartbeats sent before it are the warm-up
    warmup_errors: int = 0
    stream_retries: int = 0  # opens refused and tried again (not errors)
    stream_errors: int = 0
    # (call id, charged) -> when each stream first showed it
    seen_charged: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    heartbeat_seconds: dict[int, int] = field(default_factory=dict)
    streams_open: int = 0
    # boundary beats: (sent at, call id, status, the call's charged in the answer)
    boundary_beats: list[tuple[float, int, int, int]] = field(default_factory=list)
    # the heartbeats' connections: how many each API process held (by pid), every 10 s
    # of the window, and how many times they were opened in all
    beat_connections: list[dict[int, int]] = field(default_factory=list)
    beat_connection_opens: int = 0


OPEN_ATTEMPTS = 10  # a stream that cannot open is tried again, as a browser's EventSource does


async def stream(port: int, call_id: int, token: str, load: Load, stop: asyncio.Event) -> None:
    """Hold one event stream open until ``stop``, noting when each ``charged`` value of the
    call first arrives. Opening is tried again after a refusal (a 503 while thousands open
    at once: the pool's checkout timeout), 1-3 s later, as the browser does; an error is a
    stream that never opened, or one that broke once open."""
    for attempt in range(OPEN_ATTEMPTS):
        if attempt:
            load.stream_retries += 1
            await asyncio.sleep(random.uniform(1, 3))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            continue
        writer.write(
            f"GET /v1/calls/{call_id}/events HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        try:
            status = await reader.readline()
        except (OSError, asyncio.IncompleteReadError):
            status = b""
        if b" 200 " in status:
            break
        writer.close()
    else:
        load.stream_errors += 1
        return
    try:
        load.streams_open += 1
        last = -1
        while not stop.is_set():
            line = await reader.readline()
            if not line:
                if not stop.is_set():
                    load.stream_errors += 1
                return
            start = line.find(b'"charged":')
            if line.startswith(b"data:") and start >= 0:
                end = line.index(b",", start)
                charged = int(line[start + 10 : end])
                if charged != last:
                    last = charged
                    load.seen_charged.setdefault((call_id, charged), []).append(time.time())
    except (OSError, asyncio.IncompleteReadError, ValueError):
        if not stop.is_set():
            load.stream_errors += 1
    finally:
        writer.close()


STREAMS_PER_HOLDER = 8_000  # each holder process is bound by its descriptor limit


async def hold_streams(port: int) -> None:
    """``--hold-streams PORT``: a stream holder. Reads a JSON list of (call id, token) on
    stdin, holds those streams open (at a bounded pace) and prints its counts as a JSON line
    every 0.5 s; on SIGTERM, a last line with what each stream saw (``seen``)."""
    parties = json.loads(sys.stdin.readline())
    load, stop = Load(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    def counts() -> dict[str, Any]:
        return {
            "open": load.streams_open,
            "errors": load.stream_errors,
            "retries": load.stream_retries,
        }

    streams = []
    for n, (call_id, party_token) in enumerate(parties, 1):
        streams.append(asyncio.create_task(stream(port, call_id, party_token, load, stop)))
        if n % 200 == 0:
            await asyncio.sleep(0.05)
    parent = os.getppid()
    while not stop.is_set() and os.getppid() == parent:  # the bench may end any way it ends
        print(json.dumps(counts()), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    await asyncio.sleep(0.5)
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    seen = [[call_id, charged, times] for (call_id, charged), times in load.seen_charged.items()]
    print(json.dumps({**counts(), "seen": seen}), flush=True)


@dataclass
class StreamHolders:
    """The streams, held by child processes of this one (``STREAMS_PER_HOLDER`` each): one
    process may not hold 20,000 sockets here, nor may it raise its descriptor limit."""

    load: Load
    parties: list[list[tuple[int, str]]]  # each holder's
    processes: list[asyncio.subprocess.Process]
    counts: list[dict[str, Any]]
    readers: list[asyncio.Task[None]]

    @classmethod
    async def start(cls, port: int, parties: list[tuple[int, str]], load: Load) -> StreamHolders:
        count = max(1, -(-len(parties) // STREAMS_PER_HOLDER))
        shares = [parties[k::count] for k in range(count)]
        holders = cls(load, shares, [], [{} for _ in range(count)], [])
        for k in range(count):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.capacity", "--hold-streams", str(port),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 28,
            )  # fmt: skip
            assert process.stdin is not None
            process.stdin.write(json.dumps(shares[k]).encode() + b"\n")
            await process.stdin.drain()
            process.stdin.close()
            holders.processes.append(process)
            holders.readers.append(asyncio.create_task(holders._read(k, process)))
        return holders

    async def _read(self, k: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            self.counts[k] = json.loads(line)
            self._sum()

    def _sum(self) -> None:
        self.load.streams_open = sum(c.get("open", 0) for c in self.counts)
        self.load.stream_errors = sum(c.get("errors", 0) for c in self.counts)
        self.load.stream_retries = sum(c.get("retries", 0) for c in self.counts)

    async def stop(self) -> None:
        """Close every stream; what they saw joins ``load.seen_charged``. A holder that
        died, or does not report within 60 s, counts each of its streams as an error."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for k, (process, reader) in enumerate(zip(self.processes, self.readers, strict=True)):
            try:
                await asyncio.wait_for(asyncio.shield(reader), 60)
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                reader.cancel()
            if "seen" not in self.counts[k]:
                say(f"    stream holder {k} ended without its report (exit {process.returncode})")
                self.counts[k] = {"errors": len(self.parties[k])}
        self._sum()
        for found in self.counts:
            for call_id, charged, times in found.get("seen", []):
                self.load.seen_charged.setdefault((call_id, charged), []).extend(times)


async def heartbeats(
    port: int,
    parties: list[tuple[int, str, datetime]],
    interval: int,
    period: int,
    load: Load,
    until: float,
    connections: int = CONNECTIONS,
) -> None:
    """Every party heartbeats every ``period`` seconds (random phase) and just after each
    of its call's boundaries (``parties``: call id, token, first boundary)."""
    queue: asyncio.Queue[tuple[float, int, str, bool]] = asyncio.Queue()
    pool = [Connection(port) for _ in range(connections)]
    body = b'{"media_connected": true}'

    async def sender(connection: Connection) -> None:
        while True:
            due, call_id, token, at_boundary = await queue.get()
            started, sent = time.perf_counter(), time.time()
            if sent - due > LATE_S and sent >= load.counted_from:
                # every connection is busy this long: the server does not keep up.
                # An error, not sent: a backlog would outlast the window by minutes
                load.beats_late += 1
                load.beat_errors += 1
                queue.task_done()
                continue
            answer = b""
            try:
                status, answer = await connection.post(
                    f"/v1/calls/{call_id}/heartbeat", token, body
                )
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                status = 0
                connection.writer = None
            if sent < load.counted_from:  # the warm-up
                load.warmup_errors += status != 200
                queue.task_done()
                continue
            load.beats.append(time.perf_counter() - started)
            load.beat_log.append((sent, load.beats[-1], at_boundary))
            if at_boundary:
                start = answer.find(b'"charged":')
                charged = int(answer[start + 10 : answer.index(b",", start)]) if start >= 0 else -1
                load.boundary_beats.append((sent, call_id, status, charged))
            if status != 200:
                load.beat_errors += 1
            queue.task_done()

    loop = asyncio.get_running_loop()
    wall_to_loop = loop.time() - time.time()
    schedule: list[tuple[float, int, str, bool]] = []
    now = time.time()
    for call_id, token, boundary in parties:
        for t in _periodic(now + random.uniform(0, period), period, until):
            schedule.append((t, call_id, token, False))
        first = boundary.timestamp() + BOUNDARY_BEAT_LAG_S
        for t in _periodic(first, interval, until):
            schedule.append((t, call_id, token, True))
    schedule.sort()
    senders = [asyncio.create_task(sender(c)) for c in pool]

    async def spread() -> None:
        while True:
            await asyncio.sleep(10)
            ports = {p for c in pool if (p := c.local_port) is not None}
            if time.time() >= load.counted_from:  # the window's, not the warm-up's
                # in a thread: /proc holds tens of thousands of sockets to go through
                load.beat_connections.append(await asyncio.to_thread(holders_of, port, ports))

    senders.append(asyncio.create_task(spread()))
    try:
        for t, call_id, token, at_boundary in schedule:
            delay = t + wall_to_loop - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((t, call_id, token, at_boundary))
        await queue.join()
    finally:
        for task in senders:
            task.cancel()
        load.beat_connection_opens = sum(c.opens for c in pool)
        for c in pool:
            if c.writer is not None:
                c.writer.close()


def holders_of(port: int, peers: set[int]) -> dict[int, int]:
    """Which processes hold the server's end of this machine's connections to ``port``
    from the local ports ``peers``: pid -> how many (Linux: /proc/net/tcp and fds)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1].split(":"), fields[2].split(":")
            if int(local[1], 16) == port and int(remote[1], 16) in peers:
                inodes.add(fields[9])
    held: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"serve" not in f.read().split(b"\0"):
                    continue  # only API processes (and their supervisor) hold them
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{entry}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        held[int(entry)] = held.get(int(entry), 0) + 1
    return held


def _periodic(start: float, every: float, until: float) -> list[float]:
    out, t = [], start
    while t < until:
        out.append(t)
        t += every
    return out


# --- where the machine's time goes --------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
PARTS = ("api", "meter", "postgres", "load")


def usage(server_pid: int) -> dict[str, tuple[float, float]]:
    """Per part on this machine — the API processes and the meter worker (the server's
    descendants, told apart by their command line), PostgreSQL (every ``postgres``
    process) and this load generator with its stream holders — the CPU seconds used so
    far (user + system) and the resident memory now (MB)."""
    stats: dict[int, tuple[int, str, float, float]] = {}  # pid -> parent, name, cpu, rss
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue  # gone meanwhile
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        rss = int(fields[21]) * PAGE_BYTES / 1e6
        stats[int(entry)] = (int(fields[1]), name, used, rss)
    parts = {part: (0.0, 0.0) for part in PARTS}

    def add(part: str, cpu: float, rss: float) -> None:
        parts[part] = (parts[part][0] + cpu, parts[part][1] + rss)

    for pid, (_parent, name, used, rss) in stats.items():
        if name == "postgres":
            add("postgres", used, rss)
        elif _descends(pid, server_pid, stats):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    words = f.read().split(b"\0")
            except OSError:
                continue
            if b"serve" in words or b"worker" in words:  # not the supervisor
                add("meter" if b"worker" in words else "api", used, rss)
        elif _descends(pid, os.getpid(), stats):
            add("load", used, rss)  # this process and its stream holders
    return parts


def _descends(pid: int, ancestor: int, stats: dict[int, tuple[int, str, float, float]]) -> bool:
    while pid in stats and pid > 1:
        if pid == ancestor:
            return True
        pid = stats[pid][0]
    return False


async def heartbeat_paths(port: int, tries: int = 16) -> dict[str, float]:
    """How the API processes answered heartbeats so far (``callmeter_heartbeats_total`` by
    path, summed over the processes; ``/metrics`` asked on fresh connections until each
    process answered, told apart by ``process_start_time_seconds``)."""
    seen: dict[str, dict[str, float]] = {}
    for _ in range(tries):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            body = (await reader.read()).decode(errors="replace")
            writer.close()
        except OSError:
            continue
        counts: dict[str, float] = {}
        started = ""
        for line in body.splitlines():
            if line.startswith("process_start_time_seconds "):
                started = line.split()[1]
            elif line.startswith('callmeter_heartbeats_total{path="'):
                name = line.split('"')[1]
                counts[name] = float(line.split()[-1])
        if started:
            seen[started] = counts
    total: dict[str, float] = {}
    for counts in seen.values():
        for name, value in counts.items():
            total[name] = total.get(name, 0.0) + value
    return total


# --- the server -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def server(url: str, workers: int, log: Path) -> AsyncIterator[tuple[int, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    env.update(
        CALLMETER_DATABASE_URL=url,
        CALLMETER_SECRET_KEY=SECRET,
        CALLMETER_PASSWORD_HASH_PROFILE="cheapest",
        CALLMETER_MAX_STREAMS_PER_USER="4",
    )
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "callmeter"), "serve", "--port", str(port),
            *(["--workers", str(workers)] if workers > 1 else []),
            env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            if time.monotonic() > deadline or process.returncode is not None:
                tail = log.read_text()[-2000:]  # noqa: ASYNC240 - failing anyway
                raise RuntimeError(f"the server did not start: {tail}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # every API process listening
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def transactions(url: str) -> float:
    """Committed and rolled-back transactions of this database so far."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            row = await conn.execute(
                text(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                    "WHERE datname = current_database()"
                )
            )
            return float(row.scalar_one())
    finally:
        await engine.dispose()


# --- one run --------------------------------------------------------------------------


async def run_once(
    url: str, n: int, seconds: float, workers: int, log: Path, period: int = 10,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:  # fmt: skip
    settings = Settings(database_url=url, password_hash_profile=PasswordHashProfile.cheapest)
    interval, rate = settings.billing_interval_seconds, settings.default_rate
    await fresh_database(url)
    # the lead: seeding, the server's start and every stream opened before the warm-up
    lead = 30 + n / 100
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead + WARMUP_SECONDS)
    engine = create_engine(url)
    try:
        seeded = await seed_calls(
            engine, settings, password_hasher(PasswordHashProfile.cheapest), n,
            started_at=lambda i: t0 - timedelta(seconds=interval) + timedelta(
                seconds=interval * i / n),
            last_seen_at=lambda i: t0, coins=rate * 1000,
        )  # fmt: skip
    finally:
        await engine.dispose()
    issued = datetime.now(UTC)

    def token(user_id: int, role: str) -> str:
        return issue_access_token(
            user_id=user_id, role=role, secret=SECRET, now=issued, ttl_seconds=3600
        )

    parties: list[tuple[int, str, datetime]] = []
    for call_id, client_id in zip(seeded.call_ids, seeded.client_ids, strict=True):
        started = (
            t0
            - timedelta(seconds=interval)
            + timedelta(seconds=interval * (call_id - seeded.call_ids[0]) / n)
        )
        boundary = started + timedelta(seconds=interval)
        parties.append((call_id, token(client_id, "client"), boundary))
        parties.append((call_id, token(client_id + 1, "host"), boundary))
    load = Load()
    result: dict[str, Any] = {"n": n, "workers": workers, "seconds": seconds, "period": period}
    async with server(url, workers, log) as (port, server_pid):
        idle_seconds = 5.0
        before = await transactions(url)
        await asyncio.sleep(idle_seconds)
        # the baseline: the meter and each process's feed, nobody connected (the -1 is the
        # reading's own transaction)
        result["idle_tps_without_streams"] = (await transactions(url) - before - 1) / idle_seconds
        holders = await StreamHolders.start(port, [(c, t) for c, t, _ in parties], load)
        deadline = time.monotonic() + lead
        while load.streams_open + load.stream_errors < len(parties):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        result["streams_open"] = load.streams_open
        # the fan-out's cost: transactions per second with every stream open, nobody beating
        before, idle_before, idle_start = await transactions(url), usage(server_pid), time.time()
        await asyncio.sleep(idle_seconds)
        result["idle_tps_with_streams"] = (await transactions(url) - before - 1) / idle_seconds
        idle_after, idle_spent = usage(server_pid), time.time() - idle_start
        # and what holding them open costs each part (keepalives, the feed's catch-ups)
        result["idle_cores"] = {
            k: (idle_after[k][0] - idle_before[k][0]) / idle_spent for k in PARTS
        }
        # the warm-up: the same traffic, not counted, until the window opens at t0
        await asyncio.sleep(max(0.0, t0.timestamp() - WARMUP_SECONDS - time.time()))
        result["warmup_seconds"] = max(0.0, t0.timestamp() - time.time())
        load.counted_from = window_start = t0.timestamp()
        until = window_start + seconds
        beating = asyncio.create_task(
            heartbeats(port, parties, interval, period, load, until, connections)
        )
        await asyncio.sleep(max(0.0, window_start - time.time()))
        before_window = usage(server_pid)
        paths_before = await heartbeat_paths(port)
        await beating
        spent = time.time() - window_start
        after_window = usage(server_pid)
        # cores each part kept busy over the window, and its memory at the end
        result["cores"] = {k: (after_window[k][0] - before_window[k][0]) / spent for k in PARTS}
        result["rss_mb"] = {k: after_window[k][1] for k in PARTS}
        paths_after = await heartbeat_paths(port)
        result["beat_connections"] = [
            {str(pid): n for pid, n in sorted(held.items())} for held in load.beat_connections
        ]
        result["beat_connection_opens"] = load.beat_connection_opens
        result["heartbeat_paths"] = {
            k: v - paths_before.get(k, 0.0) for k, v in sorted(paths_after.items())
        }
        await holders.stop()
    # what the ledger says
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Transfer.call_id, Transfer.created_at)
                    .where(Transfer.kind == "call_charge")
                    .order_by(Transfer.call_id, Transfer.id)
                )
            ).all()
            starts = {i: s for i, s in await conn.execute(select(Call.id, Call.started_at))}
            charged = {i: c for i, c in await conn.execute(select(Call.id, Call.charged))}
            result["charged_calls"] = (
                await conn.execute(select(func.count()).where(Call.charged > 0))
            ).scalar_one()
        async with create_sessionmaker(engine)() as session:
            report = await check_everything(session)
            result["ledger_ok"] = report.ok
            if not report.ok:
                say(f"LEDGER CHECK FAILED: {report.problems[:5]}")
    finally:
        await engine.dispose()
    lags, deliveries, missing, wrong = [], [], 0, 0
    per_call: dict[int, list[datetime]] = {}
    for call_id, created in rows:
        per_call.setdefault(call_id, []).append(created)
    for call_id, started in starts.items():
        made = per_call.get(call_id, [])
        crossed = 0
        boundary = started + timedelta(seconds=interval)
        while boundary.timestamp() + 1 < until:  # boundaries well inside the window
            crossed += 1
            boundary += timedelta(seconds=interval)
        # the boundaries inside the window, and perhaps one in its last second
        if len(made) not in (crossed, crossed + 1) or charged[call_id] != rate * len(made):
            wrong += 1
        for j, created in enumerate(made):
            due = started + timedelta(seconds=interval * (j + 1))
            lags.append((created - due).total_seconds())
            if created.timestamp() > until - DELIVERY_P99_S:
                continue  # the streams closed at the window's end: too late to be seen
            seen = load.seen_charged.get((call_id, rate * (j + 1)), [])
            if len(seen) < 2:
                missing += 1
            deliveries += [t - created.timestamp() for t in seen]
    slow = sorted(  # the latest first
        (
            (lag, call_id)
            for call_id, made in per_call.items()
            for j, lag in enumerate(
                (created - starts[call_id] - timedelta(seconds=interval * (k + 1))).total_seconds()
                for k, created in enumerate(made)
            )
            if lag > LAG_P99_S
        ),
        reverse=True,
    )
    if load.beat_log:  # where the slowest heartbeats were: per 10 s of the window
        t0w = load.beat_log[0][0]
        buckets: dict[int, list[float]] = {}
        for sent, took, _ in load.beat_log:
            buckets.setdefault(int((sent - t0w) // 10), []).append(took * 1000)
        say("    heartbeat p99 per 10 s: " + " ".join(
            f"{percentile(v, 0.99):.0f}" for _, v in sorted(buckets.items())))  # fmt: skip
        boundary = [took * 1000 for _, took, b in load.beat_log if b]
        periodic = [took * 1000 for _, took, b in load.beat_log if not b]
        say(f"    p99 boundary beats {percentile(boundary, 0.99):.0f} ms, "
            f"periodic {percentile(periodic, 0.99):.0f} ms")  # fmt: skip
    for lag, call_id in slow[:3]:  # why a charge came late: that call's boundary beats
        beats = [b for b in load.boundary_beats if b[1] == call_id]
        say(f"    late charge: call {call_id} +{lag:.2f} s; boundary beats {beats}")
    result.update(
        heartbeats=len(load.beats),
        heartbeat_rate=len(load.beats) / seconds,
        heartbeat_p50_ms=percentile(load.beats, 0.5) * 1000,
        heartbeat_p99_ms=percentile(load.beats, 0.99) * 1000,
        heartbeat_max_ms=max(load.beats, default=float("nan")) * 1000,
        errors=load.beat_errors + load.stream_errors,
        beats_late=load.beats_late,
        warmup_errors=load.warmup_errors,
        stream_retries=load.stream_retries,
        charges=len(rows),
        lag_p99=percentile(lags, 0.99),
        delivery_p50=percentile(deliveries, 0.5),
        delivery_p99=percentile(deliveries, 0.99),
        deliveries_missing=missing,
        calls_charged_wrongly=wrong,
    )
    result["passed"] = bool(
        result["heartbeat_p99_ms"] <= HEARTBEAT_P99_MS
        and result["delivery_p99"] <= DELIVERY_P99_S
        and result["lag_p99"] <= LAG_P99_S
        and result["errors"] == 0
        and missing == 0
        and wrong == 0
        and result["ledger_ok"]
        and result["streams_open"] == len(parties)
    )
    say(
        f"  N={n:>6,} ({workers} API processes): heartbeat {result['heartbeat_rate']:,.0f}/s "
        f"p50 {result['heartbeat_p50_ms']:.1f} ms p99 {result['heartbeat_p99_ms']:.1f} ms  "
        f"charges {len(rows):,} lag p99 {result['lag_p99']:.2f} s  delivery p99 "
        f"{result['delivery_p99']:.2f} s (missing {missing})  streams "
        f"{result['streams_open']:,}/{len(parties):,}  errors {result['errors']} (late "
        f"{result['beats_late']:,}; warm-up "
        f"{result['warmup_seconds']:.0f} s: {result['warmup_errors']}; streams opened again "
        f"{result['stream_retries']})  idle "
        f"{result['idle_tps_without_streams']:.1f} tx/s, with the streams open "
        f"{result['idle_tps_with_streams']:.1f} (cores: "
        + " ".join(f"{k} {v:.2f}" for k, v in result["idle_cores"].items())
        + ")  cores: "
        + " ".join(f"{k} {v:.2f}" for k, v in result["cores"].items())
        + "  paths: "
        + " ".join(f"{k} {v:,.0f}" for k, v in result["heartbeat_paths"].items())
        + "  heartbeat connections per API process: "
        + (
            " ".join("/".join(str(n) for n in held.values()) for held in result["beat_connections"])
            or "-"
        )
        + f" (opened {result['beat_connection_opens']})"
        + "  RSS MB: "
        + " ".join(f"{k} {v:.0f}" for k, v in result["rss_mb"].items())
        + "  ledger "
        f"{'ok' if result['ledger_ok'] else 'FAILED'}  "
        f"{'PASS' if result['passed'] else 'FAIL'}"
    )
    return result


async def capacity(
    url: str, sizes: list[int], seconds: float, workers: int, log: Path, period: int = 10,
    connections: int = CONNECTIONS,
) -> dict[str, Any]:  # fmt: skip
    """Run each size in turn until one fails; the largest that passed is the capacity."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    runs = []
    for n in sizes:
        outcome = await run_once(url, n, seconds, workers, log, period, connections)
        runs.append(outcome)
        if not outcome["passed"]:
            break
    passed = [r["n"] for r in runs if r["passed"]]
    return {"runs": runs, "capacity": max(passed, default=0), "workers": workers}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=PG_DEFAULT)
    parser.add_argument("--sizes", default="100,250,500,1000,2000,4000,10000")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--period", type=int, default=10,
        help="seconds between a party's heartbeats: the call's heartbeat_seconds (10 s at the "
        "default timeout); the web client before issue 15 beat every 5 s",
    )  # fmt: skip
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS,
        help=f"keep-alive connections the heartbeats share (default {CONNECTIONS})",
    )  # fmt: skip
    parser.add_argument("--log", default=str(Path(tempfile.gettempdir()) / "capacity.log"))
    parser.add_argument("--hold-streams", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold_streams:
        await hold_streams(args.hold_streams)
        return
    found = await capacity(
        args.postgres, [int(s) for s in args.sizes.split(",")], args.seconds, args.workers,
        Path(args.log), args.period, args.connections,
    )  # fmt: skip
    print(json.dumps(found, default=str))


if __name__ == "__main__":
    asyncio.run(main())
