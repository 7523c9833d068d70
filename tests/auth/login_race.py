"""Run by the login-throttle test in several OS processes at once: each fires N concurrent
wrong logins for one username through its own application (its own pool and hashing gate)
on the shared database, and reports how many passwords its hasher verified.

Usage: python -m tests.auth.login_race URL USERNAME N
Prints {"verifications": int, "statuses": {status: count}}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

from httpx import ASGITransport, AsyncClient

from callmeter.app import create_app, create_runtime
from callmeter.config import Settings
from callmeter.kit.clock import ManualClock
from tests.auth.hashers import CountingHasher
from tests.conftest import make_settings

START = ManualClock().now()


def settings(url: str) -> Settings:
    return make_settings(
        url, password_hash_concurrency=4, password_hash_queue=1000, password_hash_wait_seconds=30
    )


async def main(url: str, username: str, n: int) -> None:
    runtime = create_runtime(settings(url), ManualClock(START))
    hasher = runtime.hasher = CountingHasher.cheapest()
    app = create_app(runtime=runtime)
    transport = ASGITransport(app=app, client=("198.51.100.7", 4000))
    try:
        async with AsyncClient(transport=transport, base_url="http://test") as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/v1/auth/login", json={"username": username, "password": f"guess{i}"}
                    )
                    for i in range(n)
                )
            )
    finally:
        await runtime.close()
    statuses = Counter(str(r.status_code) for r in responses)
    print(json.dumps({"verifications": hasher.verifications, "statuses": statuses}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
