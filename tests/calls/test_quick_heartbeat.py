"""The cheap heartbeat (issue 15, point 2): on an active call with nothing due, a heartbeat
is one UPDATE … RETURNING — no user read, no lock first — and a party's last-seen moves at
most once a second; every other heartbeat takes the full path, under the same rules."""

from __future__ import annotations

from datetime import datetime

from callmeter.calls.service import PRESENCE_COALESCE
from callmeter.models import Call, Role
from tests.calls.driver import CallDriver, Party
from tests.calls.test_statement_count import counting


async def _active(driver: CallDriver) -> tuple[int, Party, Party]:
    caller, host = await driver.party(Role.client, 100), await driver.party(Role.host)
    return await driver.connect(caller, host), caller, host


async def _last_seen(driver: CallDriver, call_id: int) -> tuple[datetime | None, datetime | None]:
    async with driver.runtime.sessionmaker() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call.client_last_seen_at, call.host_last_seen_at


async def test_a_quiet_heartbeat_is_one_statement(driver: CallDriver) -> None:
    call_id, caller, _host = await _active(driver)
    driver.clock.advance(3)
    with counting(driver.runtime) as seen:
        r = await driver.heartbeat(call_id, caller)
    assert r.status_code == 200, r.text
    assert r.json()["call"]["status"] == "active"
    statements = [s for s in seen if not s.upper().startswith(("BEGIN", "COMMIT"))]
    assert len(statements) == 1, statements
    assert statements[0].lstrip().upper().startswith("UPDATE CALLS")
    assert "users" not in statements[0].lower()  # the token names the party: no user read
    client_seen, _ = await _last_seen(driver, call_id)
    assert client_seen == driver.clock.now()


async def test_a_second_heartbeat_within_a_second_writes_nothing(driver: CallDriver) -> None:
    call_id, caller, _host = await _active(driver)
    driver.clock.advance(3)
    await driver.heartbeat(call_id, caller)
    first = driver.clock.now()
    driver.clock.advance(PRESENCE_COALESCE.total_seconds() / 2)
    with counting(driver.runtime) as seen:
        r = await driver.heartbeat(call_id, caller)
    assert r.status_code == 200, r.text
    kinds = [s.lstrip().split()[0].upper() for s in seen if not s.upper().startswith("BEGIN")]
    assert kinds == ["UPDATE", "SELECT"], seen  # the update matched no row; one plain read
    assert (await _last_seen(driver, call_id))[0] == first  # at most 1 s in the client's favour
    driver.clock.advance(PRESENCE_COALESCE.total_seconds())
    await driver.heartbeat(call_id, caller)
    assert (await _last_seen(driver, call_id))[0] == driver.clock.now()


async def test_a_party_back_after_the_timeout_cannot_revive_the_call(driver: CallDriver) -> None:
    call_id, caller, _host = await _active(driver)
    timeout = driver.runtime.settings.heartbeat_timeout_seconds
    driver.clock.advance(timeout // 2)
    await driver.heartbeat(call_id, caller)  # the host says nothing from here on
    driver.clock.advance(timeout)
    r = await driver.heartbeat(call_id, caller)
    call = r.json()["call"]
    assert (call["status"], call["end_reason"]) == ("ended", "connection_lost")
    assert call["billed_seconds"] == 0  # the host was last seen at the start


async def test_a_heartbeat_at_a_boundary_charges(driver: CallDriver) -> None:
    call_id, caller, host = await _active(driver)
    interval = driver.runtime.settings.billing_interval_seconds
    step = driver.runtime.settings.heartbeat_timeout_seconds // 3
    for _ in range(interval // step):
        driver.clock.advance(step)
        await driver.both_heartbeat(call_id, caller, host)
    driver.clock.advance(1)
    await driver.heartbeat(call_id, caller)
    r = await driver.heartbeat(call_id, host)
    assert r.json()["call"]["charged"] == driver.runtime.settings.default_rate
    await driver.ledger_ok()


async def test_a_stranger_and_the_other_role_get_404(driver: CallDriver) -> None:
    call_id, _caller, _host = await _active(driver)
    stranger = await driver.party(Role.client, 10)
    driver.clock.advance(3)
    assert (await driver.heartbeat(call_id, stranger)).status_code == 404
    admin = await driver.party(Role.admin)
    assert (await driver.heartbeat(call_id, admin)).status_code == 404
