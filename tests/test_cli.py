"""The command line and the real server, run as a user would run them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CALLMETER = [sys.executable, "-m", "callmeter"]


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*CALLMETER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


class TestCommands:
    def test_migrate_users_grants_and_check(self, env: dict[str, str], tmp_path: Path) -> None:
        assert "database at revision 00" in run(env, "migrate").stdout
        assert "database at revision 00" in run(env, "migrate").stdout  # idempotent
        out = run(env, "user", "add", "Root", "--role", "admin", "--password", "admin-pass").stdout
        assert "created admin root" in out
        run(env, "user", "add", "alice", "--role", "client", "--password", "alice-pass")
        dup = run(
            env, "user", "add", "alice", "--role", "client", "--password", "x" * 8, check=False
        )
        assert dup.returncode == 1
        assert "already taken" in dup.stderr
        bad = run(env, "user", "add", "eve", "--role", "wizard", "--password", "x" * 8, check=False)
        assert bad.returncode == 2

        out = run(env, "coins", "grant", "alice", "150", "--note", "hi", "--key", "k1").stdout
        assert "granted 150 coins to alice; balance now 150" in out
        again = run(env, "coins", "grant", "alice", "150", "--key", "k1").stdout
        assert "already granted" in again
        assert "balance now 150" in again
        for bad_amount in ("0", "-3", "1.5", "ten"):
            assert run(env, "coins", "grant", "alice", bad_amount, check=False).returncode == 2
        missing = run(env, "coins", "grant", "nobody", "5", check=False)
        assert missing.returncode == 1
        assert "no user named" in missing.stderr

        check = run(env, "ledger", "check")
        assert "ledger check passed" in check.stdout
        assert "150" in check.stdout

        db = sqlite3.connect(tmp_path / "cli.db")
        db.execute("UPDATE accounts SET balance = balance + 1 WHERE kind = 'wallet'")
        db.commit()
        db.close()
        failed = run(env, "ledger", "check", check=False)
        assert failed.returncode == 1
        assert "ledger check FAILED" in failed.stderr
        assert "postings sum to 150" in failed.stderr

    def test_check_names_a_call_that_does_not_cost_its_billed_seconds(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        run(env, "migrate")
        run(env, "user", "add", "carol", "--role", "client", "--password", "carol-pass")
        run(env, "user", "add", "harry", "--role", "host", "--password", "harry-pass")
        db = sqlite3.connect(tmp_path / "cli.db")
        # an ended call that billed two minutes at 10 coins a minute and charged nothing
        db.execute(
            "INSERT INTO calls (client_id, host_id, status, end_reason, policy, rate, "
            "interval_seconds, free_seconds, host_share_percent, created_at, billed_seconds, "
            "charged, host_earned, refunded, held, media_provider, room, version) VALUES "
            "(1, 2, 'ended', 'client_hangup', 'per_completed_interval', 10, 60, 0, 70, "
            "'2025-01-01 00:00:00', 120, 0, 0, 0, 0, 'p2p', 'call-1', 0)"
        )
        db.commit()
        db.close()
        failed = run(env, "ledger", "check", check=False)
        assert failed.returncode == 1
        assert "ledger check FAILED: 1 problem(s)" in failed.stderr
        assert "ended call 1 billed 120 s and charged 0, but cost(120) is 20" in failed.stderr

    def test_demo_is_idempotent(self, env: dict[str, str]) -> None:
        run(env, "migrate")
        first = run(env, "demo").stdout
        assert first.count("created") == 5
        second = run(env, "demo").stdout
        assert second.count("exists") == 5
        assert "callmeter-demo" in second
        assert "ledger check passed" in run(env, "ledger", "check").stdout

    def test_production_refuses_default_secret(self, env: dict[str, str]) -> None:
        env["CALLMETER_ENV"] = "production"
        result = run(env, "migrate", check=False)
        assert result.returncode == 2
        assert "CALLMETER_SECRET_KEY" in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def start_server(env: dict[str, str], tmp_path: Path, port: int, *extra: str) -> Iterator[str]:
    """`callmeter serve` on ``port`` until the block ends."""
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*CALLMETER, "serve", "--port", str(port), *extra], env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            proc.kill()
            proc.wait()
            pytest.fail(f"server did not start: {log.read_text()}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    run(env, "migrate")
    run(env, "demo")
    with start_server(env, tmp_path, free_port()) as base:
        yield base


@pytest.mark.slow
def test_served_api_logs_in_a_demo_user(server: str) -> None:
    login = httpx.post(
        f"{server}/v1/auth/login", json={"username": "alice", "password": "callmeter-demo"}
    )
    assert login.status_code == 200
    me = httpx.get(
        f"{server}/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["wallet"] == {"balance": 500, "held": 0, "available": 500}
    assert httpx.get(f"{server}/openapi.json").json()["info"]["title"] == "callmeter"


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:  # the process ended while we looked
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


@contextlib.contextmanager
def _supervisor(
    env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`callmeter serve --workers 2` on a demo database, once its 3 children run."""
    run(env, "migrate")
    run(env, "demo")
    port = free_port()
    log = tmp_path / "workers.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*CALLMETER, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=out,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while len(_children(proc.pid)) < 3 or not _ready(base):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)


