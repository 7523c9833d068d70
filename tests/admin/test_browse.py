"""Admin: find users (with their balance) and browse every call by status, user and period
(issue 16: the admin pages needed ids the UI never showed)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from httpx import AsyncClient

from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.calls.driver import CallDriver
from tests.factories import auth_headers, make_user


async def test_users_are_found_by_any_part_of_their_names(
    client: AsyncClient, runtime: Runtime
) -> None:
    admin = await make_user(runtime, Role.admin, "boss")
    carol = await make_user(runtime, Role.host, "carol_tutor")
    alice = await make_user(runtime, Role.client, "alice", coins=40)
    al_x = await make_user(runtime, Role.client, "al_x")  # "_" searched is a letter, not "any"
    headers = await auth_headers(client, admin.username)

    async def found(query: str) -> list[tuple[str, int | None]]:
        r = await client.get(f"/v1/admin/users{query}", headers=headers)
        assert r.status_code == 200, r.text
        return [(u["username"], u["balance"]) for u in r.json()["items"]]

    assert await found("?q=ALI") == [("alice", 40)]
    assert await found("?q=TUTOR") == [("carol_tutor", 0)]
    assert await found("?q=_x") == [("al_x", 0)]
    assert await found("?q=a_i") == []  # a wildcard "_" would find "alice"
    assert await found("?q=%25") == []  # "%" is a letter too
    assert [name for name, _ in await found("?role=client")] == ["al_x", "alice"]
    assert await found("?q=boss") == [("boss", None)]  # an admin has no account
    page = (await client.get("/v1/admin/users?limit=2", headers=headers)).json()
    rest = (
        await client.get(f"/v1/admin/users?limit=2&before={page['next_before']}", headers=headers)
    ).json()
    everyone = sorted((u.id for u in (admin, carol, alice, al_x)), reverse=True)
    assert [u["id"] for u in page["items"] + rest["items"]] == everyone
    assert rest["next_before"] is None
    long = await client.get("/v1/admin/users?q=" + "x" * 65, headers=headers)
    assert long.status_code == 422


async def test_calls_are_browsed_by_status_user_and_period(driver: CallDriver) -> None:
    admin = await driver.party(Role.admin)
    alice, bob = await driver.party(Role.client, 100), await driver.party(Role.client, 100)
    host = await driver.party(Role.host)
    first = await driver.connect(alice, host)
    await driver.post(f"/v1/calls/{first}/end", alice)
    driver.clock.advance(3600)
    second = (await driver.ring(bob, host))["id"]  # ringing: listed too

    async def ids(query: str) -> list[int]:
        r = await driver.client.get(f"/v1/admin/calls{query}", headers=admin.headers)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    assert await ids("") == [second, first]
    assert await ids("?status=ringing") == [second]
    assert await ids(f"?user_id={alice.user.id}") == [first]
    assert await ids(f"?user_id={host.user.id}") == [second, first]
    cut = (driver.clock.now() - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert await ids(f"?since={cut}") == [second]
    assert await ids(f"?until={cut}") == [first]
    page = (await driver.client.get("/v1/admin/calls", headers=admin.headers)).json()
    assert page["names"][str(bob.user.id)] == bob.user.display_name
    naive = await driver.client.get(
        "/v1/admin/calls?since=2026-01-01T00:00:00", headers=admin.headers
    )
    assert naive.status_code == 422  # a time without a zone is ambiguous


@pytest.mark.parametrize(
    "query",
    [
        "/v1/admin/calls?since=9999-12-31T23:00:00-05:00",  # in UTC: the year 10000
        "/v1/admin/calls?until=0001-01-01T00:00:00%2B05:00",  # in UTC: the year 0
        "/v1/admin/users?q=a%00b",  # NUL: PostgreSQL refuses it in text
        "/v1/hosts?q=a%00b",
    ],
)
async def test_odd_queries_are_refused_not_500(
    client: AsyncClient, runtime: Runtime, query: str
) -> None:
    """From a review: each of these was a 500."""
    admin = await make_user(runtime, Role.admin, "boss")
    r = await client.get(query, headers=await auth_headers(client, admin.username))
    assert r.status_code == 422, r.text


def test_a_resume_id_with_other_digits_starts_afresh() -> None:
    from callmeter.calls.events import resume_after

    assert resume_after("s\u00b2") == 0  # "²" is a digit to str.isdigit(), not to int()
    assert resume_after("s12") == 12
