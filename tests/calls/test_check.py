"""The calls' half of the ledger check (callmeter/calls/check.py): a corrupted call is
named, on SQLite and PostgreSQL; the Python cost check reads the calls in chunks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy import text

from callmeter.calls import check as calls_check
from callmeter.calls.check import check_calls, check_ledger_and_calls
from callmeter.ledger.check import check_ledger
from callmeter.models import Role
from tests.calls.driver import CallDriver
from tests.factories import auth_headers, make_user

ROOT = Path(__file__).resolve().parents[2]


async def _ended_calls(driver: CallDriver, n: int) -> list[int]:
    """``n`` calls of 65 s at the default tariff (10 coins a minute, 70 % to the host),
    hung up by the client: each billed 65 s, charged 10, host earned 7."""
    ids = []
    for _ in range(n):
        caller = await driver.party(Role.client, coins=100)
        host = await driver.party(Role.host)
        call_id = await driver.connect(caller, host)
        await driver.run(call_id, caller, host, until=65)
        r = await driver.post(f"/v1/calls/{call_id}/end", caller)
        final = r.json()["call"]
        assert (final["billed_seconds"], final["charged"], final["host_earned"]) == (65, 10, 7)
        ids.append(call_id)
    return ids


async def _corrupt(driver: CallDriver, sql: str, call_id: int) -> None:
    async with driver.runtime.sessionmaker.begin() as session:
        await session.execute(text(sql), {"id": call_id})


async def _problems(driver: CallDriver, **options: int) -> list[str]:
    async with driver.runtime.sessionmaker() as session:
        return await check_calls(session, **options)


async def test_correct_calls_pass_in_any_chunk_size(driver: CallDriver) -> None:
    await _ended_calls(driver, 3)
    for chunk_size in (1, 2, 3, 5_000):
        assert await _problems(driver, chunk_size=chunk_size) == []
    await driver.ledger_ok()


async def test_charged_that_is_not_the_cost_of_the_billed_seconds(driver: CallDriver) -> None:
    (call_id,) = await _ended_calls(driver, 1)
    # 130 s cost 20 coins, but the call charged (and its transfers say) 10
    await _corrupt(driver, "UPDATE calls SET billed_seconds = 130 WHERE id = :id", call_id)
    assert await _problems(driver) == [
        f"ended call {call_id} billed 130 s and charged 10, but cost(130) is 20"
    ]


async def test_the_cost_follows_the_calls_own_policy(driver: CallDriver) -> None:
    (call_id,) = await _ended_calls(driver, 1)
    # 65 s per started interval is two intervals: 20 coins, not the 10 charged
    sql = "UPDATE calls SET policy = 'per_started_interval' WHERE id = :id"
    await _corrupt(driver, sql, call_id)
    assert await _problems(driver) == [
        f"ended call {call_id} billed 65 s and charged 10, but cost(65) is 20"
    ]
    # per second: 10 * 65 // 60 = 10, which is what it charged
    await _corrupt(driver, "UPDATE calls SET policy = 'per_second' WHERE id = :id", call_id)
    assert await _problems(driver) == []


async def test_wrong_host_earned(driver: CallDriver) -> None:
    (call_id,) = await _ended_calls(driver, 1)
    await _corrupt(driver, "UPDATE calls SET host_earned = 6 WHERE id = :id", call_id)
    assert await _problems(driver) == [
        f"call {call_id} says charged 10, host 6, refunded 0; its transfers say 10, 7, 0",
        f"call {call_id}: host earned 6 of 10 charged, not floor(10 * 70 / 100)",
    ]


async def test_wrong_host_share_of_an_honest_ledger(driver: CallDriver) -> None:
    (call_id,) = await _ended_calls(driver, 1)
    # the transfers agree with the call; the call's share says the host should have 6
    await _corrupt(driver, "UPDATE calls SET host_share_percent = 60 WHERE id = :id", call_id)
    assert await _problems(driver) == [
        f"call {call_id}: host earned 7 of 10 charged, not floor(10 * 60 / 100)"
    ]


async def test_a_call_with_an_invalid_tariff_is_named_not_fatal(driver: CallDriver) -> None:
    (call_id,) = await _ended_calls(driver, 1)
    await _corrupt(driver, "UPDATE calls SET policy = 'per_fortnight' WHERE id = :id", call_id)
    (problem,) = await _problems(driver)
    assert problem.startswith(f"call {call_id} has no valid tariff ('per_fortnight', 10, 60")


async def test_more_than_one_chunk(driver: CallDriver) -> None:
    """The corrupted call is in the last chunk; progress is reported after each chunk."""
    ids = await _ended_calls(driver, 3)
    await _corrupt(driver, "UPDATE calls SET billed_seconds = 125 WHERE id = :id", ids[-1])
    expected = [f"ended call {ids[-1]} billed 125 s and charged 10, but cost(125) is 20"]
    for chunk_size, reports in ((1, [(1, 3), (2, 3), (3, 3)]), (2, [(2, 3), (3, 3)])):
        seen: list[tuple[int, int]] = []
        problems = await _problems_with_progress(driver, chunk_size, seen)
        assert problems == expected
        assert seen == reports


async def _problems_with_progress(
    driver: CallDriver, chunk_size: int, seen: list[tuple[int, int]]
) -> list[str]:
    async with driver.runtime.sessionmaker() as session:
        return await check_calls(
            session, chunk_size=chunk_size, progress=lambda done, total: seen.append((done, total))
        )


async def test_reports_at_most_the_cap_per_check(
    driver: CallDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await _ended_calls(driver, 3)
    for call_id in ids:
        await _corrupt(driver, "UPDATE calls SET billed_seconds = 0 WHERE id = :id", call_id)
    monkeypatch.setattr(calls_check, "MAX_PROBLEMS_PER_CHECK", 2)
    problems = await _problems(driver, chunk_size=1)
    assert problems == [
        f"ended call {call_id} billed 0 s and charged 10, but cost(0) is 0" for call_id in ids[:2]
    ]


async def test_ledger_check_runs_both_and_the_ledger_alone_knows_no_calls(
    driver: CallDriver,
) -> None:
    (call_id,) = await _ended_calls(driver, 1)
    await _corrupt(driver, "UPDATE calls SET billed_seconds = 130 WHERE id = :id", call_id)
    async with driver.runtime.sessionmaker() as session:
        ledger_only = await check_ledger(session)
        both = await check_ledger_and_calls(session)
    assert ledger_only.ok
    assert not both.ok
    assert both.problems == [
        f"ended call {call_id} billed 130 s and charged 10, but cost(130) is 20"
    ]
    assert both.totals == ledger_only.totals


async def test_admin_endpoint_reports_a_call_problem(
    driver: CallDriver, client: AsyncClient
) -> None:
    (call_id,) = await _ended_calls(driver, 1)
    admin = await make_user(driver.runtime, Role.admin)
    admin_headers = await auth_headers(client, admin.username)
    await _corrupt(driver, "UPDATE calls SET billed_seconds = 130 WHERE id = :id", call_id)
    r = await client.get("/v1/admin/ledger/check", headers=admin_headers)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False
    assert body["problems"] == [
        f"ended call {call_id} billed 130 s and charged 10, but cost(130) is 20"
    ]
    assert set(body["totals"]) == {
        "accounts",
        "transfers",
        "issued",
        "wallets",
        "held",
        "earnings",
        "revenue",
        "losses",
        "granted",
        "purchased",
        "bonus",
        "refunded",
        "disputes_lost",
        "paid_out",
        "shortfalls",
        "absorbed_by_platform",
    }


def test_the_ledger_check_knows_nothing_about_calls() -> None:
    source = (ROOT / "callmeter" / "ledger" / "check.py").read_text()
    code = source.split('"""', 2)[2]  # past the module docstring
    assert not re.search(r"\bcalls?\b|\bcall_id\b|callmeter\.calls", code)


def test_no_cost_formula_in_the_calls_check_sql() -> None:
    """The tariff columns are only read, never computed with, in the check's SQL."""
    source = (ROOT / "callmeter" / "calls" / "check.py").read_text()
    sql = "".join(re.findall(r'"""(.*?)"""', source, flags=re.S)[1:])  # past the docstring
    assert not re.search(r"rate|interval_seconds|free_seconds|host_share_percent", sql)
