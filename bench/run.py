"""``make bench``: the benchmark suite. Writes docs/benchmarks.md and docs/benchmarks.png.

Not a test: it prints and records figures, and gates nothing. It needs the PostgreSQL of
the test setup (a scratch database ``callmeter_bench`` is created and wiped; pass
``--postgres`` for another one), pgbench, and wrk (installed from Debian's packages by
``scripts/ensure-bench-tools.sh``).

1. Settlement: N active calls cross a billing boundary at the same instant; one meter
   worker process settles them (charges/s, p50/p99 lag from due time to commit, peak RSS
   above idle), on PostgreSQL and SQLite; the per-call path at the smallest N for
   comparison; ``pgbench -N`` on the same PostgreSQL as the reference.
2. Steady state: the largest N with boundaries spread over one 60 s interval, the meter
   loop on the real clock for one interval: lag percentiles and how busy the worker was.
3. API: heartbeat requests/s and latency at saturation (wrk on loopback) next to the
   bare JSON endpoint /healthz of the same server, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bench.seed import PASSWORD, progress_bar, seed_calls
from callmeter.config import PasswordHashProfile, Settings
from callmeter.kit.db import create_engine, create_sessionmaker
from callmeter.kit.migrate import upgrade
from callmeter.kit.runtime import password_hasher
from callmeter.models import Call
from callmeter.payments.check import check_everything

ROOT = Path(__file__).resolve().parent.parent
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/callmeter_bench"
HASHER = password_hasher(PasswordHashProfile.cheapest)
SECTIONS = ("settlement", "steady", "api", "capacity")


def say(message: str) -> None:
    print(message, flush=True)


# --- databases ------------------------------------------------------------------------


def _remove_sqlite_files(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def fresh_database(url: str) -> None:
    """An empty, migrated database at ``url`` (created when missing, wiped when not)."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        _remove_sqlite_files(str(parsed.database))
    else:
        admin = create_engine(parsed.set(database="postgres").render_as_string(False))
        try:
            async with admin.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                exists = await conn.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"),
                    {"name": parsed.database},
                )
                if not exists:
                    await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
        finally:
            await admin.dispose()
    engine = create_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        await upgrade(engine)
    finally:
        await engine.dispose()


async def seed(url: str, n: int, started: Any, seen: Any, label: str) -> None:
    await fresh_database(url)
    engine = create_engine(url)
    try:
        with progress_bar(f"seeding {n:,} calls ({label})", n) as update:
            await seed_calls(
                engine, Settings(), HASHER, n, started_at=started, last_seen_at=seen,
                progress=update,
            )  # fmt: skip
    finally:
        await engine.dispose()


