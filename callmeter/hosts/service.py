from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.calls import repository as calls
from callmeter.calls.schemas import HostOut
from callmeter.config import Settings
from callmeter.errors import ValidationFailed
from callmeter.models import User


def host_out(host: User, busy: bool, settings: Settings) -> HostOut:
    return HostOut(
        id=host.id,
        display_name=host.display_name,
        rate=host.rate or settings.default_rate,
        accepting_calls=host.accepting_calls,
        busy=busy,
    )


async def list_hosts(session: AsyncSession, settings: Settings) -> list[HostOut]:
    """Every host with its rate, availability and whether it is in a call right now."""
    return [host_out(h, busy, settings) for h, busy in await calls.list_hosts(session)]


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
    return host_out(host, await calls.host_busy(session, host.id), settings)
