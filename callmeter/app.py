"""The FastAPI application: routers, error rendering, middleware and lifespan."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, JsonValue
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from callmeter import __version__
from callmeter.admin.endpoints import router as admin_router
from callmeter.auth.endpoints import router as auth_router
from callmeter.calls.beats import HeartbeatsFromMemory
from callmeter.calls.endpoints import host_blocks_router, webhooks_router
from callmeter.calls.endpoints import router as calls_router
from callmeter.config import Settings, get_settings
from callmeter.errors import (
    HTTP_ERROR_CODES,
    CallmeterError,
    ConcurrentUpdate,
    DatabaseUnavailable,
    error_codes,
)
from callmeter.hosts.avatar import MAX_UPLOAD_BYTES as AVATAR_MAX_UPLOAD_BYTES
from callmeter.hosts.endpoints import router as hosts_router
from callmeter.kit.body_limit import BodySizeLimitMiddleware
from callmeter.kit.clock import Clock
from callmeter.kit.db import is_lost_race, is_unavailable
from callmeter.kit.retry import LostRace, RetryLostRaces
from callmeter.kit.runtime import Runtime
from callmeter.media.livekit import livekit_for
from callmeter.meter.loop import run_meter
from callmeter.ops.endpoints import router as ops_router
from callmeter.ops.metrics import MetricsMiddleware
from callmeter.payments.endpoints import admin_router as payments_admin_router
from callmeter.payments.endpoints import router as payments_router
from callmeter.payments.endpoints import test_checkout_router
from callmeter.payments.endpoints import webhooks_router as stripe_webhooks_router
from callmeter.payouts.endpoints import admin_router as payouts_admin_router
from callmeter.payouts.endpoints import router as payouts_router
from callmeter.wallet.endpoints import router as ledger_router

log = logging.getLogger(__name__)


_ERROR_CODES: list[JsonValue] = list(error_codes())


class ErrorOut(BaseModel):
    """An error: ``error`` is a stable code to act on, ``detail`` an English sentence for
    logs and developers. Some errors carry structured fields next to them."""

    error: str = Field(json_schema_extra={"enum": _ERROR_CODES})
    detail: str
    needed: int | None = Field(None, description="insufficient_funds: the coins it needed")
    rate: int | None = Field(None, description="rate_changed: the host's rate now")
    retry_after: int | None = Field(None, description="ring_cooldown: seconds to wait")
    minimum: int | None = Field(None, description="payout_below_minimum: the smallest payout")
    matured: int | None = Field(None, description="payout_exceeds_matured: withdrawable now")
    maturing: int | None = Field(None, description="payout_exceeds_matured: withdrawable later")
    pending: int | None = Field(None, description="too_many_payouts: requests awaiting review")
    field: str | None = Field(None, description="validation_error: the first refused field")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": description}
    for code, description in {
        400: "bad request",
        401: "not authenticated",
        402: "insufficient funds",
        403: "forbidden",
        404: "not found",
        409: "conflict",
        413: "request body too large",
        422: "validation error",
        429: "rate limited",
        503: "a dependency (database, media server) is unavailable, or the request lost "
        "every attempt to concurrent ones (retry_later)",
    }.items()
}


def _error(
    status: int,
    code: str,
    detail: str,
    fields: dict[str, int | str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, int | str] = {"error": code, "detail": detail}
    body.update((k, v) for k, v in (fields or {}).items() if k not in body)
    return JSONResponse(body, status_code=status, headers=headers)


def _field_names(loc: Sequence[object]) -> list[str]:
    """A validation error's place as the client named it: without where it was ("body",
    "query"), which a field may also be called."""
    names = list(loc)
    if names and names[0] in ("body", "query", "path", "header"):
        names = names[1:]
    return [str(p) for p in names]


def _first_invalid_field(exc: RequestValidationError) -> str:
    """The first field that failed, as the client named it (``username``, ``amount``)."""
    for err in exc.errors():
        names = _field_names(err.get("loc", ()))
        if names:
            return ".".join(names)
    return "request"


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(_field_names(err.get("loc", ()))) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


API_PREFIXES = (
    "/v1", "/docs", "/redoc", "/openapi.json", "/metrics", "/healthz", "/readyz", "/docs-assets",
)  # fmt: skip


def _wants_web_client(request: Request) -> bool:
    """Client-side routes (/calls/3, /admin …) are the web client's index page."""
    return request.method in ("GET", "HEAD") and not request.url.path.startswith(API_PREFIXES)


def _web_index(request: Request) -> Response:
    runtime = request.app.state.runtime
    index = runtime.settings.web_dir / "index.html"
    if not index.is_file():
        return HTMLResponse(
            "<h1>callmeter</h1><p>The web client is not built: run <code>make setup</code>.</p>",
            status_code=503,
        )
    return FileResponse(index, headers={"Cache-Control": "no-cache"})


