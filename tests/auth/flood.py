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
import contextlib
import json
import statistics
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


async def heartbeats(
    http: httpx.AsyncClient, call_id: int, parties: list[dict[str, str]], latencies: list[float]
) -> None:
    while True:
        for who in parties:
            start = time.monotonic()
            r = await http.post(
                f"/v1/calls/{call_id}/heartbeat", json={"media_connected": True}, headers=who
            )
            latencies.append(time.monotonic() - start)
            if r.status_code != 200:
                latencies.append(float("inf"))  # a failed heartbeat: reported as such
        await asyncio.sleep(0.25)


async def timed(http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> int:
    try:
        return (await http.request(method, url, **kw)).status_code
    except httpx.TransportError:
        return 0  # no answer within the timeout


async def flood(
    http: httpx.AsyncClient, name: str, requests: list[Any], latencies: list[float]
) -> dict[str, Any]:
    before = len(latencies)
    start = time.monotonic()
    statuses = Counter(await asyncio.gather(*requests))
    elapsed = time.monotonic() - start
    during = latencies[before:] or [0.0]
    return {
        "flood": name,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(elapsed, 2),
        "heartbeat_max_s": round(max(during), 3) if max(during) < float("inf") else "failed",
        "heartbeat_median_s": round(statistics.median(during), 3),
    }


async def main(base: str, logins: int, registrations: int, guesses: int) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        client, host = await login(http, "flood_client"), await login(http, "flood_host")
        call_id = await active_call(http, client, host)
        latencies: list[float] = []
        beat = asyncio.create_task(heartbeats(http, call_id, [client, host], latencies))
        results = []
        try:
            await asyncio.sleep(1)
            run = uuid.uuid4().hex[:6]
            results.append(
                await flood(
                    http,
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
                    latencies,
                )
            )
            results.append(
                await flood(
                    http,
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
                    latencies,
                )
            )
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
                    http,
                    f"{guesses} wrong + 1 right login for one user, one address",
                    [*guess, right],
                    latencies,
                )
            )
            # The owner, from the address they used before the guessing, still gets in.
            owner = await timed(
                http,
                "POST",
                "/v1/auth/login",
                json={"username": "flood_host", "password": PASSWORD},
            )
            results.append({"flood": "owner from a known address afterwards", "status": owner})
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        for result in results:
            print(json.dumps(result))
        print(json.dumps({"results": results}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--guesses", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.base, args.logins, args.registrations, args.guesses))
