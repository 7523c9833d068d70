"""Registration, password checks with throttling, and token issue.

Load rules (docs/api.md, "Login and registration limits"):

* no pooled database connection is held while a password is hashed or verified: short
  transactions run before and after the hash, never around it;
* a login or registration runs only inside one of the runtime's few auth slots (a short
  bounded queue, 503 ``busy`` beyond it), so a flood can neither take more than a few
  pooled connections nor queue without limit, and its password hash runs in one of as
  many low-priority hashing threads (kit/runtime.py), which yield the CPU to the event loop;
* an attempt is recorded and committed *before* its password is verified, by a transaction
  that counts the attempts already made and runs one at a time per username and per
  address, so N concurrent guesses check at most a limit's worth of passwords, across
  every API process.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.auth import repository
from callmeter.auth.repository import Tally
from callmeter.config import Settings
from callmeter.errors import NotAuthenticated, NotFound, TooManyRequests, UsernameTaken
from callmeter.kit.db import run_in_transaction
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import Account, AccountKind, AttemptKind, AttemptState, Role, User

T = TypeVar("T")

LOGIN_WINDOW = timedelta(minutes=1)
REGISTRATION_WINDOW = timedelta(hours=1)
# Verified when the username does not exist, so that a miss costs as long as a wrong password.
_DUMMY_HASHES: dict[int, str] = {}


async def hash_password(hasher: PasswordHasher, password: str) -> str:
    return await anyio.to_thread.run_sync(hasher.hash, password)


def _verify(hasher: PasswordHasher, password_hash: str | None, password: str) -> bool:
    """In a worker thread: check ``password``; with no user, spend the same time on a dummy
    hash and answer False."""
    if password_hash is None:
        dummy = _DUMMY_HASHES.get(id(hasher))
        if dummy is None:
            dummy = _DUMMY_HASHES[id(hasher)] = hasher.hash("not-a-password")
        _check(hasher, dummy, password)
        return False
    return _check(hasher, password_hash, password)


def _check(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


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
    """Create a user and its account (for the CLI, the demo and tests). The password is
    hashed first, before the session takes a database connection."""
    password_hash = await hash_password(hasher, password)
    return await add_user(
        session,
        username=username,
        password_hash=password_hash,
        role=role,
        display_name=display_name,
        now=now,
    )


async def add_user(
    session: AsyncSession,
    *,
    username: str,
    password_hash: str,
    role: Role,
    display_name: str | None,
    now: datetime,
) -> User:
    """Insert a user and its account: a wallet for a client, earnings for a host."""
    username = username.lower()
    if await repository.username_exists(session, username):
        raise UsernameTaken()
    user = User(
        username=username,
        password_hash=password_hash,
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


def _retry_after(tally: Tally, window: timedelta, now: datetime) -> int:
    """Seconds until the oldest attempt counted against a limit leaves the window."""
    if tally.oldest is None:
        return math.ceil(window.total_seconds())
    return max(1, math.ceil((tally.oldest + window - now).total_seconds()))


async def _transaction(runtime: Runtime, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return await run_in_transaction(runtime.sessionmaker, work)


async def _admit_login(
    session: AsyncSession, settings: Settings, *, username: str, address: str, now: datetime
) -> tuple[int, User | None]:
    """Record a pending attempt and return it with the user — or raise TooManyRequests,
    recording nothing, when the attempt would exceed a limit. Transactions for the same
    username or address run this one at a time, so the count is exact under concurrency."""
    await repository.serialize_on(session, f"login:user:{username}", f"login:address:{address}")
    tallies = await repository.tally_logins(
        session, username=username, address=address, since=now - LOGIN_WINDOW
    )
    user = await repository.get_user_by_username(session, username)
    known = user is not None and await repository.is_known_address(
        session,
        user_id=user.id,
        address=address,
        since=now - timedelta(days=settings.login_known_address_days),
    )
    limits = [
        (tallies.pair, settings.login_failures_per_minute),
        (tallies.address, settings.login_failures_per_address_per_minute),
    ]
    if not known:  # anyone can exhaust it: it does not bind the owner's known addresses
        limits.append((tallies.username, settings.login_failures_per_username_per_minute))
    exceeded = [tally for tally, limit in limits if tally.count >= limit]
    if exceeded:
        wait = max(_retry_after(tally, LOGIN_WINDOW, now) for tally in exceeded)
        raise TooManyRequests("too many failed logins; try again later", retry_after=wait)
    attempt_id = await repository.add_attempt(
        session,
        kind=AttemptKind.login,
        username=username,
        address=address,
        at=now,
        state=AttemptState.pending,
    )
    return attempt_id, user


async def log_in(runtime: Runtime, *, username: str, password: str, address: str) -> User | None:
    """The user with these credentials, or None (the failure is recorded).

    Raises TooManyRequests when a limit is reached — failures per (username, address),
    per address, and per username from addresses the user has not logged in from
    recently — whether or not the user exists; Busy when the auth slots and their queue
    are full. The attempt is committed before the password is checked.
    """
    async with runtime.auth_gate.slot():
        return await _log_in(runtime, username=username, password=password, address=address)


async def _log_in(runtime: Runtime, *, username: str, password: str, address: str) -> User | None:
    settings = runtime.settings
    now = runtime.clock.now()
    username = username.lower()[:64]

    async def admit(session: AsyncSession) -> tuple[int, User | None]:
        return await _admit_login(session, settings, username=username, address=address, now=now)

    attempt_id, user = await _transaction(runtime, admit)
    # No database connection is held from here until the password is checked.
    ok = await runtime.in_hashing_thread(
        _verify, runtime.hasher, None if user is None else user.password_hash, password
    )

    async def settle(session: AsyncSession) -> None:
        state = AttemptState.succeeded if ok else AttemptState.failed
        await repository.set_attempt_state(session, attempt_id, state)
        if ok and user is not None:
            await repository.remember_address(
                session,
                user_id=user.id,
                address=address,
                at=now,
                forget_before=now - timedelta(days=settings.login_known_address_days),
            )
        await repository.forget_attempts(session, AttemptKind.login, now - LOGIN_WINDOW)

    await _transaction(runtime, settle)
    return user if ok else None


async def register(
    runtime: Runtime,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str | None,
    address: str,
) -> User:
    """Create a client or host: at most ``registrations_per_address_per_hour`` attempts
    per client address (TooManyRequests; a taken username counts too); Busy when the
    auth slots and their queue are full."""
    async with runtime.auth_gate.slot():
        return await _register(
            runtime,
            username=username.lower(),
            password=password,
            role=role,
            display_name=display_name,
            address=address,
        )


async def _admit_registration(
    session: AsyncSession, *, username: str, address: str, limit: int, now: datetime
) -> tuple[int, bool]:
    """Record the attempt and say whether the username is taken — or raise TooManyRequests,
    recording nothing, when the address has made ``limit`` attempts within the hour."""
    await repository.serialize_on(session, f"register:address:{address}")
    tally = await repository.tally_registrations(
        session, address=address, since=now - REGISTRATION_WINDOW
    )
    if tally.count >= limit:
        raise TooManyRequests(
            "too many registrations from this address; try again later",
            retry_after=_retry_after(tally, REGISTRATION_WINDOW, now),
        )
    taken = await repository.username_exists(session, username)
    attempt_id = await repository.add_attempt(
        session,
        kind=AttemptKind.register,
        username=username,
        address=address,
        at=now,
        state=AttemptState.failed if taken else AttemptState.pending,
    )
    return attempt_id, taken


async def _register(
    runtime: Runtime,
    *,
    username: str,
    password: str,
    role: Role,
    display_name: str | None,
    address: str,
) -> User:
    now = runtime.clock.now()
    limit = runtime.settings.registrations_per_address_per_hour

    async def admit(session: AsyncSession) -> tuple[int, bool]:
        return await _admit_registration(
            session, username=username, address=address, limit=limit, now=now
        )

    attempt_id, taken = await _transaction(runtime, admit)
    if taken:
        raise UsernameTaken()
    # No database connection is held while the password is hashed.
    password_hash = await runtime.in_hashing_thread(runtime.hasher.hash, password)

    async def create(session: AsyncSession) -> User:
        await repository.set_attempt_state(session, attempt_id, AttemptState.succeeded)
        await repository.forget_attempts(session, AttemptKind.register, now - REGISTRATION_WINDOW)
        return await add_user(
            session,
            username=username,
            password_hash=password_hash,
            role=role,
            display_name=display_name,
            now=now,
        )

    return await _transaction(runtime, create)


async def user_for_token(session: AsyncSession, user_id: int) -> User:
    user = await repository.get_user(session, user_id)
    if user is None:
        raise NotAuthenticated("the access token is not valid")
    return user


async def own_account(session: AsyncSession, user: User) -> Account | None:
    """The user's own account — a client's wallet, a host's earnings — or None (an admin)."""
    try:
        return await ledger.account_for_user(session, user.id)
    except NotFound:
        return None


async def search_users(
    session: AsyncSession, *, query: str | None, role: str | None, limit: int, before: int | None
) -> list[tuple[User, Account | None]]:
    """Users by a part of their username or display name (any case), newest first, each
    with its own account; ``limit + 1`` may be asked for to learn whether there is more."""
    return await repository.search_users(
        session, query=query, role=role, limit=limit, before=before
    )