def _gone(pids: list[int], within: float = 15) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_serve_with_workers_runs_api_processes_and_one_meter(
    env: dict[str, str], tmp_path: Path
) -> None:
    with _supervisor(env, tmp_path) as (proc, base):
        commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in _children(proc.pid)}
        assert sum(b"--fd" in c for c in commands.values()) == 2  # two API processes, one port
        assert sum(b"worker" in c for c in commands.values()) == 1  # and one meter
        for _ in range(20):  # every request is answered, whichever process takes it
            login = {"username": "alice", "password": "callmeter-demo"}
            assert httpx.post(f"{base}/v1/auth/login", json=login).status_code == 200
        api = next(pid for pid, c in commands.items() if b"--fd" in c)
        os.kill(api, signal.SIGKILL)  # a crashed API process is started again
        deadline = time.monotonic() + 20
        while api in _children(proc.pid) or len(_children(proc.pid)) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # until the new process listens, the connections the kernel hashes to its socket
        # wait in that socket's backlog (docs/deploy.md): ready within the deadline
        while not _ready(base):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        children = _children(proc.pid)
        proc.terminate()  # SIGTERM: every child stops, the supervisor exits 0
        assert proc.wait(timeout=20) == 0
    assert _gone(children)


def _sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds open (a descriptor it closes while they are
    counted is not one: a CI run failed on such a race)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            count += os.readlink(fd).startswith("socket:")
    return count


@pytest.mark.slow
def test_connections_are_spread_over_the_api_processes(env: dict[str, str], tmp_path: Path) -> None:
    """Each API process listens on a socket of its own (SO_REUSEPORT), so the kernel
    spreads connections evenly; on one shared socket the busiest process took most."""
    with _supervisor(env, tmp_path) as (proc, base):
        commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in _children(proc.pid)}
        apis = [pid for pid, command in commands.items() if b"--fd" in command]
        listening = set()  # the socket each was handed (serve --fd N)
        for pid in apis:
            words = commands[pid].split(b"\0")
            fd = int(words[words.index(b"--fd") + 1])
            listening.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        assert len(listening) == len(apis) == 2, listening
        before = {pid: _sockets(pid) for pid in apis}
        port = int(base.rsplit(":", 1)[1])
        _second_supervisor_is_refused(env, port)
        connections = []
        try:
            for _ in range(64):
                conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                connections.append(conn)
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
                assert conn.recv(4096).startswith(b"HTTP/1.1 200")  # accepted, kept open
            gained = [_sockets(pid) - before[pid] for pid in apis]
        finally:
            for conn in connections:
                conn.close()
    assert sum(gained) >= 64, gained
    assert min(gained) >= 12, gained  # of 64 over 2: fewer than 12 is a 1-in-10^7 draw


def _second_supervisor_is_refused(env: dict[str, str], port: int) -> None:
    """SO_REUSEPORT would let it bind: the first one's lock on the port refuses it."""
    second = subprocess.run(
        [*CALLMETER, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"cannot listen on 127.0.0.1:{port}: another callmeter serve holds it" in second.stderr
    assert "serving on" not in second.stdout  # it never said it was


@pytest.mark.slow
def test_the_workers_do_not_outlive_a_killed_supervisor(
    env: dict[str, str], tmp_path: Path
) -> None:
    with _supervisor(env, tmp_path) as (proc, _base):
        children = _children(proc.pid)
        proc.kill()  # no chance to stop them itself
        proc.wait(timeout=10)
        assert _gone(children), "API processes still hold the port"


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