def _documented_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the API documents for ``path`` (Starlette's own 405 only names the
    methods of the first route that matched the path)."""
    paths = app.openapi()["paths"]
    if path in paths:  # /v1/hosts/me/avatar is its own resource, not /v1/hosts/{id}/avatar
        return sorted(m.upper() for m in paths[path])
    methods: set[str] = set()
    for template, operations in paths.items():
        pattern = "^" + re.sub(r"\\{[^/]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            methods.update(m.upper() for m in operations)
    return sorted(methods)


DOCS_ASSETS = "/docs-assets"


def _install_docs(app: FastAPI, settings: Settings) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, their scripts from the web client's build
    (web/copy-docs-assets.mjs), so that both work offline."""
    assets = settings.web_dir / "docs-assets"

    def unbuilt() -> HTMLResponse:
        return HTMLResponse(
            "<h1>callmeter API</h1><p>The API's documentation pages need the web client's "
            "build: run <code>make setup</code>. The contract itself is at "
            '<a href="/openapi.json">/openapi.json</a>.</p>',
            status_code=503,
        )

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        if not assets.is_dir():
            return unbuilt()
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="callmeter API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        if not assets.is_dir():
            return unbuilt()
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="callmeter API",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            with_google_fonts=False,
        )

    if assets.is_dir():
        app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")


def _domain_error(exc: CallmeterError) -> JSONResponse:
    return _error(exc.status_code, exc.code, exc.detail, exc.fields, exc.headers)


def _internal_error(exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _error(500, "internal_error", "an unexpected error occurred")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CallmeterError)
    async def _domain(_request: Request, exc: CallmeterError) -> JSONResponse:
        if isinstance(exc, ConcurrentUpdate):
            # a lost compare-and-set: the transaction is rolled back, run the request again
            raise LostRace() from exc
        return _domain_error(exc)

    # The one place where "the database is down, hung or busy" becomes a 503 with
    # Retry-After, whichever endpoint, dependency or commit met it (kit/db.is_unavailable).
    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(OSError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if is_lost_race(exc):
            # a deadlock or serialization failure the request's own transaction lost:
            # nothing was written; kit/retry.py runs the request again (or answers 503)
            raise LostRace() from exc
        if not is_unavailable(exc):
            return _internal_error(exc)
        log.warning("database unavailable (%s %s): %r", request.method, request.url.path, exc)
        return _domain_error(DatabaseUnavailable())

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(
            422,
            "validation_error",
            _describe_validation(exc),
            {"field": _first_invalid_field(exc)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and _wants_web_client(request):
            return _web_index(request)
        code = HTTP_ERROR_CODES.get(exc.status_code, "error")
        response = _error(exc.status_code, code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if exc.status_code == 405:
            allowed = _documented_methods(request.app, request.url.path)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(exc)


def _document_configured_bounds(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document states the bounds this deployment enforces (a host's rate, the
    smallest payout)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            rate = schema["components"]["schemas"]["HostUpdateIn"]["properties"]["rate"]
            for option in rate.get("anyOf", [rate]):
                if option.get("type") == "integer":
                    option["minimum"], option["maximum"] = settings.min_rate, settings.max_rate
            payout = schema["components"]["schemas"]["PayoutIn"]["properties"]["amount"]
            payout["minimum"] = settings.payout_min_coins
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """The runtime of a process: kit's Runtime with LiveKit's client when it is configured."""
    return Runtime.create(settings, clock, livekit=livekit_for(settings))


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    runtime: Runtime | None = None,
    meter: bool = False,
) -> FastAPI:
    """Build the application. Tests pass their own runtime (database, clock);
    ``meter=True`` runs the meter loop inside the server process."""
    settings = settings or (runtime.settings if runtime else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or create_runtime(settings, clock)
        stop = asyncio.Event()
        meter_task = asyncio.create_task(run_meter(app.state.runtime, stop)) if meter else None
        try:
            yield
        finally:
            stop.set()
            if meter_task is not None:
                await meter_task
            if owned:
                await app.state.runtime.close()

    app = FastAPI(
        title="callmeter",
        version=__version__,
        summary="Pay-per-minute video calls billed by the server's clock",
        lifespan=lifespan,
        docs_url=None,  # served below from local assets, not a CDN
        redoc_url=None,
    )
    _install_docs(app, settings)
    _document_configured_bounds(app, settings)
    if runtime is not None:  # usable without running the lifespan (ASGITransport)
        app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(ops_router)
    for router in (
        auth_router,
        ledger_router,
        hosts_router,
        host_blocks_router,
        calls_router,
        admin_router,
        webhooks_router,
        payments_router,
        payments_admin_router,
        stripe_webhooks_router,
        test_checkout_router,
        payouts_router,
        payouts_admin_router,
    ):
        app.include_router(router, responses=ERROR_RESPONSES)

    assets = settings.web_dir / "assets"
    if assets.is_dir():
        app.mount("/assets", StaticFiles(directory=assets), name="web-assets")

    # innermost: a quiet heartbeat answered from memory (calls/beats.py), then a request
    # whose transaction lost a race runs again (kit/retry.py)
    app.add_middleware(HeartbeatsFromMemory)
    app.add_middleware(RetryLostRaces)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
    )
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        larger={"/v1/hosts/me/avatar": AVATAR_MAX_UPLOAD_BYTES},
    )
    app.add_middleware(MetricsMiddleware)
    return app
