"""Register, login, me, tokens and login throttling over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from httpx import AsyncClient

from callmeter.auth.tokens import _signed_claims, issue_access_token, read_access_token
from callmeter.errors import NotAuthenticated
from callmeter.kit.clock import ManualClock
from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.factories import PASSWORD, auth_headers, make_user


class TestRegister:
    async def test_client_gets_a_wallet(self, client: AsyncClient) -> None:
        response = await client.post(
            "/v1/auth/register",
            json={"username": "Alice", "password": "long enough", "role": "client"},
        )
        assert response.status_code == 201, response.text
        user = response.json()["user"]
        assert user == {
            "id": user["id"],
            "username": "alice",
            "role": "client",
            "display_name": "alice",
            "language": None,  # not chosen yet: the web client follows the browser
        }
        login = await client.post(
            "/v1/auth/login", json={"username": "ALICE", "password": "long enough"}
        )
        assert login.status_code == 200
        token = login.json()
        assert token["token_type"] == "bearer"
        assert token["expires_in"] == 12 * 3600
        me = await client.get(
            "/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        assert me.json()["wallet"] == {"balance": 0, "held": 0, "available": 0}

    async def test_username_taken_is_409(self, client: AsyncClient) -> None:
        body = {"username": "bob", "password": "long enough", "role": "host"}
        assert (await client.post("/v1/auth/register", json=body)).status_code == 201
        body["username"] = "BOB"
        again = await client.post("/v1/auth/register", json=body)
        assert again.status_code == 409
        assert again.json()["error"] == "username_taken"

    @pytest.mark.parametrize(
        "body",
        [
            {"username": "admin2", "password": "long enough", "role": "admin"},
            {"username": "ab", "password": "long enough", "role": "client"},
            {"username": "has space", "password": "long enough", "role": "client"},
            {"username": "short", "password": "short", "role": "client"},
            {"username": "x" * 33, "password": "long enough", "role": "client"},
            {"username": "ok_name", "password": "p" * 129, "role": "client"},
            {"username": "ok_name", "password": "long enough", "role": "client", "extra": 1},
            {
                "username": "ok_name",
                "password": "long enough",
                "role": "client",
                "display_name": "evil\u202ename",
            },
            {
                "username": "ok_name",
                "password": "long enough",
                "role": "client",
                "display_name": "   ",
            },
        ],
    )
    async def test_invalid_input_is_422(self, client: AsyncClient, body: dict[str, object]) -> None:
        response = await client.post("/v1/auth/register", json=body)
        assert response.status_code == 422
        assert response.json()["error"] == "validation_error"
        assert response.json()["detail"]
        # the first refused field, for a sentence in the user's words (the web client's)
        assert response.json()["field"] in {"role", "username", "password", "extra", "display_name"}

    async def test_a_bad_username_names_the_field(self, client: AsyncClient) -> None:
        body = {"username": "has space", "password": "long enough", "role": "client"}
        response = await client.post("/v1/auth/register", json=body)
        assert (response.status_code, response.json()["field"]) == (422, "username")


class TestLogin:
    async def test_unknown_user_and_wrong_password_look_the_same(
        self, runtime: Runtime, client: AsyncClient
    ) -> None:
        await make_user(runtime, Role.client, username="carol")
        wrong = await client.post("/v1/auth/login", json={"username": "carol", "password": "nope"})
        unknown = await client.post(
            "/v1/auth/login", json={"username": "nobody", "password": "nope"}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()

    async def test_throttled_after_ten_failures_a_minute(
        self, runtime: Runtime, client: AsyncClient, clock: ManualClock
    ) -> None:
        await make_user(runtime, Role.client, username="dan")
        for _ in range(10):
            r = await client.post("/v1/auth/login", json={"username": "dan", "password": "bad"})
            assert r.status_code == 401
        # Even the right password is refused while throttled, and so is an unknown name
        # after its own ten failures: the answer never tells whether the user exists.
        right = await client.post("/v1/auth/login", json={"username": "dan", "password": PASSWORD})
        assert right.status_code == 429
        assert right.json()["error"] == "rate_limited"
        for _ in range(10):
            await client.post("/v1/auth/login", json={"username": "ghost", "password": "bad"})
        ghost = await client.post("/v1/auth/login", json={"username": "ghost", "password": "x"})
        assert ghost.status_code == 429
        # Another username is not affected.
        await make_user(runtime, Role.client, username="erin")
        assert (await auth_headers(client, "erin"))["Authorization"].startswith("Bearer ")
        clock.advance(61)
        assert (await auth_headers(client, "dan"))["Authorization"].startswith("Bearer ")


class TestTokens:
    async def test_missing_forged_and_expired_tokens_are_401(
        self, runtime: Runtime, client: AsyncClient, clock: ManualClock
    ) -> None:
        user = await make_user(runtime, Role.client)
        assert (await client.get("/v1/me")).status_code == 401
        forged = issue_access_token(
            user_id=user.id,
            role="admin",
            secret="a different secret of at least 32 bytes!",
            now=clock.now(),
            ttl_seconds=3600,
        )
        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401
        assert r.json()["error"] == "not_authenticated"
        headers = await auth_headers(client, user.username)
        assert (await client.get("/v1/me", headers=headers)).status_code == 200
        clock.advance(runtime.settings.access_token_ttl_seconds + 1)
        expired = await client.get("/v1/me", headers=headers)
        assert expired.status_code == 401
        assert "expired" in expired.json()["detail"]

    async def test_unsigned_token_is_401(self, runtime: Runtime, client: AsyncClient) -> None:
        user = await make_user(runtime, Role.client)
        exp = runtime.clock.now() + timedelta(hours=1)
        none_alg = jwt.encode(
            {"sub": str(user.id), "typ": "access", "iat": 0, "exp": int(exp.timestamp())},
            key="",
            algorithm="none",
        )
        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {none_alg}"})
        assert r.status_code == 401

    async def test_role_comes_from_the_database_not_the_token(
        self, runtime: Runtime, client: AsyncClient
    ) -> None:
        user = await make_user(runtime, Role.client)
        token = issue_access_token(
            user_id=user.id,
            role="admin",
            secret=runtime.settings.secret_key,
            now=runtime.clock.now(),
            ttl_seconds=600,
        )
        r = await client.get("/v1/admin/ledger/check", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403


class TestTokenClaims:
    """A validly signed token whose claims are out of range is 401, never 500."""

    @pytest.mark.parametrize(
        "claims",
        [
            {"sub": str(2**70)},
            {"sub": 2**70},
            {"sub": str(2**53)},
            {"sub": "0"},
            {"sub": "-1"},
            {"sub": "1.0"},
            {"sub": " 1"},
            {"sub": "one"},
            {"sub": 1},
            {"sub": None},
            {"exp": 10**30},
            {"exp": -1},
            {"exp": "4102444800"},
            {"exp": 4102444800.0},
            {"exp": True},
            {"exp": None},
            {"iat": 10**30},
            {"iat": -(10**30)},
            {"iat": "0"},
            {"iat": 1.5},
            {"role": ["admin"]},
            {"typ": "refresh"},
        ],
        ids=repr,
    )
    async def test_out_of_range_claims_are_401(
        self, runtime: Runtime, client: AsyncClient, claims: dict[str, object]
    ) -> None:
        user = await make_user(runtime, Role.client)
        now = int(runtime.clock.now().timestamp())
        payload: dict[str, object] = {
            "sub": str(user.id),
            "role": "client",
            "typ": "access",
            "iat": now,
            "exp": now + 600,
        }
        payload.update(claims)
        token = jwt.encode(payload, runtime.settings.secret_key, algorithm="HS256")
        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "not_authenticated"

    @pytest.mark.parametrize(
        ("iat_offset", "exp_offset"),
        [(0, 367 * 86400), (3600, 7200), (0, 0), (-7200, -3600 - 1)],
        ids=["lifetime-over-a-year", "issued-in-the-future", "expires-when-issued", "expired"],
    )
    async def test_times_are_checked_against_the_servers_clock(
        self, runtime: Runtime, client: AsyncClient, iat_offset: int, exp_offset: int
    ) -> None:
        user = await make_user(runtime, Role.client)
        now = int(runtime.clock.now().timestamp())
        payload = {
            "sub": str(user.id),
            "typ": "access",
            "iat": now + iat_offset,
            "exp": now + exp_offset,
        }
        token = jwt.encode(payload, runtime.settings.secret_key, algorithm="HS256")
        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text

    async def test_an_unknown_user_in_range_is_401(
        self, runtime: Runtime, client: AsyncClient
    ) -> None:
        token = issue_access_token(
            user_id=2**53 - 1,
            role="client",
            secret=runtime.settings.secret_key,
            now=runtime.clock.now(),
            ttl_seconds=600,
        )
        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401

    def test_a_remembered_token_is_still_checked_against_the_clock_and_the_secret(self) -> None:
        # Reading a token remembers its verified claims; its times and its key are not.
        secret = "a secret for this test that is long enough for hs256"
        start = datetime(2026, 1, 1, tzinfo=UTC)
        token = issue_access_token(user_id=7, role="host", secret=secret, now=start, ttl_seconds=60)
        assert read_access_token(token, secret=secret, now=start).user_id == 7
        assert read_access_token(token, secret=secret, now=start).role == "host"
        with pytest.raises(NotAuthenticated, match="expired"):
            read_access_token(token, secret=secret, now=start + timedelta(seconds=60))
        with pytest.raises(NotAuthenticated, match="not valid"):  # issued in its future
            read_access_token(token, secret=secret, now=start - timedelta(minutes=6))
        with pytest.raises(NotAuthenticated, match="not valid"):
            read_access_token(token, secret=secret + "!", now=start)
        assert read_access_token(token, secret=secret, now=start).user_id == 7

    def test_the_tokens_of_10_000_calls_stay_remembered(self) -> None:
        """Both parties of 10,000 calls heartbeat through every API process: a memory
        smaller than their 20,000 tokens forgets each before it comes back (least recently
        used), and every heartbeat verifies a signature again (12x the time, measured)."""
        secret = "a secret for this test that is long enough for hs256"
        start = datetime(2026, 1, 1, tzinfo=UTC)
        tokens = [
            issue_access_token(user_id=n, role="client", secret=secret, now=start, ttl_seconds=60)
            for n in range(1, 20_001)
        ]
        _signed_claims.cache_clear()
        for _ in range(2):  # a heartbeat period, twice
            for token in tokens:
                read_access_token(token, secret=secret, now=start)
        assert _signed_claims.cache_info().hits == len(tokens)
