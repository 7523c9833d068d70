"""Prometheus metrics. Ledger counters count committed transfers only."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "callmeter_http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "callmeter_http_request_duration_seconds",
    "Time to handle an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LEDGER_TRANSFERS = Counter(
    "callmeter_ledger_transfers_total", "Ledger transfers committed", ["kind"]
)

METER_LAG = Histogram(
    "callmeter_meter_lag_seconds",
    "Time from a call's due moment to the meter commit that settled it",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

HEARTBEATS = Counter(
    "callmeter_heartbeats_total",
    "Heartbeats by how they were answered: memory (a quiet call this process holds), "
    "database (one statement) or full (locked, perhaps settled)",
    ["path"],
)
PRESENCE_WRITTEN = Counter(
    "callmeter_presence_batched_total", "Heartbeats' presence written in batches"
)

_PENDING = "callmeter_pending_transfer_kinds"


def record_transfer(session: AsyncSession, kind: str) -> None:
    """Count a transfer once the session's transaction commits."""
    session.info.setdefault(_PENDING, []).append(str(kind))


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for kind in session.info.pop(_PENDING, ()):
        LEDGER_TRANSFERS.labels(kind=kind).inc()


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


# each request's series, found once (``labels`` costs more than the count itself); a few
# hundred at most (routes by methods by statuses), and past that looked up each time
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_SERIES_MAX = 4096


def _series(method: str, template: str, status: int) -> tuple[Any, Any]:
    key = (method, template, status)
    series = _SERIES.get(key)
    if series is None:
        series = (
            HTTP_REQUESTS.labels(method=method, route=template, status=str(status)),
            HTTP_LATENCY.labels(method=method, route=template),
        )
        if len(_SERIES) < _SERIES_MAX:
            _SERIES[key] = series
    return series


class MetricsMiddleware:
    """Counts requests and their latency per route template (not per raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # Routers carry their full prefix, so the route's path is the whole template.
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            requests, latency = _series(scope["method"], template, status)
            requests.inc()
            latency.observe(time.perf_counter() - start)
