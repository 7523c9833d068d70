"""What a running process shares: settings, database, clock, password hasher."""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher, profiles
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callmeter.config import PasswordHashProfile, Settings
from callmeter.kit.clock import Clock, SystemClock
from callmeter.kit.db import DatabaseProbe, create_engine, create_sessionmaker
from callmeter.kit.slots import Slots
from callmeter.media.livekit import LiveKit


def password_hasher(profile: PasswordHashProfile) -> PasswordHasher:
    if profile is PasswordHashProfile.cheapest:
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    return PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    read_sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock = field(default_factory=SystemClock)
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    livekit: LiveKit | None = None
    streams: Slots = field(default_factory=Slots)  # open event streams, this process only
    database_probe: DatabaseProbe = field(init=False)

    def __post_init__(self) -> None:
        self.database_probe = DatabaseProbe(self.engine)

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        engine = create_engine(
            settings.database_url,
            pool_timeout=settings.db_pool_timeout_seconds,
            connect_timeout=settings.db_connect_timeout_seconds,
            statement_timeout=settings.db_statement_timeout_seconds,
        )
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            read_sessionmaker=create_sessionmaker(engine, read_only=True),
            clock=clock or SystemClock(),
            hasher=password_hasher(settings.password_hash_profile),
            livekit=LiveKit(settings) if settings.livekit_enabled else None,
        )

    async def close(self) -> None:
        await self.database_probe.close()
        if self.livekit is not None:
            await self.livekit.close()
        await self.engine.dispose()
