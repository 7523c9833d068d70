"""Hosts: their rate, whether they take calls, and the clients they block."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.config import Settings
from callmeter.errors import NotFound, ValidationFailed
from callmeter.hosts import repository
from callmeter.hosts.schemas import HostOut
from callmeter.models import HostBlock, Role, User


def is_online(host: User, settings: Settings, now: datetime) -> bool:
    """Whether a page of the host said it is open within the presence timeout (always, when
    the timeout is 0)."""
    timeout = settings.host_presence_timeout_seconds
    if timeout == 0:
        return True
    seen = host.presence_seen_at
    return seen is not None and now < seen + timedelta(seconds=timeout)


def host_out(
    host: User, busy: bool, settings: Settings, now: datetime, *, blocked: bool = False
) -> HostOut:
    # a blocked client sees the host as away: the block itself is never revealed
    accepting = host.accepting_calls and not blocked
    online = is_online(host, settings, now)
    presence = "busy" if busy else "offline" if not online else "online" if accepting else "away"
    return HostOut(
        id=host.id,
        display_name=host.display_name,
        rate=host.rate or settings.default_rate,
        interval_seconds=settings.billing_interval_seconds,
        accepting_calls=accepting,
        busy=busy,
        presence=presence,
    )


_ORDER = {"online": 0, "busy": 1, "away": 2, "offline": 3}


async def list_hosts(
    session: AsyncSession, viewer: User, settings: Settings, now: datetime
) -> list[HostOut]:
    """Every host with its rate, presence (as ``viewer`` may call it) and whether it is in a
    call right now: online hosts first, then busy, away and offline ones."""
    hosts = [
        host_out(h, busy, settings, now, blocked=blocked)
        for h, busy, blocked in await repository.list_hosts(session, viewer.id)
    ]
    return sorted(hosts, key=lambda h: _ORDER[h.presence])


async def mark_present(
    session: AsyncSession, host: User, *, settings: Settings, now: datetime
) -> HostOut:
    """A page of ``host`` is open: online until the presence timeout passes without this."""
    host.presence_seen_at = now
    await session.flush()
    return host_out(host, await repository.in_a_call(session, host.id), settings, now)


async def update_host(
    session: AsyncSession,
    host: User,
    *,
    rate: int | None,
    accepting_calls: bool | None,
    settings: Settings,
    now: datetime,
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
    return host_out(host, await repository.in_a_call(session, host.id), settings, now)


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
