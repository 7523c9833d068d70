"""Hostile input: nesting, numbers JSON should not carry, control and look-alike characters."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from callmeter.models import Role
from tests.calls.driver import CallDriver


@pytest.mark.parametrize(
    "body",
    [
        b'{"username": ' + b"[" * 5000 + b"]" * 5000 + b', "password": "x"}',
        b'{"username": "a", "password": "b", "x": ' + b'{"y":' * 3000 + b"1" + b"}" * 3000 + b"}",
        b'{"username": NaN, "password": Infinity}',
        b'{"username": "a\\u0000b", "password": "x"}',
        b"[]",
        b'"just a string"',
        b"",
    ],
    ids=["deep-array", "deep-object", "nan", "nul", "array", "string", "empty"],
)
async def test_login_never_fails_with_5xx(client: AsyncClient, body: bytes) -> None:
    r = await client.post(
        "/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code in (400, 401, 413, 422), r.text
    assert set(r.json()) - {"field"} == {"error", "detail"}  # a 422 names the field


@pytest.mark.parametrize(
    "amount", ["1.5", "1e400", "99999999999999999999999999", "-0", "0x10", "1_000", "1e-3"]
)
async def test_numbers_json_should_not_carry_are_refused(driver: CallDriver, amount: str) -> None:
    admin = await driver.party(Role.admin)
    client = await driver.party(Role.client)
    body = f'{{"user_id": {client.user.id}, "amount": {amount}}}'.encode()
    r = await driver.client.post(
        "/v1/admin/grants",
        content=body,
        headers={**admin.headers, "Idempotency-Key": "n", "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422), (amount, r.text)
    assert await driver.wallet(client) == (0, 0)


@pytest.mark.parametrize(
    "name",
    [
        "admin\u200b",  # zero-width space
        "\u202eevil",  # right-to-left override
        "x\u0000y",
        "line\nbreak",
        "\ufeffbom",
    ],
)
async def test_invisible_and_control_characters_in_names(client: AsyncClient, name: str) -> None:
    r = await client.post(
        "/v1/auth/register",
        json={
            "username": "look_alike",
            "password": "long enough",
            "role": "client",
            "display_name": name,
        },
    )
    assert r.status_code == 422


async def test_usernames_are_ascii_only(client: AsyncClient) -> None:
    # Cyrillic a, umlaut, combining accent
    for username in ("\u0430dmin", "\u00e4dmin", "admin\u0301"):
        r = await client.post(
            "/v1/auth/register",
            json={"username": username, "password": "long enough", "role": "client"},
        )
        assert r.status_code == 422, username


async def test_ids_out_of_range_are_422(driver: CallDriver) -> None:
    caller = await driver.party(Role.client)
    for bad in ("0", "-1", "9223372036854775808", "1.5", "abc"):
        r = await driver.client.get(f"/v1/calls/{bad}", headers=caller.headers)
        assert r.status_code == 422, bad
