from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from callmeter.errors import DatabaseUnavailable
from callmeter.kit.deps import RuntimeDep

router = APIRouter(tags=["operations"])


class Status(BaseModel):
    status: str


# /readyz answers within this, whatever the database does (a load balancer's probe
# usually gives up after 2 s)
READY_DEADLINE_SECONDS = 1.0


@router.get("/healthz")
async def healthz() -> Status:
    """The process is up (never touches the database)."""
    return Status(status="ok")


@router.get("/readyz", responses={503: {"description": "the database is not reachable"}})
async def readyz(runtime: RuntimeDep) -> Status:
    """The process can reach its database (answered within 1 s either way)."""
    if not await runtime.database_probe.reachable(READY_DEADLINE_SECONDS):
        raise DatabaseUnavailable()
    return Status(status="ok")


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
