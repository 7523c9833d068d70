"""Registration, password checks with throttling, and token issue.

Load rules (docs/api.md, "Login and registration limits"):

* no pooled database connection is held while a password is hashed or verified: short
  transactions run before and after the hash, never around it;
* every hash and verification in the API runs through the runtime's hashing gate (a few at
  a time per process, a short bounded queue, 503 ``busy`` beyond it);
* an attempt is recorded and committed *before* its password is verified, and the count
  that decides includes it, so N concurrent guesses check at most a limit's worth of
  passwords, across every API process.
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
from callmeter.errors import Busy, NotAuthenticated, TooManyRequests, UsernameTaken
from callmeter.kit.db import run_in_transaction
from callmeter.kit.runtime import Runtime
from callmeter.ledger import service as ledger
from callmeter.models import AccountKind, AttemptKind, AttemptState, Role, User

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


async def _record_attempt(
    runtime: Runtime, *, kind: AttemptKind, username: str, address: str, now: datetime
) -> int:
    async def record(session: AsyncSession) -> int:
        return await repository.add_attempt(
            session,
            kind=kind,
            username=username,
            address=address,
            at=now,
            state=AttemptState.pending,
        )

    return await _transaction(runtime, record)


async def _drop_attempt(runtime: Runtime, attempt_id: int) -> None:
    """Refused or shed before anything was checked: the attempt does not count."""

    async def drop(session: AsyncSession) -> None:
        await repository.drop_attempt(session, attempt_id)

    await _transaction(runtime, drop)


async def _login_refusal(
    runtime: Runtime, *, username: str, address: str, now: datetime
) -> tuple[User | None, TooManyRequests | None]:
    """The user, and the refusal if a limit is exceeded (counting this attempt)."""
    settings = runtime.settings
    since = now - LOGIN_WINDOW
    async with runtime.read_sessionmaker() as session:
        tallies = await repository.tally_logins(
            session, username=username, address=address, since=since
        )
        user = await repository.get_user_by_username(session, username)
        known = user is not None and await repository.is_known_address(
            session,
            user_id=user.id,
            address=address,
            since=now - timedelta(days=settings.login_known_address_days),
        )
    exceeded = [
        tally
        for tally, limit in (
            (tallies.pair, settings.login_failures_per_minute),
            (tallies.address, settings.login_failures_per_address_per_minute),
            # Anyone can exhaust a username's limit: it does not bind its owner's addresses.
            (None if known else tallies.username, settings.login_failures_per_username_per_minute),
        )
        if tally is not None and tally.count > limit
    ]
    if not exceeded:
        return user, None
    wait = max(_retry_after(tally, LOGIN_WINDOW, now) for tally in exceeded)
    return user, TooManyRequests("too many failed logins; try again later", retry_after=wait)


async def log_in(runtime: Runtime, *, username: str, password: str, address: str) -> User | None:
    """The user with these credentials, or None (the failure is recorded).

    Raises TooManyRequests when a limit is exceeded — failures per (username, address),
    per address, and per username from addresses the user has not logged in from
    recently — counting this attempt, whether or not the user exists; Busy when the
    hashing gate sheds the request.
    """
    gate = runtime.hash_gate
    gate.admit()
    now = runtime.clock.now()
    username = username.lower()[:64]
    attempt_id = await _record_attempt(
        runtime, kind=AttemptKind.login, username=username, address=address, now=now
    )
    try:
        user, refusal = await _login_refusal(runtime, username=username, address=address, now=now)
        if refusal is not None:
            raise refusal
        hasher = runtime.hasher
        async with gate.slot():
            ok = await anyio.to_thread.run_sync(
                _verify, hasher, None if user is None else user.password_hash, password
            )
    except (TooManyRequests, Busy):
        await _drop_attempt(runtime, attempt_id)
        raise

    async def settle(session: AsyncSession) -> None:
        state = AttemptState.succeeded if ok else AttemptState.failed
        await repository.set_attempt_state(session, attempt_id, state)
        if ok and user is not None:
            await repository.remember_address(
                session,
                user_id=user.id,
                address=address,
                at=now,
                forget_before=now - timedelta(days=runtime.settings.login_known_address_days),
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
    per client address (TooManyRequests), the password hashed through the gate (Busy)."""
    gate = runtime.hash_gate
    gate.admit()
    now = runtime.clock.now()
    username = username.lower()
    attempt_id = await _record_attempt(
        runtime, kind=AttemptKind.register, username=username, address=address, now=now
    )
    try:
        async with runtime.read_sessionmaker() as session:
            tally = await repository.tally_registrations(
                session, address=address, since=now - REGISTRATION_WINDOW
            )
            taken = await repository.username_exists(session, username)
        if tally.count > runtime.settings.registrations_per_address_per_hour:
            raise TooManyRequests(
                "too many registrations from this address; try again later",
                retry_after=_retry_after(tally, REGISTRATION_WINDOW, now),
            )
        if taken:
            raise UsernameTaken()  # the attempt still counts against the address
        async with gate.slot():
            password_hash = await hash_password(runtime.hasher, password)
    except (TooManyRequests, Busy):
        await _drop_attempt(runtime, attempt_id)
        raise

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
