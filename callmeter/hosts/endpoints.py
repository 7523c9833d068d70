from __future__ import annotations

from fastapi import APIRouter, status

from callmeter.auth.dependencies import CurrentUser, HostUser
from callmeter.hosts import service
from callmeter.hosts.schemas import BlocksPage, HostOut, HostUpdateIn
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.kit.pagination import DEFAULT_LIMIT, Before, Limit, PathId

router = APIRouter(prefix="/v1/hosts", tags=["hosts"])

ClientId = PathId


@router.get("")
async def list_hosts(user: CurrentUser, runtime: RuntimeDep, session: SessionDep) -> list[HostOut]:
    """Hosts with their rate per interval, presence and whether they are in a call, online
    ones first."""
    return await service.list_hosts(session, user, runtime.settings, runtime.clock.now())


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
        now=runtime.clock.now(),
    )


@router.post("/me/presence")
async def mark_present(host: HostUser, runtime: RuntimeDep, session: SessionDep) -> HostOut:
    """A page of yours is open: you are online (callable) for
    `HOST_PRESENCE_TIMEOUT_SECONDS` (45 s by default) from now. The web client's host pages
    send it every 15 s."""
    return await service.mark_present(
        session, host, settings=runtime.settings, now=runtime.clock.now()
    )


@router.get("/me/blocks")
async def list_blocks(
    host: HostUser, session: SessionDep, limit: Limit = DEFAULT_LIMIT, before: Before = None
) -> BlocksPage:
    """The clients you block, by client id (highest first)."""
    blocks = await service.list_blocks(session, host, limit=limit + 1, before=before)
    return BlocksPage.of(blocks, limit)


@router.delete("/me/blocks/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unblock_client(client_id: ClientId, host: HostUser, session: SessionDep) -> None:
    """Take calls from a client again. Idempotent."""
    await service.unblock(session, host, client_id=client_id)
