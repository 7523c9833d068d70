from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.models import LoginFailure, User


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    result = await session.execute(select(User).where(User.username == username.lower()))
    return result.scalar_one_or_none()


async def count_login_failures(session: AsyncSession, username: str, since: datetime) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.username == username, LoginFailure.at > since)
    )
    return int(result.scalar_one())


async def add_login_failure(
    session: AsyncSession, username: str, at: datetime, forget_before: datetime
) -> None:
    # Old failures are useless for throttling; drop them as we go.
    await session.execute(
        delete(LoginFailure).where(
            LoginFailure.username == username, LoginFailure.at <= forget_before
        )
    )
    session.add(LoginFailure(username=username, at=at))
    await session.flush()


async def clear_login_failures(session: AsyncSession, username: str) -> None:
    await session.execute(delete(LoginFailure).where(LoginFailure.username == username))
