"""Registration, password checks with throttling, and token issue."""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.auth import repository
from callmeter.errors import NotAuthenticated, TooManyRequests, UsernameTaken
from callmeter.ledger import service as ledger
from callmeter.models import AccountKind, Role, User

THROTTLE_WINDOW = timedelta(minutes=1)
# Verified when the username does not exist, so that a miss costs as long as a wrong password.
_DUMMY_HASHES: dict[int, str] = {}


async def hash_password(hasher: PasswordHasher, password: str) -> str:
    return await anyio.to_thread.run_sync(hasher.hash, password)


async def _verify(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(verify)


async def create_user(
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    username: str,
    password: str,
    role: Role,
    display_name: str | None,
    now: datetime,
) -> User:
    """Create a user and its account: a wallet for a client, earnings for a host."""
    username = username.lower()
    if await repository.get_user_by_username(session, username) is not None:
        raise UsernameTaken()
    user = User(
        username=username,
        password_hash=await hash_password(hasher, password),
        role=role,
        display_name=display_name or username,
        created_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same name won
        raise UsernameTaken() from exc
    if role is Role.client:
        await ledger.open_account(session, user_id=user.id, kind=AccountKind.wallet, now=now)
    elif role is Role.host:
        await ledger.open_account(session, user_id=user.id, kind=AccountKind.earnings, now=now)
    return user


async def authenticate(
    session: AsyncSession,
    *,
    hasher: PasswordHasher,
    username: str,
    password: str,
    now: datetime,
    failures_per_minute: int,
) -> User | None:
    """The user with these credentials, or None (after recording the failure).

    Raises TooManyRequests once ``failures_per_minute`` failures were recorded for this
    username within a minute, whether or not the user exists.
    """
    username = username.lower()[:64]
    since = now - THROTTLE_WINDOW
    if await repository.count_login_failures(session, username, since) >= failures_per_minute:
        raise TooManyRequests()
    user = await repository.get_user_by_username(session, username)
    if user is None:
        dummy = _DUMMY_HASHES.get(id(hasher))
        if dummy is None:
            dummy = _DUMMY_HASHES[id(hasher)] = await hash_password(hasher, "not-a-password")
        await _verify(hasher, dummy, password)
    elif await _verify(hasher, user.password_hash, password):
        await repository.clear_login_failures(session, username)
        return user
    await repository.add_login_failure(session, username, now, forget_before=since)
    return None


async def user_for_token(session: AsyncSession, user_id: int) -> User:
    user = await repository.get_user(session, user_id)
    if user is None:
        raise NotAuthenticated("the access token is not valid")
    return user
