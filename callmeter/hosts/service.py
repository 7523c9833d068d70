"""Hosts: their rate, whether they take calls, and the clients they block."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.config import Settings
from callmeter.errors import NotFound, ValidationFailed
from callmeter.hosts import repository
from callmeter.hosts.schemas import HostOut
from callmeter.models import HostBlock, Role, User


def host_out(host: User, busy: bool, settings: Settings, *, blocked: bool = False) -> HostOut:
    return HostOut(
        id=host.id,
        display_name=host.display_name,
        rate=host.rate or settings.default_rate,
        # a blocked client sees the host as away: the block itself is never revealed
        accepting_calls=host.accepting_calls and not blocked,
        busy=busy,
    )


async def list_hosts(session: AsyncSession, viewer: User, settings: Settings) -> list[HostOut]:
    """Every host with its rate, availability (as ``viewer`` may call it) and whether it is
    in a call right now."""
    return [
        host_out(h, busy, settings, blocked=blocked)
        for h, busy, blocked in await repository.list_hosts(session, viewer.id)
    ]


async def update_host(
    session: AsyncSession,
    host: User,
    *,
    rate: int | None,
    accepting_calls: bool | None,
    settings: Settings,
) -> HostOut:
    """Change a host's rate (for calls created from now on) or availability."""
    if rate is not None:
        if not settings.min_rate <= rate <= settings.max_rate:
            raise ValidationFailed(
                f"rate must be between {settings.min_rate} and {settings.max_rate} coins"
            )
        host.rate = rate
    if accepting_calls is not None:
        host.accepting_calls = accepting_calls
    await session.flush()
    return host_out(host, await repository.in_a_call(session, host.id), settings)


async def block(session: AsyncSession, host: User, *, client_id: int, now: datetime) -> HostBlock:
    """Refuse every call from ``client_id``. Idempotent: blocking a blocked client returns
    the existing block. (``calls.blocks.block`` also ends a call of theirs still ringing.)"""
    await repository.lock_host(session, host.id)  # rings to this host wait (see lock_host)
    client = await session.get(User, client_id)
    if client is None or client.role != Role.client:
        raise NotFound("no such client")
    return await repository.add_block(session, host_id=host.id, client_id=client_id, now=now)


async def unblock(session: AsyncSession, host: User, *, client_id: int) -> None:
    """Take calls from ``client_id`` again. Idempotent: unblocking twice is not an error."""
    await repository.remove_block(session, host_id=host.id, client_id=client_id)


async def list_blocks(
    session: AsyncSession, host: User, *, limit: int, before: int | None
) -> list[HostBlock]:
    """The clients ``host`` blocks, by client id (highest first); ``limit + 1`` rows may be
    asked for to learn whether there is a next page."""
    return await repository.list_blocks(session, host_id=host.id, limit=limit, before=before)
