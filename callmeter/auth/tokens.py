"""Signed access tokens (HS256 JWT via PyJWT), checked against the server's clock."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt

from callmeter.errors import NotAuthenticated
from callmeter.kit.text import MAX_ID

ALGORITHM = "HS256"
TOKEN_TYPE = "access"
# A signed token is still outside input: its claims are range-checked before use, so a
# token signed with sub=2**70 or exp=10**30 is refused (401) rather than overflowing a
# database integer or a datetime. The access token TTL is at most 30 days (config.py).
MAX_LIFETIME = timedelta(days=366)
CLOCK_SKEW = timedelta(minutes=5)
_USER_ID = re.compile(r"[1-9][0-9]{0,15}")
# verified tokens kept: every party of up to 32,768 calls (an API process sees them all);
# about 600 bytes each, 40 MB at most. Fewer than the parties beating is no memory at all:
# least recently used, each is forgotten before it comes back (and a miss costs 12x a hit)
TOKENS_REMEMBERED = 65_536


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


def _whole_seconds(value: Any) -> int | None:
    # bool is an int in Python; a float or a numeric string is not what we issue.
    return value if type(value) is int else None


def read_access_token(token: str, *, secret: str, now: datetime) -> TokenClaims:
    """Verify the signature, the claims' types and ranges, and the expiry; raise
    NotAuthenticated on any failure. What does not depend on the clock (the signature and
    the claims' types) is remembered for the last tokens read (a party's heartbeats present
    the same token every few seconds); the times are checked against ``now`` on every read."""
    user_id, role, issued, expires = _signed_claims(token, secret)
    now_s = int(now.timestamp())
    if not 0 <= issued <= now_s + CLOCK_SKEW.total_seconds():
        raise NotAuthenticated("the access token is not valid")
    if expires <= now_s:
        raise NotAuthenticated("the access token has expired: log in again")
    return TokenClaims(
        user_id=user_id, role=role, expires_at=datetime.fromtimestamp(expires, tz=now.tzinfo)
    )


@functools.lru_cache(maxsize=TOKENS_REMEMBERED)
def _signed_claims(token: str, secret: str) -> tuple[int, str, int, int]:
    """(user id, role, issued, expires) of a token we signed; raises NotAuthenticated (not
    remembered: only tokens that verify are)."""
    invalid = NotAuthenticated("the access token is not valid")
    try:
        # Expiry and issue time are checked by the caller against the injected clock.
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "require": ["sub", "exp", "iat", "typ"],
            },
        )
    except jwt.PyJWTError as exc:
        raise invalid from exc
    sub, typ, role = payload["sub"], payload["typ"], payload.get("role", "")
    issued, expires = _whole_seconds(payload["iat"]), _whole_seconds(payload["exp"])
    if (
        typ != TOKEN_TYPE
        or not isinstance(sub, str)
        or not _USER_ID.fullmatch(sub)
        or int(sub) > MAX_ID
        or not isinstance(role, str)
        or issued is None
        or expires is None
        or not issued < expires <= issued + MAX_LIFETIME.total_seconds()
    ):
        raise invalid
    return int(sub), role, issued, expires
