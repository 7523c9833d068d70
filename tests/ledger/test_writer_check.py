"""`ledger check` proves every call transfer was written by the one ledger writer."""

from __future__ import annotations

from typing import Any

from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.ledger.writer_check import transfers_keyed_by_the_writer
from callmeter.models import AccountKind, Call, Role


async def _problems(runtime: Runtime, chunk: int = 5_000) -> list[str]:
    async with runtime.sessionmaker() as session:
        return await transfers_keyed_by_the_writer(session, chunk=chunk)


async def _calls(driver: Any, count: int) -> list[int]:
    """``count`` calls of 130 s (two charges each), ended by the client."""
    ids = []
    for _ in range(count):
        client = await driver.party(Role.client, coins=100)
        host = await driver.party(Role.host)
        call_id = await driver.connect(client, host)
        await driver.run(call_id, client, host, until=130)
        r = await driver.post(f"/v1/calls/{call_id}/end", client)
        assert r.status_code == 200, r.text
        ids.append(call_id)
    return ids


async def test_calls_settled_by_the_services_pass(runtime: Runtime, driver: Any) -> None:
    await _calls(driver, 3)
    assert await _problems(runtime) == []
    assert await _problems(runtime, chunk=2) == []  # chunk boundaries inside a call


async def test_a_charge_written_another_way_is_found(runtime: Runtime, driver: Any) -> None:
    [call_id] = await _calls(driver, 1)
    async with runtime.sessionmaker.begin() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        wallet = await ledger.account_for_user(session, call.client_id)
        revenue = await ledger.system_account_id(session, AccountKind.revenue)
        for key in ("manual-fix", ledger.charge_key(call_id, ledger.TransferKind.call_charge, 999)):
            await ledger.transfer(
                session,
                debit_account_id=wallet.id,
                credit_account_id=revenue,
                amount=1,
                kind=ledger.TransferKind.call_charge,
                idempotency_key=key,
                now=runtime.clock.now(),
                call_id=call_id,
            )
    problems = await _problems(runtime)
    assert len(problems) == 2, problems
    assert "'manual-fix'" in problems[0]
    assert "total of 999" in problems[1]
