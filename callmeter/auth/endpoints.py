from __future__ import annotations

from fastapi import APIRouter, status

from callmeter.auth import service
from callmeter.auth.dependencies import CurrentUser
from callmeter.auth.schemas import LoginIn, MeOut, RegisterIn, RegisterOut, TokenOut, UserOut
from callmeter.auth.tokens import issue_access_token
from callmeter.errors import InvalidCredentials
from callmeter.kit.deps import RuntimeDep, SessionDep
from callmeter.ledger import repository as ledger_repository
from callmeter.ledger.schemas import WalletOut
from callmeter.models import Role, User

router = APIRouter(prefix="/v1", tags=["auth"])


def user_out(user: User) -> UserOut:
    return UserOut.model_validate(
        {
            "id": user.id,
            "username": user.username,
            "role": user.role,
            "display_name": user.display_name,
        }
    )


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterIn, runtime: RuntimeDep, session: SessionDep) -> RegisterOut:
    """Create a client or host account (admins are created with the CLI only)."""
    user = await service.create_user(
        session,
        hasher=runtime.hasher,
        username=body.username,
        password=body.password,
        role=Role(body.role),
        display_name=body.display_name,
        now=runtime.clock.now(),
    )
    return RegisterOut(user=user_out(user))


@router.post("/auth/login")
async def login(body: LoginIn, runtime: RuntimeDep) -> TokenOut:
    """Exchange a username and password for an access token.

    The same error answers an unknown user and a wrong password; after too many failures
    within a minute the username is refused with 429 for the rest of that minute.
    """
    now = runtime.clock.now()
    # Its own transaction, committed even when the login fails, so failures are counted.
    async with runtime.sessionmaker.begin() as session:
        user = await service.authenticate(
            session,
            hasher=runtime.hasher,
            username=body.username,
            password=body.password,
            now=now,
            failures_per_minute=runtime.settings.login_failures_per_minute,
        )
    if user is None:
        raise InvalidCredentials()
    ttl = runtime.settings.access_token_ttl_seconds
    token = issue_access_token(
        user_id=user.id,
        role=user.role,
        secret=runtime.settings.secret_key,
        now=now,
        ttl_seconds=ttl,
    )
    return TokenOut(access_token=token, expires_in=ttl, user=user_out(user))


@router.get("/me")
async def me(user: CurrentUser, session: SessionDep) -> MeOut:
    """Who the token belongs to, with their wallet (a host's wallet is its earnings)."""
    account = await ledger_repository.get_user_account(session, user.id)
    wallet = None if account is None else WalletOut.of(account)
    return MeOut(**user_out(user).model_dump(), wallet=wallet)
