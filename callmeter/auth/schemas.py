from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from callmeter.ledger.schemas import WalletOut


def _plain_text(value: str) -> str:
    """Refuse control and invisible formatting characters (bidi overrides, zero-width)."""
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in value):
        raise ValueError("must not contain control or invisible formatting characters")
    return value


DisplayName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_plain_text)]
Username = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,32}$"),
    Field(description="3 to 32 letters, digits, '_', '.' or '-'; case-insensitive"),
]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(StrictModel):
    username: Username
    password: Password
    role: Literal["client", "host"]
    display_name: DisplayName | None = None


class LoginIn(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=128)]


class UserOut(BaseModel):
    id: int
    username: str
    role: Literal["client", "host", "admin"]
    display_name: str


class RegisterOut(BaseModel):
    user: UserOut


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserOut


class MeOut(UserOut):
    wallet: WalletOut | None
