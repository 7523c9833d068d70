"""Cross-cutting HTTP behaviour: error shape, body limit, operations endpoints, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from callmeter.kit.runtime import Runtime
from callmeter.models import Role
from tests.factories import auth_headers, make_user


class TestErrors:
    async def test_unknown_route_and_method(self, client: AsyncClient) -> None:
        r = await client.get("/v1/nope")
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = await client.delete("/v1/auth/login")
        assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
        assert r.headers["allow"] == "POST"
        r = await client.options("/v1/calls")
        assert (r.status_code, r.headers["allow"]) == (405, "GET, POST")

    async def test_malformed_json_is_422(self, client: AsyncClient) -> None:
        r = await client.post(
            "/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422
        assert set(r.json()) - {"field"} == {"error", "detail"}  # a 422 names the field

    async def test_non_utf8_body_is_400(self, client: AsyncClient) -> None:
        r = await client.post(
            "/v1/auth/login",
            content=b'{"username": "\xff\xfe", "password": "x"}',
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400
        assert r.json()["error"] == "bad_request"


class TestBodyLimit:
    async def test_declared_large_body_is_413(self, client: AsyncClient) -> None:
        big = b"{" + b" " * (64 * 1024) + b"}"
        r = await client.post(
            "/v1/auth/login", content=big, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"

    async def test_streamed_large_body_is_413(self, client: AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b" " * 4096

        r = await client.post(
            "/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413

    async def test_body_at_the_limit_is_read(self, client: AsyncClient) -> None:
        body = b'{"username": "u", "password": "p"}'
        body = body[:-1] + b" " * (64 * 1024 - len(body)) + b"}"
        r = await client.post(
            "/v1/auth/login", content=body, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 401


class TestOperations:
    async def test_health_and_readiness(self, client: AsyncClient) -> None:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ok"}

    async def test_metrics_count_requests_and_transfers(
        self, runtime: Runtime, client: AsyncClient
    ) -> None:
        admin = await make_user(runtime, Role.admin)
        alice = await make_user(runtime, Role.client)
        headers = {**await auth_headers(client, admin.username), "Idempotency-Key": "m1"}
        before = (await client.get("/metrics")).text
        r = await client.post(
            "/v1/admin/grants", json={"user_id": alice.id, "amount": 3}, headers=headers
        )
        assert r.status_code == 201
        after = (await client.get("/metrics")).text

        def sample(text: str, prefix: str) -> float:
            for line in text.splitlines():
                if line.startswith(prefix):
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        grants = 'callmeter_ledger_transfers_total{kind="grant"}'
        assert sample(after, grants) == sample(before, grants) + 1
        route = 'callmeter_http_requests_total{method="POST",route="/v1/admin/grants",status="201"}'
        assert sample(after, route) == sample(before, route) + 1
        assert "callmeter_http_request_duration_seconds_bucket" in after


class TestOpenAPI:
    async def test_documents_the_contract(self, client: AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        paths = spec["paths"]
        for path, method in [
            ("/v1/auth/register", "post"),
            ("/v1/auth/login", "post"),
            ("/v1/me", "get"),
            ("/v1/wallet", "get"),
            ("/v1/wallet/entries", "get"),
            ("/v1/admin/grants", "post"),
            ("/v1/admin/ledger/check", "get"),
        ]:
            assert method in paths[path], path
        grant = paths["/v1/admin/grants"]["post"]
        assert "201" in grant["responses"]
        error_ref = grant["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
        assert error_ref.endswith("/ErrorOut")
        params = {p["name"]: p for p in grant["parameters"]}
        assert params["Idempotency-Key"]["required"] is True


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_public_operations_need_no_token(client: AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


class TestWebClient:
    async def test_client_routes_get_the_index_and_api_paths_stay_json(
        self, client: AsyncClient, runtime: Runtime, tmp_path: object
    ) -> None:
        from pathlib import Path

        web = Path(str(tmp_path)) / "dist"
        (web / "assets").mkdir(parents=True)
        (web / "index.html").write_text('<div id="root"></div>')
        runtime.settings = runtime.settings.model_copy(update={"web_dir": web})
        for path in ("/", "/calls/12", "/admin"):
            r = await client.get(path)
            assert r.status_code == 200
            assert '<div id="root">' in r.text
        r = await client.get("/v1/calls/nope")
        assert r.headers["content-type"].startswith("application/json")
        assert (await client.post("/calls/12")).status_code in (404, 405)

    async def test_an_unbuilt_client_says_how_to_build_it(
        self, client: AsyncClient, runtime: Runtime, tmp_path: object
    ) -> None:
        from pathlib import Path

        runtime.settings = runtime.settings.model_copy(
            update={"web_dir": Path(str(tmp_path)) / "missing"}
        )
        r = await client.get("/")
        assert r.status_code == 503
        assert "make setup" in r.text


@pytest.mark.parametrize(
    ("path", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
async def test_the_api_docs_load_their_scripts_from_this_server(
    client: AsyncClient, path: str, script: str
) -> None:
    """Issue 16: /docs was blank offline (Swagger UI from a CDN)."""
    page = await client.get(path)
    assert page.status_code == 200
    assert f'src="/docs-assets/{script}"' in page.text
    assert "cdn." not in page.text
    assert "fonts.googleapis" not in page.text
    asset = await client.get(f"/docs-assets/{script}")
    assert asset.status_code == 200
    assert len(asset.content) > 100_000
