"""Host presence (issue 16): a host is online only while one of its pages says so, and a
call to a host who is offline is refused before anything is held."""

from __future__ import annotations

import pytest

from callmeter.config import Settings
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.calls.driver import CallDriver, Party
from tests.conftest import make_settings
from tests.factories import wallet_of


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, host_presence_timeout_seconds=45)


async def presence_of(driver: CallDriver, viewer: Party, host: Party) -> str:
    r = await driver.client.get("/v1/hosts", headers=viewer.headers)
    assert r.status_code == 200, r.text
    return str(next(h for h in r.json() if h["id"] == host.user.id)["presence"])


async def test_a_host_without_an_open_page_is_offline_and_cannot_be_called(
    driver: CallDriver, runtime: Runtime
) -> None:
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    assert await presence_of(driver, caller, host) == "offline"
    r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
    assert (r.status_code, r.json()["error"]) == (409, "host_offline")
    assert await wallet_of(runtime, caller.user.id) == (100, 0)  # nothing held

    r = await driver.post("/v1/hosts/me/presence", host)
    assert (r.status_code, r.json()["presence"]) == (200, "online")
    assert await presence_of(driver, caller, host) == "online"
    call = await driver.ring(caller, host)
    assert await presence_of(driver, caller, host) == "busy"
    await driver.post(f"/v1/calls/{call['id']}/decline", host)
    assert await presence_of(driver, caller, host) == "online"


async def test_presence_lasts_the_timeout_from_the_last_ping(driver: CallDriver) -> None:
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    await driver.post("/v1/hosts/me/presence", host)
    driver.clock.advance(30)
    await driver.post("/v1/hosts/me/presence", host)  # the page is still open
    driver.clock.advance(44)
    assert await presence_of(driver, caller, host) == "online"
    driver.clock.advance(1)  # 45 s since the last ping: the page is gone
    assert await presence_of(driver, caller, host) == "offline"
    r = await driver.post("/v1/calls", caller, {"host_id": host.user.id})
    assert (r.status_code, r.json()["error"]) == (409, "host_offline")


async def test_away_is_not_accepting_calls_and_online_hosts_come_first(
    driver: CallDriver,
) -> None:
    caller = await driver.party(Role.client, 100)
    away, offline, online = [await driver.party(Role.host) for _ in range(3)]
    for host in (away, online):
        await driver.post("/v1/hosts/me/presence", host)
    r = await driver.client.put(
        "/v1/hosts/me", json={"accepting_calls": False}, headers=away.headers
    )
    assert (r.status_code, r.json()["presence"]) == (200, "away")
    r = await driver.post("/v1/calls", caller, {"host_id": away.user.id})
    assert (r.status_code, r.json()["error"]) == (409, "host_unavailable")
    listed = (await driver.client.get("/v1/hosts", headers=caller.headers)).json()
    assert [(h["id"], h["presence"]) for h in listed] == [
        (online.user.id, "online"),
        (away.user.id, "away"),
        (offline.user.id, "offline"),
    ]


async def test_only_a_host_says_it_is_present(driver: CallDriver) -> None:
    caller = await driver.party(Role.client)
    r = await driver.post("/v1/hosts/me/presence", caller)
    assert r.status_code == 403
    r = await driver.client.post("/v1/hosts/me/presence")
    assert r.status_code == 401


async def test_a_timeout_of_zero_counts_every_host_online(
    driver: CallDriver, runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"host_presence_timeout_seconds": 0})
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    assert await presence_of(driver, caller, host) == "online"
    await driver.ring(caller, host)
