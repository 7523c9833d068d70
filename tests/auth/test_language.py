"""The web client's language is kept on the user (issue 16): every device shows it."""

from __future__ import annotations

from httpx import AsyncClient

from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.factories import PASSWORD, auth_headers, make_user


async def test_the_chosen_language_is_kept_and_comes_with_the_login(
    client: AsyncClient, runtime: Runtime
) -> None:
    user = await make_user(runtime, Role.client, "lucia")
    headers = await auth_headers(client, user.username)
    assert (await client.get("/v1/me", headers=headers)).json()["language"] is None
    r = await client.put("/v1/me", json={"language": "es"}, headers=headers)
    assert (r.status_code, r.json()["language"]) == (200, "es")
    login = await client.post("/v1/auth/login", json={"username": "lucia", "password": PASSWORD})
    assert login.json()["user"]["language"] == "es"
    for bad in ({"language": "fr"}, {"language": None}, {}, {"language": "es", "role": "admin"}):
        assert (await client.put("/v1/me", json=bad, headers=headers)).status_code == 422
    assert (await client.put("/v1/me", json={"language": "en"})).status_code == 401
