from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from callmeter.errors import CallmeterError
from callmeter.kit.deps import RuntimeDep

router = APIRouter(tags=["operations"])


class Status(BaseModel):
    status: str


class DatabaseUnavailable(CallmeterError):
    """The database is not reachable."""

    status_code = 503
    code = "database_unavailable"


@router.get("/healthz")
async def healthz() -> Status:
    """The process is up."""
    return Status(status="ok")


@router.get("/readyz", responses={503: {"description": "the database is not reachable"}})
async def readyz(runtime: RuntimeDep) -> Status:
    """The process can reach its database."""
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise DatabaseUnavailable() from exc
    return Status(status="ok")


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
