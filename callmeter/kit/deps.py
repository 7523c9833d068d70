"""FastAPI dependencies shared by every router: the runtime and the request's session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.kit.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI would run a plain function in its thread pool on every request
    return cast(Runtime, request.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


READING_METHODS = frozenset({"GET", "HEAD"})


async def get_session(runtime: RuntimeDep, request: Request) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: commit when the endpoint returns, roll back when
    it raises. ``scope="function"`` below makes the commit happen before the response is
    sent, so a client never sees success for work that was not committed.

    A GET or HEAD reads: its transaction is read-only (PostgreSQL ``BEGIN READ ONLY``; on
    SQLite a plain ``BEGIN`` that takes no write lock, so reads never queue behind writes)."""
    read = request.method in READING_METHODS
    maker = runtime.read_sessionmaker if read else runtime.sessionmaker
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
