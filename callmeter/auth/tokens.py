"""Signed access tokens (HS256 JWT via PyJWT), checked against the server's clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from callmeter.errors import NotAuthenticated

ALGORITHM = "HS256"
TOKEN_TYPE = "access"


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    role: str
    expires_at: datetime


def issue_access_token(
    *, user_id: int, role: str, secret: str, now: datetime, ttl_seconds: int
) -> str:
    payload = {
        "sub": str(user_id),
        "role": role,
        "typ": TOKEN_TYPE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def read_access_token(token: str, *, secret: str, now: datetime) -> TokenClaims:
    """Verify the signature and expiry; raise NotAuthenticated on any failure."""
    try:
        # Expiry is checked below against the injected clock, not the machine's.
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "require": ["sub", "exp", "iat", "typ"]},
        )
        user_id = int(payload["sub"])
        expires = int(payload["exp"])
        role = str(payload.get("role", ""))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise NotAuthenticated("the access token is not valid") from exc
    if payload["typ"] != TOKEN_TYPE:
        raise NotAuthenticated("the access token is not valid")
    if expires <= int(now.timestamp()):
        raise NotAuthenticated("the access token has expired: log in again")
    return TokenClaims(
        user_id=user_id, role=role, expires_at=datetime.fromtimestamp(expires, tz=now.tzinfo)
    )
