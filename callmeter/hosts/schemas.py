from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from callmeter.kit.text import (
    PLAIN_TEXT_PATTERN,
    DisplayName,
    InputModel,
    PositiveId,
    RequestedRate,
)
from callmeter.models import HostBlock


class HostOut(BaseModel):
    id: int
    display_name: str
    rate: int = Field(description="coins per billing interval")
    interval_seconds: int = Field(description="the billing interval a call to this host has")
    accepting_calls: bool = Field(
        description="false when the host is away (or does not take your calls)"
    )
    busy: bool
    bio: str
    languages: list[str] = Field(description="ISO 639-1 codes")
    tags: list[str] = Field(description="topics")
    avatar_url: str | None = Field(description="the host's picture (256x256 JPEG), if any")
    presence: Literal["online", "busy", "away", "offline"] = Field(
        description="busy: in a call (ringing counts); offline: no page of the host open "
        "(see POST /v1/hosts/me/presence); away: not accepting calls (or not yours); online: "
        "call now"
    )


Bio = Annotated[str, Field(max_length=1000, pattern=PLAIN_TEXT_PATTERN)]
Language = Annotated[str, Field(pattern="^[a-z]{2}$", description="ISO 639-1: es, en, pt…")]
_TAG_CHAR = "0-9A-Za-zÀ-ÖØ-öø-ÿ"  # the same class in Python and in the schema's regex
Tag = Annotated[
    str, Field(min_length=1, max_length=24, pattern=f"^[{_TAG_CHAR}][{_TAG_CHAR} .+#-]*$")
]


class HostUpdateIn(InputModel):
    rate: RequestedRate | None = None
    accepting_calls: Annotated[bool, Field(strict=True)] | None = None
    display_name: DisplayName | None = None
    bio: Bio | None = Field(default=None, description='"" clears it')
    languages: Annotated[list[Language], Field(max_length=8)] | None = None
    tags: Annotated[list[Tag], Field(max_length=10)] | None = None


class BlockIn(InputModel):
    client_id: PositiveId


class BlockOut(BaseModel):
    client_id: int
    created_at: datetime

    @classmethod
    def of(cls, block: HostBlock) -> BlockOut:
        return cls(client_id=block.client_id, created_at=block.created_at)


class BlocksPage(BaseModel):
    items: list[BlockOut]
    next_before: int | None = Field(description="pass as `before` for the next page")

    @classmethod
    def of(cls, blocks: list[HostBlock], limit: int) -> BlocksPage:
        """A page from ``limit + 1`` blocks read by client id, highest first."""
        items = [BlockOut.of(b) for b in blocks[:limit]]
        return cls(items=items, next_before=items[-1].client_id if len(blocks) > limit else None)
