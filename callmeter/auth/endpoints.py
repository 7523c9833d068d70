from __future__ import annotations

from fastapi import APIRouter, Request, status

from callmeter.auth import service
from callmeter.auth.dependencies import CurrentUser
from callmeter.auth.schemas import (
    LoginIn,
    MeOut,
    MeUpdateIn,
    RegisterIn,
    RegisterOut,
    TokenOut,
    UserOut,
)
from callmeter.auth.tokens import issue_access_token
from callmeter.errors import InvalidCredentials
from callmeter.kit.deps import RuntimeDep, SessionDep
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
            "language": user.language,
        }
    )


def client_address(request: Request) -> str:
    """The address limits are counted per: the peer, or behind a proxy the client that
    uvicorn's trusted forwarded headers name (``FORWARDED_ALLOW_IPS``, docs/api.md)."""
    return request.client.host[:64] if request.client else "unknown"


@router.post("/auth/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterIn, request: Request, runtime: RuntimeDep) -> RegisterOut:
    """Create a client or host account (admins are created with the CLI only).

    Limited per client address (429 with Retry-After); 503 ``busy`` when the server is
    already hashing as many passwords as it allows.
    """
    user = await service.register(
        runtime,
        username=body.username,
        password=body.password,
        role=Role(body.role),
        display_name=body.display_name,
        address=client_address(request),
    )
    return RegisterOut(user=user_out(user))


@router.post("/auth/login")
async def login(body: LoginIn, request: Request, runtime: RuntimeDep) -> TokenOut:
    """Exchange a username and password for an access token.

    The same error answers an unknown user and a wrong password. Too many failures within
    a minute — for this username from this address, from this address, or for this
    username from addresses it has not logged in from recently — answer 429 with
    Retry-After; 503 ``busy`` when the server is already verifying as many passwords as
    it allows.
    """
    user = await service.log_in(
        runtime,
        username=body.username,
        password=body.password,
        address=client_address(request),
    )
    if user is None:
        raise InvalidCredentials()
    now = runtime.clock.now()
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
    account = await service.own_account(session, user)
    wallet = None if account is None else WalletOut.of(account)
    return MeOut(**user_out(user).model_dump(), wallet=wallet)


@router.put("/me")
async def update_me(body: MeUpdateIn, user: CurrentUser, session: SessionDep) -> MeOut:
    """Your settings: the language of the web client (``en`` or ``es``), kept on the user so
    every device shows it."""
    user.language = body.language
    await session.flush()
    return await me(user, session)
