from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from callmeter.config import Settings
from tests.conftest import make_settings
from tests.media.standin import KEY, SECRET, Standin, running_standin


@pytest.fixture
async def standin() -> AsyncIterator[Standin]:
    async with running_standin() as server:
        yield server


@pytest.fixture
def settings(database_url: str, standin: Standin) -> Settings:
    return make_settings(
        database_url,
        livekit_url=standin.url,
        livekit_api_key=KEY,
        livekit_api_secret=SECRET,
        livekit_timeout_seconds=2,
    )
