from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.kit.db import dialect_insert
from callmeter.models import (
    Account,
    AccountKind,
    AttemptKind,
    AttemptState,
    AuthAttempt,
    KnownAddress,
    User,
)


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    result = await session.execute(select(User).where(User.username == username.lower()))
    return result.scalar_one_or_none()


async def username_exists(session: AsyncSession, username: str) -> bool:
    result = await session.execute(select(User.id).where(User.username == username.lower()))
    return result.first() is not None


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), signed=True)


async def serialize_on(session: AsyncSession, *names: str) -> None:
    """Until this transaction ends, concurrent transactions naming any of ``names`` wait
    here: PostgreSQL advisory transaction locks, taken in one global order (no deadlock).
    SQLite needs none: its write transactions (BEGIN IMMEDIATE) already run one at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for lock_id in sorted({_lock_id(name) for name in names}):
        await session.execute(select(func.pg_advisory_xact_lock(lock_id)))


async def add_attempt(
    session: AsyncSession,
    *,
    kind: AttemptKind,
    username: str,
    address: str,
    at: datetime,
    state: AttemptState,
) -> int:
    attempt = AuthAttempt(kind=kind, username=username, address=address, at=at, state=state)
    session.add(attempt)
    await session.flush()
    return attempt.id


async def set_attempt_state(session: AsyncSession, attempt_id: int, state: AttemptState) -> None:
    await session.execute(
        update(AuthAttempt).where(AuthAttempt.id == attempt_id).values(state=state)
    )


async def forget_attempts(session: AsyncSession, kind: AttemptKind, before: datetime) -> None:
    """Attempts older than their window are useless for throttling; drop them as we go."""
    await session.execute(
        delete(AuthAttempt).where(AuthAttempt.kind == kind, AuthAttempt.at <= before)
    )


@dataclass(frozen=True)
class Tally:
    """How many attempts count against one limit, and when the oldest of them was made."""

    count: int
    oldest: datetime | None


@dataclass(frozen=True)
class LoginTallies:
    pair: Tally  # this username from this address
    address: Tally  # this address, any username
    username: Tally  # this username, any address


async def tally_logins(
    session: AsyncSession, *, username: str, address: str, since: datetime
) -> LoginTallies:
    """Pending and failed logins made after ``since``, for the three limits."""
    same_user = AuthAttempt.username == username
    same_address = AuthAttempt.address == address
    pair = and_(same_user, same_address)
    result = await session.execute(
        select(
            func.count().filter(pair),
            func.min(AuthAttempt.at).filter(pair),
            func.count().filter(same_address),
            func.min(AuthAttempt.at).filter(same_address),
            func.count().filter(same_user),
            func.min(AuthAttempt.at).filter(same_user),
        ).where(
            AuthAttempt.kind == AttemptKind.login,
            AuthAttempt.state != AttemptState.succeeded,
            AuthAttempt.at > since,
            same_user | same_address,
        )
    )
    row = result.one()
    return LoginTallies(
        pair=Tally(int(row[0]), row[1]),
        address=Tally(int(row[2]), row[3]),
        username=Tally(int(row[4]), row[5]),
    )


async def tally_registrations(session: AsyncSession, *, address: str, since: datetime) -> Tally:
    result = await session.execute(
        select(func.count(), func.min(AuthAttempt.at)).where(
            AuthAttempt.kind == AttemptKind.register,
            AuthAttempt.address == address,
            AuthAttempt.at > since,
        )
    )
    count, oldest = result.one()
    return Tally(int(count), oldest)


async def is_known_address(
    session: AsyncSession, *, user_id: int, address: str, since: datetime
) -> bool:
    result = await session.execute(
        select(KnownAddress.user_id).where(
            KnownAddress.user_id == user_id,
            KnownAddress.address == address,
            KnownAddress.last_login_at > since,
        )
    )
    return result.first() is not None


async def remember_address(
    session: AsyncSession, *, user_id: int, address: str, at: datetime, forget_before: datetime
) -> None:
    """Record a successful login from ``address``; the user's stale addresses are dropped."""
    await session.execute(
        delete(KnownAddress).where(
            KnownAddress.user_id == user_id, KnownAddress.last_login_at <= forget_before
        )
    )
    insert = dialect_insert(session, KnownAddress).values(
        user_id=user_id, address=address, last_login_at=at
    )
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["user_id", "address"], set_={"last_login_at": at}
        )
    )


def _like_escaped(text: str) -> str:
    """``text`` for a LIKE pattern that matches it literally (``%``, ``_`` and ``\\``
    escaped with ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_users(
    session: AsyncSession, *, query: str | None, role: str | None, limit: int, before: int | None
) -> list[tuple[User, Account | None]]:
    """Users whose username or display name contains ``query`` (any case), newest first,
    with their own account (a client's wallet, a host's earnings; None for an admin)."""
    found = (
        select(User, Account)
        .outerjoin(
            Account,
            and_(
                Account.user_id == User.id,
                Account.kind.in_([AccountKind.wallet, AccountKind.earnings]),
            ),
        )
        .order_by(User.id.desc())
        .limit(limit)
    )
    if query:
        pattern = f"%{_like_escaped(query.lower())}%"
        found = found.where(
            or_(
                func.lower(User.username).like(pattern, escape="\\"),
                func.lower(User.display_name).like(pattern, escape="\\"),
            )
        )
    if role is not None:
        found = found.where(User.role == role)
    if before is not None:
        found = found.where(User.id < before)
    return [(user, account) for user, account in await session.execute(found)]
