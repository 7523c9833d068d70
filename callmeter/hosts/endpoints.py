from __future__ import annotations

from fastapi import APIRouter

from callmeter.auth.dependencies import CurrentUser, HostUser
from callmeter.calls.schemas import HostOut, HostUpdateIn
from callmeter.hosts import service
from callmeter.kit.deps import RuntimeDep, SessionDep

router = APIRouter(prefix="/v1/hosts", tags=["hosts"])


@router.get("")
async def list_hosts(_user: CurrentUser, runtime: RuntimeDep, session: SessionDep) -> list[HostOut]:
    """Hosts with their rate per interval, availability and whether they are in a call."""
    return await service.list_hosts(session, runtime.settings)


@router.put("/me")
async def update_me(
    body: HostUpdateIn, host: HostUser, runtime: RuntimeDep, session: SessionDep
) -> HostOut:
    """Set your rate (within the configured bounds) and whether you accept calls."""
    return await service.update_host(
        session,
        host,
        rate=body.rate,
        accepting_calls=body.accepting_calls,
        settings=runtime.settings,
    )
