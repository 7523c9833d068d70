"""The statement a person reads: one line per thing that happened to their coins.

The ledger posts a call's charge as two transfers (the host's share and the platform's), and
may post a refund the same way; on a wallet those are two postings of one event. A line is
the postings of one event: same kind of event, same call, same moment. The platform's split
stays in the admin's view; the line says what the call cost (or earned) and for how long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callmeter.ledger import service as ledger
from callmeter.ledger.service import CHARGE_KINDS, TIP_KINDS
from callmeter.models import Call, Posting, Transfer, User

CALL_CHARGE = "call_charge"  # a line's kind for both parts of a call's charge
TIP = "tip"  # and for both parts of a tip (the host's and, when shared, the platform's)


@dataclass(frozen=True)
class Line:
    id: int  # the lowest posting id in the line: the next page is read before it
    kind: str
    amount: int  # signed: negative when coins left the account
    call_id: int | None
    created_at: datetime
    balance_after: int  # after the line's last posting


def _event(transfer: Transfer) -> tuple[str, int | None, datetime] | None:
    """What makes postings one line; None for a posting that is a line alone."""
    if transfer.call_id is None:
        return None
    if transfer.kind in CHARGE_KINDS:
        kind = CALL_CHARGE
    elif transfer.kind in TIP_KINDS:
        kind = TIP
    else:
        kind = transfer.kind
    return (kind, transfer.call_id, transfer.created_at)


def lines_of(rows: Sequence[tuple[Posting, Transfer]]) -> list[Line]:
    """Postings newest first (as the ledger lists them) → lines newest first. Pure."""
    lines: list[Line] = []
    last_event: tuple[str, int | None, datetime] | None = None
    for posting, transfer in rows:
        event = _event(transfer)
        if lines and event is not None and event == last_event:
            prev = lines[-1]
            lines[-1] = Line(
                id=posting.id,
                kind=prev.kind,
                amount=prev.amount + posting.amount,
                call_id=prev.call_id,
                created_at=prev.created_at,
                balance_after=prev.balance_after,  # the newest posting's, seen first
            )
        else:
            lines.append(
                Line(
                    id=posting.id,
                    kind=event[0] if event else transfer.kind,
                    amount=posting.amount,
                    call_id=transfer.call_id,
                    created_at=transfer.created_at,
                    balance_after=posting.balance_after,
                )
            )
        last_event = event
    return lines


@dataclass(frozen=True)
class CallFacts:
    """What a line says about its call, as seen by the statement's owner."""

    with_user_id: int
    with_name: str
    seconds: int | None  # a charge line's: the talk time it paid for


async def page(
    session: AsyncSession, user_id: int, *, limit: int, before: int | None
) -> tuple[list[Line], int | None]:
    """A page of at most ``limit`` lines before posting id ``before``, and the cursor of the
    next page (None when this is the last)."""
    # an event is a few postings on one account (a refund: up to three); the oldest line
    # read may be cut short, so it is left for the next page
    fetch = 3 * (limit + 1)
    rows = await ledger.statement(session, user_id, limit=fetch, before=before)
    lines = lines_of(rows)
    full = len(rows) == fetch
    if full:
        lines = lines[:-1]  # the oldest line may go on in the next rows: it leads the next page
    shown = lines[:limit]
    more = full or len(lines) > limit
    return shown, (shown[-1].id if more and shown else None)


async def everything(session: AsyncSession, user_id: int) -> AsyncIterator[list[Line]]:
    """Every line, newest first, a few hundred at a time (for the CSV export)."""
    before: int | None = None
    while True:
        lines, before = await page(session, user_id, limit=500, before=before)
        if lines:
            yield lines
        if before is None:
            return


async def call_facts(
    session: AsyncSession, viewer_id: int, lines: Sequence[Line]
) -> list[CallFacts | None]:
    """For each of ``lines``: the other party of its call and, for a charge, the talk time
    it paid for (the charge's coins, both parts, at the call's rate); None without a call."""
    call_ids = sorted({line.call_id for line in lines if line.call_id is not None})
    if not call_ids:
        return [None] * len(lines)
    calls = {c.id: c for c in await session.scalars(select(Call).where(Call.id.in_(call_ids)))}
    other = {c.id: c.host_id if c.client_id == viewer_id else c.client_id for c in calls.values()}
    names: dict[int, str] = {
        user_id: name
        for user_id, name in await session.execute(
            select(User.id, User.display_name).where(User.id.in_(sorted(set(other.values()))))
        )
    }
    charges = await session.execute(
        select(Transfer.call_id, Transfer.created_at, func.sum(Transfer.amount))
        .where(Transfer.call_id.in_(call_ids), Transfer.kind.in_([str(k) for k in CHARGE_KINDS]))
        .group_by(Transfer.call_id, Transfer.created_at)
    )
    charged = {(call_id, at): int(total) for call_id, at, total in charges}

    def facts(line: Line) -> CallFacts | None:
        call = calls.get(line.call_id) if line.call_id is not None else None
        if call is None:
            return None
        seconds = None
        if line.kind == CALL_CHARGE and call.rate > 0:
            coins = charged.get((call.id, line.created_at), 0)
            seconds = coins * call.interval_seconds // call.rate
        return CallFacts(other[call.id], names.get(other[call.id], ""), seconds)

    return [facts(line) for line in lines]
