from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from callmeter.auth.dependencies import CurrentUser, HostUser
from callmeter.errors import UnsupportedMediaType
from callmeter.hosts import service
from callmeter.hosts.avatar import CONTENT_TYPES
from callmeter.hosts.schemas import BlocksPage, HostOut, HostUpdateIn
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.kit.pagination import DEFAULT_LIMIT, Before, Limit, PathId
from callmeter.kit.text import SearchText

router = APIRouter(prefix="/v1/hosts", tags=["hosts"])

ClientId = PathId
HostId = PathId
BINARY = {"type": "string", "format": "binary"}


@router.get("")
async def list_hosts(
    user: CurrentUser,
    runtime: RuntimeDep,
    session: SessionDep,
    q: Annotated[SearchText | None, Query(description="words in the name, bio or tags")] = None,
    language: Annotated[str | None, Query(pattern="^[a-z]{2}$")] = None,
    tag: Annotated[SearchText | None, Query()] = None,
) -> list[HostOut]:
    """Hosts with their rate per interval, profile, presence and whether they are in a call,
    online ones first; ``q``, ``language`` and ``tag`` narrow the list."""
    wanted = service.HostFilter(query=q, language=language, tag=tag)
    return await service.list_hosts(session, user, runtime.settings, runtime.clock.now(), wanted)


@router.put("/me")
async def update_me(
    body: HostUpdateIn, host: HostUser, runtime: RuntimeDep, session: SessionDep
) -> HostOut:
    """Set your rate (within the configured bounds), whether you accept calls, and your
    profile (display name, bio, languages, tags); fields left out stay as they are."""
    return await service.update_host(
        session,
        host,
        rate=body.rate,
        accepting_calls=body.accepting_calls,
        settings=runtime.settings,
        now=runtime.clock.now(),
        display_name=body.display_name,
        bio=body.bio,
        languages=body.languages,
        tags=body.tags,
    )


@router.put(
    "/me/avatar",
    responses={415: {"description": "the body is not image/jpeg, image/png or image/webp"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in CONTENT_TYPES
            },
        }
    },
)
async def set_avatar(
    request: Request, host: HostUser, runtime: RuntimeDep, session: SessionDep
) -> HostOut:
    """Your picture: the body is a JPEG, PNG or WebP image of at most 2 MiB (415 for another
    type, 413 when larger, 422 when it is not a readable image). What is kept is a 256x256
    JPEG drawn from it, never the upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            "the picture must be sent as image/jpeg, image/png or image/webp"
        )
    upload = await request.body()  # at most 2 MiB: the body limit (app.py) refuses more with 413
    return await service.set_avatar(
        session, host, upload, settings=runtime.settings, now=runtime.clock.now()
    )


@router.delete("/me/avatar")
async def remove_avatar(host: HostUser, runtime: RuntimeDep, session: SessionDep) -> HostOut:
    """No picture. Idempotent."""
    return await service.remove_avatar(
        session, host, settings=runtime.settings, now=runtime.clock.now()
    )


@router.get(
    "/{host_id:int}/avatar",  # only digits: /v1/hosts/me/avatar is another resource
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "not modified"}},
)
async def get_avatar(host_id: HostId, request: Request, session: SessionDep) -> Response:
    """A host's picture (public, so that an ``<img>`` can show it): a 256x256 JPEG with an
    ETag; 404 when the host has none."""
    found = await service.avatar_of(session, host_id)
    headers = {
        "ETag": f'"{found.etag}"',
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    }
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(found.content, media_type="image/jpeg", headers=headers)


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
