"""The stress and crash run at reduced size (`make stress` runs it at full size)."""

from __future__ import annotations

import os

import pytest

from tests.stress.driver import in_scratch_database, parse

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.mark.skipif(not os.environ.get("CALLMETER_TEST_DATABASE_URL"), reason="needs PostgreSQL")
@pytest.mark.parametrize("media", ["p2p", "livekit"])
async def test_stress_with_crashes(media: str) -> None:
    args = parse(
        [
            "--calls",
            "80",
            "--kills",
            "6",
            "--min-seconds",
            "3",
            "--max-seconds",
            "6",
            "--ramp-seconds",
            "2",
            *(["--livekit"] if media == "livekit" else []),
        ]
    )
    outcome = await in_scratch_database(args)
    print(outcome)
    assert outcome["calls"] == 80
    assert outcome["kills"] == 6
    assert outcome["unfinished"] == 0
    assert outcome["server_errors"] == 0
    assert outcome["ledger_ok"], outcome["problems"]
    assert outcome["end_reasons"].get("insufficient_funds", 0) > 0
    assert outcome["calls_connected"] >= 60  # most calls really ran and were billed
