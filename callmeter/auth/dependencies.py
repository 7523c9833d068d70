"""Who is asking: ``CurrentUser`` and the role-restricted aliases endpoints declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.auth import service
from callmeter.auth.tokens import TokenClaims, read_access_token
from callmeter.errors import Forbidden, NotAuthenticated
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.models import Role, User

bearer = HTTPBearer(auto_error=False, description="an access token from POST /v1/auth/login")


async def get_claims(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TokenClaims:
    """A valid, unexpired access token's claims (no database read)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated()
    return read_access_token(
        credentials.credentials,
        secret=runtime.settings.secret_key,
        now=runtime.clock.now(),
    )


# For hot paths that check who may act against the row they act on (a heartbeat matches
# the token's user against the call's party); anything else declares CurrentUser.
CurrentClaims = Annotated[TokenClaims, Depends(get_claims)]


async def get_current_user(session: SessionDep, claims: CurrentClaims) -> User:
    return await user_of(session, claims)


async def user_of(session: AsyncSession, claims: TokenClaims, role: Role | None = None) -> User:
    """The user a token names (401 when there is none; 403 when ``role`` is given and the
    user has another), for a path that started from :data:`CurrentClaims`."""
    user = await service.user_for_token(session, claims.user_id)
    if role is not None:
        require_role(role, user.role)
    return user


def require_role(role: Role, actual: str) -> None:
    """403 unless ``actual`` (a user's or a token's role) is ``role``."""
    if actual != role:
        raise Forbidden(f"only a {role} may do this")


CurrentUser = Annotated[User, Depends(get_current_user)]


def _require(role: Role) -> object:
    async def check(user: CurrentUser) -> User:
        require_role(role, user.role)
        return user

    return Depends(check)


def _claimed(role: Role) -> object:
    async def check(claims: CurrentClaims) -> TokenClaims:  # async: no thread per request
        require_role(role, claims.role)
        return claims

    return Depends(check)


AdminUser = Annotated[User, _require(Role.admin)]
ClientUser = Annotated[User, _require(Role.client)]
HostUser = Annotated[User, _require(Role.host)]
# A client's token, checked before any database read (the user is read later: user_of).
ClientClaims = Annotated[TokenClaims, _claimed(Role.client)]
