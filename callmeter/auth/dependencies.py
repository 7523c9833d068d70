"""Who is asking: ``CurrentUser`` and the role-restricted aliases endpoints declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from callmeter.auth import service
from callmeter.auth.tokens import read_access_token
from callmeter.errors import Forbidden, NotAuthenticated
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.models import Role, User

bearer = HTTPBearer(auto_error=False, description="an access token from POST /v1/auth/login")


async def get_current_user(
    runtime: RuntimeDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated()
    claims = read_access_token(
        credentials.credentials,
        secret=runtime.settings.secret_key,
        now=runtime.clock.now(),
    )
    return await service.user_for_token(session, claims.user_id)


CurrentUser = Annotated[User, Depends(get_current_user)]


def _require(role: Role) -> object:
    async def check(user: CurrentUser) -> User:
        if user.role != role:
            raise Forbidden(f"only a {role} may do this")
        return user

    return Depends(check)


AdminUser = Annotated[User, _require(Role.admin)]
ClientUser = Annotated[User, _require(Role.client)]
HostUser = Annotated[User, _require(Role.host)]
