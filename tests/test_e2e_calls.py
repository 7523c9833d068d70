"""End to end: the real `callmeter serve` (SQLite, 1-second intervals, in-process meter)
driven over HTTP by clients and hosts, with real time passing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_cli import CALLMETER, free_port, run, start_server

pytestmark = pytest.mark.slow

PASSWORD = "e2e-password"


def prepare(env: dict[str, str]) -> None:
    env.update(
        CALLMETER_BILLING_INTERVAL_SECONDS="1",
        CALLMETER_METER_TICK_SECONDS="0.2",
        CALLMETER_HEARTBEAT_TIMEOUT_SECONDS="5",
        CALLMETER_EVENTS_POLL_SECONDS="0.2",
    )
    run(env, "migrate")
    for name, role in [("cli1", "client"), ("cli2", "client"), ("hst1", "host"), ("hst2", "host")]:
        run(env, "user", "add", name, "--role", role, "--password", PASSWORD)
    run(env, "coins", "grant", "cli1", "100")
    run(env, "coins", "grant", "cli2", "25")


@pytest.fixture
def billing_server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    prepare(env)
    with start_server(env, tmp_path, free_port()) as base:
        yield base


async def login(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def host_id(http: httpx.AsyncClient, headers: dict[str, str], name: str) -> int:
    hosts = (await http.get("/v1/hosts", headers=headers)).json()
    return next(h["id"] for h in hosts if h["display_name"] == name)


async def start_call(
    http: httpx.AsyncClient, client: dict[str, str], host: dict[str, str], host_name: str
) -> int:
    await http.post("/v1/hosts/me/presence", headers=host)  # the host's page is open
    r = await http.post(
        "/v1/calls", json={"host_id": await host_id(http, client, host_name)}, headers=client
    )
    assert r.status_code == 201, r.text
    call_id = int(r.json()["call"]["id"])
    assert (await http.post(f"/v1/calls/{call_id}/accept", headers=host)).status_code == 200
    for who in (client, host):
        r = await http.post(
            f"/v1/calls/{call_id}/heartbeat", json={"media_connected": True}, headers=who
        )
    assert r.json()["call"]["status"] == "active"
    return call_id


async def keep_alive(http: httpx.AsyncClient, call_id: int, *parties: dict[str, str]) -> None:
    while True:
        for who in parties:
            await http.post(
                f"/v1/calls/{call_id}/heartbeat", json={"media_connected": True}, headers=who
            )
        await asyncio.sleep(0.3)


async def test_calls_over_http(billing_server: str, env: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=billing_server, timeout=10) as http:
        c1, c2 = await login(http, "cli1"), await login(http, "cli2")
        h1, h2 = await login(http, "hst1"), await login(http, "hst2")

        # A call that both sides hang up at once, while heartbeats keep coming.
        a = await start_call(http, c1, h1, "hst1")
        # B: 25 coins at 10 per second; the meter ends it after two seconds.
        b = await start_call(http, c2, h2, "hst2")
        beats = [
            asyncio.create_task(keep_alive(http, a, c1, h1)),
            asyncio.create_task(keep_alive(http, b, c2, h2)),
        ]
        try:
            await asyncio.sleep(3.3)
            ends = await asyncio.gather(
                *(http.post(f"/v1/calls/{a}/end", headers=who) for who in [c1, h1] * 5)
            )
            await asyncio.sleep(1.0)
        finally:
            for task in beats:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        assert {r.status_code for r in ends} == {200}
        # the same call each time (server_time is when it was read, not part of the call)
        finals = [{k: v for k, v in r.json()["call"].items() if k != "server_time"} for r in ends]
        assert all(f == finals[0] for f in finals)
        final_a = finals[0]
        assert final_a["end_reason"] in {"client_hangup", "host_hangup"}
        assert 2 <= final_a["billed_seconds"] <= 5
        assert final_a["charged"] == 10 * final_a["billed_seconds"]
        assert final_a["host_earned"] == 7 * final_a["billed_seconds"]
        assert final_a["held"] == 0

        final_b = (await http.get(f"/v1/calls/{b}", headers=c2)).json()["call"]
        assert (final_b["status"], final_b["end_reason"]) == ("ended", "insufficient_funds")
        assert (final_b["billed_seconds"], final_b["charged"], final_b["held"]) == (2, 20, 0)
        wallet = (await http.get("/v1/wallet", headers=c2)).json()
        assert wallet == {"balance": 5, "held": 0, "available": 5}
        entries = (await http.get("/v1/wallet/entries", headers=c2)).json()["items"]
        assert sum(e["amount"] for e in entries if e["call_id"] == b) == -20

    assert "ledger check passed" in run(env, "ledger", "check").stdout


@pytest.fixture
def split_deployment(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two API processes without meters and one `callmeter worker`."""
    prepare(env)
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen([*CALLMETER, "worker"], env=env, stdout=log, stderr=log)
        try:
            with (
                start_server(env, tmp_path, free_port(), "--no-meter") as api1,
                start_server(env, tmp_path, free_port(), "--no-meter") as api2,
            ):
                yield api1, api2
        finally:
            worker.terminate()
            worker.wait(timeout=10)
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()


async def test_a_separate_worker_ends_the_call_and_the_stream_hears_it(
    split_deployment: tuple[str, str], env: dict[str, str]
) -> None:
    """The worker ends a call that ran out of coins, and a stream opened on the *other*
    API process hears it."""
    api1, api2 = split_deployment
    async with (
        httpx.AsyncClient(base_url=api1, timeout=10) as http1,
        httpx.AsyncClient(base_url=api2, timeout=10) as http2,
    ):
        c2, h2 = await login(http1, "cli2"), await login(http2, "hst2")
        call_id = await start_call(http1, c2, h2, "hst2")
        beats = asyncio.create_task(keep_alive(http1, call_id, c2, h2))
        final = None
        try:
            async with http2.stream("GET", f"/v1/calls/{call_id}/events", headers=c2) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data:") and '"status":"ended"' in line:
                        final = json.loads(line[5:])
                        break
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
    assert final is not None
    assert (final["end_reason"], final["charged"], final["billed_seconds"]) == (
        "insufficient_funds",
        20,
        2,
    )
    assert "ledger check passed" in run(env, "ledger", "check").stdout
