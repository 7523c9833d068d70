"""Host queries: the host list and the clients each host blocks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.kit.db import dialect_insert
from callmeter.models import Call, HostAvatar, HostBlock, Role, User
from callmeter.models.call import NOT_ENDED


async def lock_host(session: AsyncSession, host_id: int) -> User | None:
    """The user ``host_id`` (any role), its row locked until the transaction ends: rings to
    a host and its blocks take this lock first, so neither misses the other. FOR NO KEY
    UPDATE: rings and blocks queue on each other, but the foreign-key checks of rows that
    point at the user (a signal's sender, a call's host) do not wait for it — with a plain
    FOR UPDATE a ring and a signal on the host's live call could deadlock."""
    result = await session.execute(
        select(User)
        .where(User.id == host_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def list_hosts(
    session: AsyncSession, viewer_id: int
) -> list[tuple[User, bool, bool, str | None]]:
    """Every host, whether it is in a call, whether it blocks ``viewer_id``, and its
    picture's ETag (None without one)."""
    busy = exists().where(Call.host_id == User.id, NOT_ENDED)
    blocked = exists().where(HostBlock.host_id == User.id, HostBlock.client_id == viewer_id)
    rows = await session.execute(
        select(User, busy.label("busy"), blocked.label("blocked"), HostAvatar.etag)
        .outerjoin(HostAvatar, HostAvatar.host_id == User.id)
        .where(User.role == Role.host)
        .order_by(User.id)
    )
    return [
        (user, bool(is_busy), bool(is_blocked), etag) for user, is_busy, is_blocked, etag in rows
    ]


async def avatar_etag(session: AsyncSession, host_id: int) -> str | None:
    return await session.scalar(select(HostAvatar.etag).where(HostAvatar.host_id == host_id))


async def get_avatar(session: AsyncSession, host_id: int) -> HostAvatar | None:
    return await session.get(HostAvatar, host_id)


async def save_avatar(
    session: AsyncSession, *, host_id: int, content: bytes, etag: str, now: datetime
) -> None:
    """The host's picture, replacing the one it had."""
    await session.execute(delete(HostAvatar).where(HostAvatar.host_id == host_id))
    session.add(HostAvatar(host_id=host_id, content=content, etag=etag, updated_at=now))
    await session.flush()


async def delete_avatar(session: AsyncSession, host_id: int) -> None:
    await session.execute(delete(HostAvatar).where(HostAvatar.host_id == host_id))


async def in_a_call(session: AsyncSession, host_id: int) -> bool:
    """Whether the host has a call that has not ended (ringing counts)."""
    result = await session.execute(select(exists().where(Call.host_id == host_id, NOT_ENDED)))
    return bool(result.scalar())


async def is_blocked(session: AsyncSession, *, host_id: int, client_id: int) -> bool:
    result = await session.execute(
        select(exists().where(HostBlock.host_id == host_id, HostBlock.client_id == client_id))
    )
    return bool(result.scalar())


async def add_block(
    session: AsyncSession, *, host_id: int, client_id: int, now: datetime
) -> HostBlock:
    """Block ``client_id`` for ``host_id``; a block that exists is kept as it is."""
    await session.execute(
        dialect_insert(session, HostBlock)
        .values(host_id=host_id, client_id=client_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["host_id", "client_id"])
    )
    block = await session.get(HostBlock, (host_id, client_id), populate_existing=True)
    assert block is not None
    return block


async def remove_block(session: AsyncSession, *, host_id: int, client_id: int) -> None:
    await session.execute(
        delete(HostBlock).where(HostBlock.host_id == host_id, HostBlock.client_id == client_id)
    )


async def list_blocks(
    session: AsyncSession, *, host_id: int, limit: int, before: int | None
) -> list[HostBlock]:
    query = (
        select(HostBlock)
        .where(HostBlock.host_id == host_id)
        .order_by(HostBlock.client_id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(HostBlock.client_id < before)
    return list((await session.scalars(query)).all())
