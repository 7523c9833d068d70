"""What a running process shares: settings, database, clock, password hasher."""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher, profiles
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callmeter.config import PasswordHashProfile, Settings
from callmeter.kit.clock import Clock, SystemClock
from callmeter.kit.db import create_engine, create_sessionmaker
from callmeter.kit.gate import Gate
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
    # Every password hash and verification in the API runs through this gate.
    hash_gate: Gate = field(default_factory=lambda: Gate(slots=2, queue=16, wait_seconds=1.0))
    livekit: LiveKit | None = None

    @classmethod
    def create(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        engine = create_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            read_sessionmaker=create_sessionmaker(engine, read_only=True),
            clock=clock or SystemClock(),
            hasher=password_hasher(settings.password_hash_profile),
            hash_gate=Gate(
                slots=settings.password_hash_concurrency,
                queue=settings.password_hash_queue,
                wait_seconds=settings.password_hash_wait_seconds,
            ),
            livekit=LiveKit(settings) if settings.livekit_enabled else None,
        )

    async def close(self) -> None:
        if self.livekit is not None:
            await self.livekit.close()
        await self.engine.dispose()
