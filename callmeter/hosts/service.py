"""Hosts: their rate, whether they take calls, and the clients they block."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.config import Settings
from callmeter.errors import NotFound, ValidationFailed
from callmeter.hosts import avatar, repository
from callmeter.hosts.schemas import HostOut
from callmeter.models import HostAvatar, HostBlock, Role, User


def is_online(host: User, settings: Settings, now: datetime) -> bool:
    """Whether a page of the host said it is open within the presence timeout (always, when
    the timeout is 0)."""
    timeout = settings.host_presence_timeout_seconds
    if timeout == 0:
        return True
    seen = host.presence_seen_at
    return seen is not None and now < seen + timedelta(seconds=timeout)


def host_out(
    host: User,
    busy: bool,
    settings: Settings,
    now: datetime,
    *,
    blocked: bool = False,
    avatar_etag: str | None = None,
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
        bio=host.bio or "",
        languages=host.languages or [],
        tags=host.tags or [],
        avatar_url=None if avatar_etag is None else f"/v1/hosts/{host.id}/avatar?v={avatar_etag}",
        presence=presence,
    )


_ORDER = {"online": 0, "busy": 1, "away": 2, "offline": 3}


@dataclass(frozen=True)
class HostFilter:
    """What a client looks for: words in a name, bio or tag; a language; a tag."""

    query: str | None = None
    language: str | None = None
    tag: str | None = None

    def matches(self, host: HostOut) -> bool:
        tags = [t.casefold() for t in host.tags]
        if self.language and self.language.casefold() not in host.languages:
            return False
        if self.tag and self.tag.casefold() not in tags:
            return False
        if self.query:
            text = " ".join([host.display_name, host.bio, *host.tags]).casefold()
            return all(word in text for word in self.query.casefold().split())
        return True


async def list_hosts(
    session: AsyncSession,
    viewer: User,
    settings: Settings,
    now: datetime,
    wanted: HostFilter | None = None,
) -> list[HostOut]:
    """Every host (matching ``wanted``) with its rate, profile, presence (as ``viewer`` may
    call it) and whether it is in a call: online hosts first, then busy, away, offline."""
    hosts = [
        host_out(h, busy, settings, now, blocked=blocked, avatar_etag=etag)
        for h, busy, blocked, etag in await repository.list_hosts(session, viewer.id)
    ]
    if wanted is not None:
        hosts = [h for h in hosts if wanted.matches(h)]
    return sorted(hosts, key=lambda h: _ORDER[h.presence])


def _unique(values: list[str]) -> list[str]:
    """In order, without repeats whatever their case."""
    seen: set[str] = set()
    kept: list[str] = []
    for value in values:
        if value.casefold() not in seen:
            seen.add(value.casefold())
            kept.append(value)
    return kept


async def mark_present(
    session: AsyncSession, host: User, *, settings: Settings, now: datetime
) -> HostOut:
    """A page of ``host`` is open: online until the presence timeout passes without this."""
    host.presence_seen_at = now
    await session.flush()
    return await _out(session, host, settings, now)


async def update_host(
    session: AsyncSession,
    host: User,
    *,
    rate: int | None,
    accepting_calls: bool | None,
    settings: Settings,
    now: datetime,
    display_name: str | None = None,
    bio: str | None = None,
    languages: list[str] | None = None,
    tags: list[str] | None = None,
) -> HostOut:
    """Change a host's rate (for calls created from now on), availability or profile."""
    if rate is not None:
        if not settings.min_rate <= rate <= settings.max_rate:
            raise ValidationFailed(
                f"rate must be between {settings.min_rate} and {settings.max_rate} coins"
            )
        host.rate = rate
    if accepting_calls is not None:
        host.accepting_calls = accepting_calls
    if display_name is not None:
        host.display_name = display_name
    if bio is not None:
        host.bio = bio.strip() or None
    if languages is not None:
        host.languages = _unique(languages)
    if tags is not None:
        host.tags = _unique([t.strip() for t in tags])
    await session.flush()
    return await _out(session, host, settings, now)


async def _out(session: AsyncSession, host: User, settings: Settings, now: datetime) -> HostOut:
    return host_out(
        host,
        await repository.in_a_call(session, host.id),
        settings,
        now,
        avatar_etag=await repository.avatar_etag(session, host.id),
    )


async def set_avatar(
    session: AsyncSession, host: User, upload: bytes, *, settings: Settings, now: datetime
) -> HostOut:
    """The host's picture from an uploaded image: a 256x256 JPEG drawn from it (avatar.py);
    the upload itself is never kept."""
    content, etag = await asyncio.to_thread(avatar.normalize, upload)
    await repository.save_avatar(session, host_id=host.id, content=content, etag=etag, now=now)
    return await _out(session, host, settings, now)


async def remove_avatar(
    session: AsyncSession, host: User, *, settings: Settings, now: datetime
) -> HostOut:
    await repository.delete_avatar(session, host.id)
    return await _out(session, host, settings, now)


async def avatar_of(session: AsyncSession, host_id: int) -> HostAvatar:
    """A host's picture; 404 when it has none."""
    found = await repository.get_avatar(session, host_id)
    if found is None:
        raise NotFound("no picture")
    return found


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
