"""Real processes for tests: a helper module in several OS processes at once, and a
`callmeter serve` process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


async def race_processes(module: str, args: list[str], count: int = 2) -> list[dict[str, Any]]:
    """Start ``python -m module *args`` ``count`` times concurrently; each must exit 0 and
    print a JSON object on its last line, which is returned."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


@contextlib.contextmanager
def served(env: dict[str, str], log: Path, port: int, *extra: str) -> Iterator[str]:
    """`callmeter serve --port port *extra` (env as given, output to ``log``) until the block
    ends; yields its base URL once `/readyz` answers 200 (fails the test after 30 s)."""
    base = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "callmeter", "serve", "--port", str(port), *extra],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"callmeter serve did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
