"""Schemathesis against the real server's /openapi.json, as every role: no 5xx, every
response matches the schema, every schema-valid request is accepted (all checks).

`make fuzz` runs it with more examples (FUZZ_EXAMPLES)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_cli import free_port, run, start_server

pytestmark = pytest.mark.slow

EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "5")
ST = str(Path(sys.executable).with_name("st"))
CONFIG = str(Path(__file__).resolve().parents[2] / "schemathesis.toml")


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLMETER_")}
    env["CALLMETER_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}"
    env["CALLMETER_PASSWORD_HASH_PROFILE"] = "cheapest"
    run(env, "migrate")
    run(env, "demo")
    with start_server(env, tmp, free_port()) as base:
        tokens = {}
        for role, username in (("admin", "admin"), ("client", "alice"), ("host", "carol")):
            r = httpx.post(
                f"{base}/v1/auth/login", json={"username": username, "password": "callmeter-demo"}
            )
            tokens[role] = r.json()["access_token"]
        yield base, tokens


@pytest.mark.parametrize("role", ["anonymous", "admin", "client", "host"])
def test_schemathesis(fuzz_server: tuple[str, dict[str, str]], role: str) -> None:
    base, tokens = fuzz_server
    command = [
        ST,
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        "-n",
        EXAMPLES,
        "--generation-deterministic",
        "--generation-codec",
        "utf-8",
        "--request-timeout",
        "5",
        "--exclude-path-regex",
        "events$",
    ]
    if role != "anonymous":
        command += ["-H", f"Authorization: Bearer {tokens[role]}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    summary = re.search(r"(\d+) generated, (.*)", result.stdout)
    print(f"{role}: {summary.group(0) if summary else result.stdout[-2000:]}")
    assert result.returncode == 0, result.stdout[-20000:]
    assert summary is not None
    assert int(summary.group(1)) > 0
