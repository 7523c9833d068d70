from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from callmeter.kit.text import InputModel, PositiveId, RequestedRate
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
    presence: Literal["online", "busy", "away", "offline"] = Field(
        description="busy: in a call (ringing counts); offline: no page of the host open "
        "(see POST /v1/hosts/me/presence); away: not accepting calls (or not yours); online: "
        "call now"
    )


class HostUpdateIn(InputModel):
    rate: RequestedRate | None = None
    accepting_calls: Annotated[bool, Field(strict=True)] | None = None


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