async def verify(url: str) -> tuple[bool, int, int]:
    """(ledger check ok, calls charged, coins charged)."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            report = await check_everything(session)
            charged_calls, coins = (
                await session.execute(
                    select(func.count(), func.coalesce(func.sum(Call.charged), 0)).where(
                        Call.charged > 0
                    )
                )
            ).one()
        if not report.ok:
            say(f"LEDGER CHECK FAILED: {report.problems[:5]}")
        return report.ok, int(charged_calls), int(coins)
    finally:
        await engine.dispose()


def worker(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.worker", *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"bench.worker {args[0]} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- 1. settlement burst --------------------------------------------------------------


async def burst(url: str, n: int, label: str, *, per_call: bool = False) -> dict[str, Any]:
    boundary = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    await seed(
        url, n, lambda i: boundary - timedelta(seconds=60),
        lambda i: boundary + timedelta(seconds=1), label,
    )  # fmt: skip
    args = ["burst", url, boundary.isoformat()] + (["--per-call"] if per_call else [])
    result = worker(*args)
    ok, charged_calls, coins = await verify(url)
    result.update(n=n, database=label, ledger_ok=ok, charged_calls=charged_calls, coins=coins)
    result["rate"] = charged_calls / result["seconds"]
    path = "per-call" if per_call else "batch"
    say(
        f"  {label:<10} {path:<8} N={n:>7,}: {result['rate']:>8,.0f} charges/s  "
        f"lag p50 {result['lag_p50']:.2f} s p99 {result['lag_p99']:.2f} s  "
        f"RSS +{result['peak_rss_mb'] - result['idle_rss_mb']:.0f} MB  "
        f"charged {charged_calls:,}/{n:,}  ledger {'ok' if ok else 'FAILED'}"
    )
    return result


# --- 2. steady state ------------------------------------------------------------------


async def steady(url: str, n: int, label: str, tick_seconds: float) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    window = 60.0
    await seed(
        url, n, lambda i: start - timedelta(seconds=60) + timedelta(seconds=window * i / n),
        lambda i: start + timedelta(seconds=3 * window), label,
    )  # fmt: skip
    result = worker("steady", url, start.isoformat(), "--seconds", str(window + 2),
                    "--tick-seconds", str(tick_seconds))  # fmt: skip
    ok, charged_calls, coins = await verify(url)
    result.update(n=n, database=label, ledger_ok=ok, charged_calls=charged_calls, coins=coins,
                  tick_seconds=tick_seconds)  # fmt: skip
    say(
        f"  {label:<10} steady   N={n:>7,}: lag p50 {result['lag_p50']:.3f} s "
        f"p99 {result['lag_p99']:.3f} s max {result['lag_max']:.3f} s  worker busy "
        f"{result['cpu_seconds'] / result['seconds']:.0%}  charged {charged_calls:,}/{n:,}  "
        f"ledger {'ok' if ok else 'FAILED'}"
    )
    return result


# --- pgbench --------------------------------------------------------------------------


def pgbench(url: str, seconds: int) -> dict[str, float]:
    parsed = make_url(url)
    base = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
            "-U", parsed.username or "postgres"]  # fmt: skip
    database = "callmeter_pgbench"
    subprocess.run(["dropdb", *base, "--if-exists", database], check=True)
    subprocess.run(["createdb", *base, database], check=True)
    subprocess.run(["pgbench", *base, "-i", "-s", "10", "-q", database],
                   check=True, capture_output=True)  # fmt: skip
    results = {}
    for clients in (1, 8):
        out = subprocess.run(
            ["pgbench", *base, "-N", "-c", str(clients), "-j", str(min(clients, 2)),
             "-T", str(seconds), database],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
        assert match, out.stdout
        results[f"c{clients}"] = float(match.group(1))
        say(f"  pgbench -N -c {clients}: {results[f'c{clients}']:,.0f} transactions/s")
    subprocess.run(["dropdb", *base, "--if-exists", database], check=True)
    return results


# --- 3. API ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, connections: int, seconds: int, script: Path | None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    if set(latency) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rate,
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


async def api(url: str, label: str, calls: int, connections: int, seconds: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    await seed(url, calls, lambda i: now - timedelta(seconds=10), lambda i: now, label)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    env.update(CALLMETER_DATABASE_URL=url, CALLMETER_PASSWORD_HASH_PROFILE="cheapest",
               CALLMETER_HEARTBEAT_TIMEOUT_SECONDS="3600")  # fmt: skip
    server = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "callmeter"), "serve", "--no-meter",
        "--port", str(port),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(200):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            engine = create_engine(url)
            async with engine.connect() as conn:
                pairs = (await conn.execute(select(Call.id, Call.client_id))).all()
            await engine.dispose()
            users = await _usernames(url, [client_id for _, client_id in pairs])
            tokens = []
            for call_id, client_id in pairs:
                r = await client.post(
                    "/v1/auth/login", json={"username": users[client_id], "password": PASSWORD}
                )
                r.raise_for_status()
                tokens.append((call_id, r.json()["access_token"]))
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "heartbeat.lua"
            script.write_text(_lua(tokens))
            wrk(f"{base}/healthz", connections, 2, None)  # warm up
            bare = wrk(f"{base}/healthz", connections, seconds, None)
            beat = wrk(base, connections, seconds, script)
    finally:
        server.terminate()
        await server.wait()
    result = {"database": label, "calls": calls, "connections": connections,
              "bare": bare, "heartbeat": beat, "ratio": beat["rps"] / bare["rps"]}  # fmt: skip
    say(
        f"  {label:<10} heartbeat {beat['rps']:>7,.0f} req/s (p50 {beat['p50_ms']:.1f} ms, "
        f"p99 {beat['p99_ms']:.1f} ms, non-2xx {beat['non_2xx']:.0f})  /healthz "
        f"{bare['rps']:>7,.0f} req/s (p99 {bare['p99_ms']:.1f} ms)  ratio {result['ratio']:.2f}"
    )
    return result


async def _usernames(url: str, ids: list[int]) -> dict[int, str]:
    from callmeter.models import User

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(User.id, User.username).where(User.id.in_(ids)))
            return {user_id: name for user_id, name in rows}
    finally:
        await engine.dispose()


def _lua(tokens: list[tuple[int, str]]) -> str:
    entries = ",\n".join(f'  {{{call_id}, "{token}"}}' for call_id, token in tokens)
    return f"""-- one heartbeat per request, round-robin over the seeded calls
