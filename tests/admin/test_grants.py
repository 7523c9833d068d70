"""POST /v1/admin/grants and the ledger check endpoint."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.factories import auth_headers, make_user, wallet_of


@pytest.fixture
async def admin_headers(runtime: Runtime, client: AsyncClient) -> dict[str, str]:
    admin = await make_user(runtime, Role.admin)
    return await auth_headers(client, admin.username)


class TestGrants:
    async def test_grant_replay_and_conflict(
        self, runtime: Runtime, client: AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        alice = await make_user(runtime, Role.client)
        headers = {**admin_headers, "Idempotency-Key": "welcome-alice"}
        body = {"user_id": alice.id, "amount": 120, "note": "welcome"}
        first = await client.post("/v1/admin/grants", json=body, headers=headers)
        assert first.status_code == 201, first.text
        transfer = first.json()["transfer"]
        assert (transfer["kind"], transfer["amount"], transfer["note"]) == ("grant", 120, "welcome")
        again = await client.post("/v1/admin/grants", json=body, headers=headers)
        assert again.status_code == 201
        assert again.json() == first.json()
        other = await client.post("/v1/admin/grants", json={**body, "amount": 121}, headers=headers)
        assert other.status_code == 409
        assert other.json()["error"] == "idempotency_conflict"
        assert await wallet_of(runtime, alice.id) == (120, 0)

        me = await client.get("/v1/wallet", headers=await auth_headers(client, alice.username))
        assert me.json() == {"balance": 120, "held": 0, "available": 120}

    @pytest.mark.parametrize(
        "amount", [0, -1, 1.5, 0.0, "5", "ten", 10**12 + 1, True, None, [5], {"v": 5}]
    )
    async def test_bad_amounts_are_422(
        self,
        runtime: Runtime,
        client: AsyncClient,
        admin_headers: dict[str, str],
        amount: object,
    ) -> None:
        alice = await make_user(runtime, Role.client)
        r = await client.post(
            "/v1/admin/grants",
            json={"user_id": alice.id, "amount": amount},
            headers={**admin_headers, "Idempotency-Key": "bad"},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "validation_error"
        assert await wallet_of(runtime, alice.id) == (0, 0)

    async def test_a_whole_number_written_with_a_point_is_that_integer(
        self, runtime: Runtime, client: AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        """JSON has one number type: 10.0 is 10 (as the published JSON Schema says)."""
        alice = await make_user(runtime, Role.client)
        r = await client.post(
            "/v1/admin/grants",
            json={"user_id": alice.id, "amount": 10.0},
            headers={**admin_headers, "Idempotency-Key": "float"},
        )
        assert r.status_code == 201
        assert r.json()["transfer"]["amount"] == 10
        assert await wallet_of(runtime, alice.id) == (10, 0)

    async def test_largest_amount_is_accepted(
        self, runtime: Runtime, client: AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        alice = await make_user(runtime, Role.client)
        r = await client.post(
            "/v1/admin/grants",
            json={"user_id": alice.id, "amount": 10**12},
            headers={**admin_headers, "Idempotency-Key": "big"},
        )
        assert r.status_code == 201
        assert await wallet_of(runtime, alice.id) == (10**12, 0)

    async def test_key_is_required_and_bounded(
        self, runtime: Runtime, client: AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        alice = await make_user(runtime, Role.client)
        body = {"user_id": alice.id, "amount": 5}
        missing = await client.post("/v1/admin/grants", json=body, headers=admin_headers)
        assert missing.status_code == 422
        too_long = await client.post(
            "/v1/admin/grants", json=body, headers={**admin_headers, "Idempotency-Key": "k" * 201}
        )
        assert too_long.status_code == 422

    async def test_only_client_wallets_receive_grants(
        self, runtime: Runtime, client: AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        host = await make_user(runtime, Role.host)
        for user_id in (host.id, 999_999):
            r = await client.post(
                "/v1/admin/grants",
                json={"user_id": user_id, "amount": 5},
                headers={**admin_headers, "Idempotency-Key": f"k{user_id}"},
            )
            assert r.status_code == 404
            assert r.json()["error"] == "not_found"

    async def test_failed_grant_does_not_burn_the_key(
        self, runtime: Runtime, client: AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        headers = {**admin_headers, "Idempotency-Key": "retry-me"}
        r = await client.post(
            "/v1/admin/grants", json={"user_id": 999_999, "amount": 5}, headers=headers
        )
        assert r.status_code == 404
        alice = await make_user(runtime, Role.client)
        # A different body with the key of a failed request is a fresh request.
        r = await client.post(
            "/v1/admin/grants", json={"user_id": alice.id, "amount": 5}, headers=headers
        )
        assert r.status_code == 201

    @pytest.mark.parametrize("role", [Role.client, Role.host])
    async def test_non_admins_are_403(
        self, runtime: Runtime, client: AsyncClient, role: Role
    ) -> None:
        user = await make_user(runtime, role)
        headers = {**await auth_headers(client, user.username), "Idempotency-Key": "k"}
        r = await client.post(
            "/v1/admin/grants", json={"user_id": user.id, "amount": 5}, headers=headers
        )
        assert r.status_code == 403
        assert (await client.get("/v1/admin/ledger/check", headers=headers)).status_code == 403

    async def test_anonymous_is_401(self, client: AsyncClient) -> None:
        r = await client.post(
            "/v1/admin/grants", json={"user_id": 1, "amount": 5}, headers={"Idempotency-Key": "k"}
        )
        assert r.status_code == 401


class TestLedgerCheckEndpoint:
    async def test_reports_ok_and_totals(
        self, runtime: Runtime, client: AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        await make_user(runtime, Role.client, coins=75)
        r = await client.get("/v1/admin/ledger/check", headers=admin_headers)
        assert r.status_code == 200
        body = r.json()
        assert body["ok"] is True
        assert body["problems"] == []
        assert body["totals"]["issued"] == 75
        assert body["totals"]["wallets"] == 75


class TestEntries:
    async def test_paginates_newest_first_with_balance_after(
        self, runtime: Runtime, client: AsyncClient, admin_headers: dict[str, str]
    ) -> None:
        alice = await make_user(runtime, Role.client)
        for i in range(5):
            r = await client.post(
                "/v1/admin/grants",
                json={"user_id": alice.id, "amount": 10 + i},
                headers={**admin_headers, "Idempotency-Key": f"e{i}"},
            )
            assert r.status_code == 201
        headers = await auth_headers(client, alice.username)
        page1 = (await client.get("/v1/wallet/entries?limit=3", headers=headers)).json()
        assert [e["amount"] for e in page1["items"]] == [14, 13, 12]
        assert [e["balance_after"] for e in page1["items"]] == [60, 46, 33]
        assert all(e["kind"] == "grant" for e in page1["items"])
        page2 = (
            await client.get(
                f"/v1/wallet/entries?limit=3&before={page1['next_before']}", headers=headers
            )
        ).json()
        assert [e["amount"] for e in page2["items"]] == [11, 10]
        assert page2["next_before"] is None
        for bad in ("limit=0", "limit=201", "before=0", "limit=abc"):
            r = await client.get(f"/v1/wallet/entries?{bad}", headers=headers)
            assert r.status_code == 422
