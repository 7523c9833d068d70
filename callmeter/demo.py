"""``callmeter demo``: idempotent demo users and coins for the embedded one-command setup."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.auth import repository as users
from callmeter.auth import service as auth
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import Role

DEMO_PASSWORD = "callmeter-demo"  # printed on purpose: local demo only
DEMO_COINS = 500


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    display_name: str
    coins: int = 0


DEMO_USERS = (
    DemoUser("admin", Role.admin, "Admin"),
    DemoUser("alice", Role.client, "Alice", DEMO_COINS),
    DemoUser("bob", Role.client, "Bob", DEMO_COINS),
    DemoUser("carol", Role.host, "Carol"),
    DemoUser("dave", Role.host, "Dave"),
)


async def seed(runtime: Runtime) -> list[tuple[DemoUser, bool]]:
    """Create the demo users that are missing and give clients their coins once.
    Returns each user with whether it was created now."""
    results: list[tuple[DemoUser, bool]] = []
    async with runtime.sessionmaker.begin() as session:
        for demo in DEMO_USERS:
            results.append((demo, await _ensure(session, runtime, demo)))
    return results


async def _ensure(session: AsyncSession, runtime: Runtime, demo: DemoUser) -> bool:
    now = runtime.clock.now()
    user = await users.get_user_by_username(session, demo.username)
    created = user is None
    if user is None:
        user = await auth.create_user(
            session,
            hasher=runtime.hasher,
            username=demo.username,
            password=DEMO_PASSWORD,
            role=demo.role,
            display_name=demo.display_name,
            now=now,
        )
    if demo.coins:
        await ledger.grant(
            session,
            user_id=user.id,
            amount=demo.coins,
            idempotency_key=f"demo-seed:{demo.username}",
            now=now,
            note="demo coins",
        )
    return created
