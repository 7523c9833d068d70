"""Black-box auth floods against a running `callmeter serve` (issue 11, points 6 and 7),
while an active call heartbeats; prints what every flood got and the heartbeat latency.

Usage: python -m tests.auth.flood BASE_URL [--logins N] [--registrations N] [--guesses N]
The server must have a client `flood_client` (with coins) and a host `flood_host`, both with
the password `flood-password`. Requests carry X-Forwarded-For (trusted from 127.0.0.1 by
uvicorn) so that a flood comes from many addresses, as a botnet's would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from typing import Any

import httpx

PASSWORD = "flood-password"


def forwarded(i: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"}


async def login(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    r = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def active_call(http: httpx.AsyncClient, client: dict[str, str], host: dict[str, str]) -> int:
    hosts = (await http.get("/v1/hosts", headers=client)).json()
    host_id = next(h["id"] for h in hosts if h["display_name"] == "flood_host")
    await http.post("/v1/hosts/me/presence", headers=host)  # the host's page is open
    r = await http.post("/v1/calls", json={"host_id": host_id}, headers=client)
    assert r.status_code == 201, r.text
    call_id = int(r.json()["call"]["id"])
    assert (await http.post(f"/v1/calls/{call_id}/accept", headers=host)).status_code == 200
    for who in (client, host):
        r = await http.post(
            f"/v1/calls/{call_id}/heartbeat", json={"media_connected": True}, headers=who
        )
    assert r.json()["call"]["status"] == "active", r.text
    return call_id


async def beat(base: str, call_id: int, tokens: list[str]) -> None:
    """Run in its own process, so that the flood's client work does not delay it: heartbeat
    for both parties every 0.25 s and print "<wall time> <latency> <status>" for each."""
    parties = [{"Authorization": f"Bearer {token}"} for token in tokens]
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while True:
            for who in parties:
                start = time.monotonic()
                status = await timed(
                    http,
                    "POST",
                    f"/v1/calls/{call_id}/heartbeat",
                    json={"media_connected": True},
                    headers=who,
                )
                print(f"{time.time():.3f} {time.monotonic() - start:.4f} {status}", flush=True)
            await asyncio.sleep(0.25)


async def timed(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> int:
    try:
        return (await http.request(method, url, **kw)).status_code
    except httpx.TransportError:
        return 0  # no answer within the timeout


async def flood(name: str, requests: list[Any]) -> dict[str, Any]:
    start = time.time()
    statuses = Counter(await asyncio.gather(*requests))
    return {
        "flood": name,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "start": start,
        "seconds": round(time.time() - start, 2),
    }


def heartbeat_figures(result: dict[str, Any], beats: list[tuple[float, float, int]]) -> None:
    """Heartbeats sent while the flood ran: the slowest, the median, any not answered 200."""
    start = result.pop("start")
    end = start + result["seconds"]
    during = [(latency, status) for at, latency, status in beats if start <= at <= end]
    latencies = [latency for latency, _ in during] or [0.0]
    result["heartbeats"] = len(during)
    result["heartbeat_max_s"] = round(max(latencies), 3)
    result["heartbeat_median_s"] = round(statistics.median(latencies), 3)
    result["heartbeats_not_200"] = sum(1 for _, status in during if status != 200)


async def main(base: str, logins: int, registrations: int, guesses: int) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        client, host = await login(http, "flood_client"), await login(http, "flood_host")
        call_id = await active_call(http, client, host)
        tokens = [h["Authorization"].split()[1] for h in (client, host)]
        beater = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.auth.flood", base, "--beat", str(call_id), *tokens,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        run = uuid.uuid4().hex[:6]
        results = []
        try:
            await asyncio.sleep(2)
            results.append(
                await flood(
                    f"{logins} logins, random usernames, many addresses",
                    [
                        timed(
                            http,
                            "POST",
                            "/v1/auth/login",
                            json={"username": f"x{run}{i}", "password": "password"},
                            headers=forwarded(i),
                        )
                        for i in range(logins)
                    ],
                )
            )
            await asyncio.sleep(1)
            results.append(
                await flood(
                    f"{registrations} registrations, one address",
                    [
                        timed(
                            http,
                            "POST",
                            "/v1/auth/register",
                            json={"username": f"r{run}{i}", "password": PASSWORD, "role": "client"},
                        )
                        for i in range(registrations)
                    ],
                )
            )
            await asyncio.sleep(1)
            guess = [
                timed(
                    http,
                    "POST",
                    "/v1/auth/login",
                    json={"username": "flood_host", "password": f"guess{i}"},
                    headers=forwarded(70000),
                )
                for i in range(guesses)
            ]
            right = timed(
                http,
                "POST",
                "/v1/auth/login",
                json={"username": "flood_host", "password": PASSWORD},
                headers=forwarded(70000),
            )
            results.append(
                await flood(
                    f"{guesses} wrong + 1 right login for one user, one address", [*guess, right]
                )
            )
            await asyncio.sleep(1)
            # The owner, from the address they used before the guessing, still gets in.
            owner = await timed(
                http,
                "POST",
                "/v1/auth/login",
                json={"username": "flood_host", "password": PASSWORD},
            )
        finally:
            beater.terminate()
            out, _ = await beater.communicate()
        beats = []
        for line in out.decode().splitlines():
            at, latency, status = line.split()
            beats.append((float(at), float(latency), int(status)))
        for result in results:
            heartbeat_figures(result, beats)
            print(json.dumps(result))
        results.append({"flood": "owner from a known address afterwards", "status": owner})
        print(json.dumps(results[-1]))
        print(json.dumps({"results": results}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--guesses", type=int, default=60)
    parser.add_argument("--beat", nargs=3, metavar=("CALL_ID", "CLIENT_TOKEN", "HOST_TOKEN"))
    args = parser.parse_args()
    if args.beat:
        call, *tokens = args.beat
        asyncio.run(beat(args.base, int(call), tokens))
    else:
        asyncio.run(main(args.base, args.logins, args.registrations, args.guesses))
