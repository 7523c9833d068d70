from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from callmeter.kit.text import PLAIN_TEXT_PATTERN, DisplayName, InputModel
from callmeter.ledger.schemas import WalletOut

Username = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,32}$"),
    Field(description="3 to 32 letters, digits, '_', '.' or '-'; case-insensitive"),
]
Password = Annotated[str, Field(min_length=8, max_length=128, pattern=PLAIN_TEXT_PATTERN)]


class RegisterIn(InputModel):
    username: Username
    password: Password
    role: Literal["client", "host"]
    display_name: DisplayName | None = None


class LoginIn(InputModel):
    username: Annotated[str, Field(min_length=1, max_length=64, pattern=PLAIN_TEXT_PATTERN)]
    password: Annotated[str, Field(min_length=1, max_length=128, pattern=PLAIN_TEXT_PATTERN)]


Language = Literal["en", "es"]


class UserOut(BaseModel):
    id: int
    username: str
    role: Literal["client", "host", "admin"]
    display_name: str
    language: Language | None = Field(
        description="the language the user chose for the web client (null: not chosen)"
    )


class MeUpdateIn(InputModel):
    language: Language


class RegisterOut(BaseModel):
    user: UserOut


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserOut


class MeOut(UserOut):
    wallet: WalletOut | None
