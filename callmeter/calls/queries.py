"""Reads of calls the routers show, so that no endpoint queries the repository itself
(the call lifecycle, and every change to a call, is in ``service.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.calls import repository
from callmeter.ledger.service import CHARGE_KINDS, TIP_KINDS, TransferKind
from callmeter.models import Call, CallMessage, CallStatus


async def list_calls(
    session: AsyncSession,
    *,
    user_id: int | None,
    status: CallStatus | None,
    limit: int,
    before: int | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Call]:
    """Calls newest first: ``user_id``'s (as client or host) or everyone's (``None``), of
    one status or any; ``limit + 1`` rows may be asked for to learn whether there is a
    next page, ``before`` is the previous page's last id; ``since``/``until`` bound when the
    call was rung."""
    return await repository.list_calls(
        session, user_id=user_id, status=status, limit=limit, before=before, since=since,
        until=until,
    )  # fmt: skip


async def party_names(session: AsyncSession, calls: list[Call]) -> dict[int, str]:
    """The display names of the clients and hosts of ``calls``, by user id."""
    ids = {c.client_id for c in calls} | {c.host_id for c in calls}
    return await repository.display_names(session, ids) if ids else {}


@dataclass(frozen=True)
class Receipt:
    """What a call cost and earned, from the ledger: its charges (both parts of each as one
    amount), its tips (what the client gave) and its refunds, each with its time; and,
    when asked for, its chat."""

    call: Call
    names: dict[int, str]
    charges: list[tuple[datetime, int]]
    tips: list[tuple[datetime, int]]
    refunds: list[tuple[datetime, int]]
    transcript: list[CallMessage] | None


async def receipt(session: AsyncSession, call: Call, *, transcript: bool) -> Receipt:
    kinds = [str(k) for k in (*CHARGE_KINDS, *TIP_KINDS, TransferKind.refund)]
    moved = await repository.money_of_call(session, call.id, kinds)
    charges: dict[datetime, int] = {}
    tips: dict[datetime, int] = {}
    refunds: dict[datetime, int] = {}
    for at, kind, coins in moved:
        into = charges if kind in CHARGE_KINDS else tips if kind in TIP_KINDS else refunds
        into[at] = into.get(at, 0) + coins
    lines = None
    if transcript:
        lines = await repository.messages_after(
            session, call_id=call.id, after_id=0, limit=MAX_TRANSCRIPT
        )
    return Receipt(
        call=call,
        names=await party_names(session, [call]),
        charges=sorted(charges.items()),
        tips=sorted(tips.items()),
        refunds=sorted(refunds.items()),
        transcript=lines,
    )


# a call's chat holds at most max_messages_per_call from its parties, plus its own story
MAX_TRANSCRIPT = 10_000