local calls = {{
{entries}
}}
local i = 0
local body = '{{"media_connected": true}}'
request = function()
  i = i % #calls + 1
  local call = calls[i]
  return wrk.format("POST", "/v1/calls/" .. call[1] .. "/heartbeat",
    {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. call[2]}}, body)
end
"""


# --- the report -----------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    memory = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )  # fmt: skip
    pg = subprocess.run(["pgbench", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory": f"{int(memory) / 1024 / 1024:.0f} GiB",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg.replace("pgbench (PostgreSQL) ", ""),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=PG_DEFAULT)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument("--api-seconds", type=int, default=10)
    parser.add_argument("--api-connections", type=int, default=16)
    parser.add_argument("--tick-seconds", type=float, default=0.25)
    parser.add_argument("--skip-steady", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--capacity-sizes", default="250,500,1000,2000,4000,10000")
    parser.add_argument("--capacity-seconds", type=float, default=120)
    parser.add_argument("--capacity-workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    parser.add_argument(
        "--only", default="",
        help=f"re-measure only these sections ({','.join(SECTIONS)}, comma-separated) and keep "
        "the others from the previous OUT/benchmarks.json; the report dates each section",
    )  # fmt: skip
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}
    if unknown := only - set(SECTIONS):
        sys.exit(f"--only: unknown section(s) {', '.join(sorted(unknown))}; know {SECTIONS}")
    for tool in ("pgbench", "wrk", "createdb"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: run scripts/ensure-bench-tools.sh (or `make bench`)")
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"machine": machine(), "sizes": sizes}
    previous = Path(args.out) / "benchmarks.json"
    if only:
        kept = json.loads(previous.read_text())
        when = kept.get("measured") or dict.fromkeys(SECTIONS, kept["machine"]["date"])
        results = {**kept, "machine": {**kept["machine"], "date": results["machine"]["date"]}}
        results["measured"] = {
            name: results["machine"]["date"] if name in only else when.get(name, "")
            for name in SECTIONS
        }
    run = (lambda name: name in only) if only else (lambda name: True)
    with tempfile.TemporaryDirectory() as tmp:
        targets = {"PostgreSQL": args.postgres,
                   "SQLite": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"}  # fmt: skip
        if run("settlement"):
            say("1. settlement: N active calls cross one boundary at once, one worker process")
            results["pgbench"] = pgbench(args.postgres, args.pgbench_seconds)
            results["burst"] = [
                await burst(url, n, label) for n in sizes for label, url in targets.items()
            ]
            results["per_call"] = [
                await burst(url, min(sizes[0], 1000), label, per_call=True)
                for label, url in targets.items()
            ]
        if run("steady") and not args.skip_steady:
            say(f"2. steady state: {sizes[-1]:,} calls, boundaries spread over 60 s")
            results["steady"] = [
                await steady(url, sizes[-1], label, args.tick_seconds)
                for label, url in targets.items()
            ]
        if run("api") and not args.skip_api:
            say("3. API: heartbeats vs the bare /healthz, wrk on loopback")
            results["api"] = [
                await api(url, label, 256, args.api_connections, args.api_seconds)
                for label, url in targets.items()
            ]
        if run("capacity") and not args.skip_capacity:
            from bench.capacity import capacity

            say(
                f"4. capacity: N calls, two parties heartbeating and two event streams each, "
                f"{args.capacity_seconds:.0f} s per N, `serve --workers "
                f"{args.capacity_workers}` + the meter worker, PostgreSQL"
            )
            results["capacity"] = await capacity(
                args.postgres, [int(s) for s in args.capacity_sizes.split(",")],
                args.capacity_seconds, args.capacity_workers, Path(tmp) / "capacity.log",
            )  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, after the measurements
    (out / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    from bench.report import write_report

    write_report(results, out)
    say(f"wrote {out / 'benchmarks.md'} and {out / 'benchmarks.png'}")


if __name__ == "__main__":
    started = time.perf_counter()
    asyncio.run(main())
    say(f"bench took {time.perf_counter() - started:.0f} s")
