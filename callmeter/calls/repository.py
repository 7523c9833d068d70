"""Call queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Table,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from callmeter.billing.settlement import CALL_COLUMNS, ONGOING_COLUMNS, STATE_FIELDS, Outcome
from callmeter.config import Settings
from callmeter.errors import ConcurrentUpdate
from callmeter.kit.bulk import id_in, update_rows
from callmeter.kit.lease import claim_due
from callmeter.models import (
    Account,
    AccountKind,
    Call,
    CallMessage,
    CallSignal,
    CallStatus,
    Transfer,
    User,
)
from callmeter.models.call import NEVER_CONNECTED
from callmeter.models.call import NOT_ENDED as NOT_ENDED  # the meter's too


async def get_call(session: AsyncSession, call_id: int) -> Call | None:
    result = await session.execute(
        select(Call).where(Call.id == call_id).execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


async def lock_call(session: AsyncSession, call_id: int) -> Call | None:
    """The call, its row locked until the transaction ends (the first lock of every
    change to a call; SQLite's BEGIN IMMEDIATE already serializes writers)."""
    result = await session.execute(
        select(Call)
        .where(Call.id == call_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.scalar_one_or_none()


@dataclass(frozen=True)
class PresenceCheck:
    """A heartbeat of ``party`` (``user_id``) on call ``call_id`` at ``now``."""

    call_id: int
    party: str
    user_id: int
    now: datetime
    timeout: timedelta  # the heartbeat timeout
    look: timedelta  # how far ahead a LiveKit call's next look may be
    coalesce: timedelta  # a last-seen more recent than this is not written again

    @classmethod
    def of(
        cls, settings: Settings, call_id: int, party: str, user_id: int, now: datetime,
        coalesce: timedelta,
    ) -> PresenceCheck:  # fmt: skip
        return cls(
            call_id=call_id,
            party=party,
            user_id=user_id,
            now=now,
            timeout=timedelta(seconds=settings.heartbeat_timeout_seconds),
            look=timedelta(seconds=settings.livekit_reconcile_seconds),
            coalesce=coalesce,
        )


def _quietly_present(party: str, *, due_ok: bool = False) -> list[ColumnElement[bool]]:
    """The rows where a heartbeat only records presence (see ``service.quick_heartbeat``):
    ``party`` of this active call, both parties seen within the timeout, no charge, paid
    time or (LiveKit) departure due, the party in the room and the next look close enough.
    With ``due_ok``, a charge or the end of paid time may be due (someone else settles it:
    ``calls.beats``). Bound parameters (:func:`_presence_params`) carry the call, the user
    and the times."""
    now: BindParameter[datetime] = bindparam("now")
    own_lk_sid = getattr(Call, f"{party}_lk_sid")
    due: list[ColumnElement[bool]] = (
        [Call.next_charge_at.is_not(None), Call.paid_until.is_not(None)]
        if due_ok
        else [Call.next_charge_at > now, Call.paid_until > now]
    )
    return [
        Call.id == bindparam("call_id"),
        getattr(Call, f"{party}_id") == bindparam("user_id"),
        Call.status == CallStatus.active,
        *due,
        Call.client_last_seen_at > bindparam("seen_after"),
        Call.host_last_seen_at > bindparam("seen_after"),
        or_(
            Call.media_provider != "livekit",
            and_(
                own_lk_sid.is_not(None),
                Call.client_left_at.is_(None),
                Call.host_left_at.is_(None),
                Call.due_at <= bindparam("look_until"),
            ),
        ),
    ]


def _presence_params(check: PresenceCheck) -> dict[str, Any]:
    return {
        "call_id": check.call_id,
        "user_id": check.user_id,
        "now": check.now,
        "seen_after": check.now - check.timeout,
        "look_until": check.now + check.look,
        "coalesce_from": check.now - check.coalesce,
    }


# Built once per party: a heartbeat is the hottest request there is, and building the
# statement cost more than the rest of its Python work (SQLAlchemy caches the compiled
# SQL, not the expression objects).
# Keyed by (party, due_ok): see _quietly_present.
_RECORD_PRESENCE = {
    (party, due_ok): update(Call)
    .where(
        *_quietly_present(party, due_ok=due_ok),
        getattr(Call, f"{party}_last_seen_at") < bindparam("coalesce_from"),
    )
    .values({getattr(Call, f"{party}_last_seen_at"): bindparam("now")})
    .returning(Call)
    .execution_options(synchronize_session=False, populate_existing=True)
    for party in ("client", "host")
    for due_ok in (False, True)
}
_RECENTLY_PRESENT = {
    (party, due_ok): select(Call)
    .where(
        *_quietly_present(party, due_ok=due_ok),
        getattr(Call, f"{party}_last_seen_at") >= bindparam("coalesce_from"),
    )
    .execution_options(populate_existing=True)
    for party in ("client", "host")
    for due_ok in (False, True)
}


async def record_presence(
    session: AsyncSession, check: PresenceCheck, *, due_ok: bool = False
) -> Call | None:
    """One ``UPDATE … RETURNING``: ``party`` was there at ``now``, on a call where that is
    all a heartbeat does (:func:`_quietly_present`; with ``due_ok``, a charge or the end of
    paid time may be due, for someone else to settle) and the party was last seen more than
    ``coalesce`` ago. None when any of it does not hold."""
    statement = _RECORD_PRESENCE[(check.party, due_ok)]
    result = await session.scalars(statement, _presence_params(check))
    return result.one_or_none()


# The same condition, for a batch of heartbeats' presence (``calls.beats``): each row's own
# moment, written only forward, no rows returned. A charge or the end of paid time may be
# due: the batch holds quiet beats (for which those hold anyway: both only move forward)
# and beats whose charge was left to the meter, which the batch's read-back brings due.
_WRITE_PRESENCE = {
    party: update(Call.__table__)  # type: ignore[arg-type]
    .where(
        *_quietly_present(party, due_ok=True),
        getattr(Call, f"{party}_last_seen_at") < bindparam("now"),
    )
    .values({f"{party}_last_seen_at": bindparam("now")})
    for party in ("client", "host")
}


async def record_presences(
    session: AsyncSession, checks: Sequence[PresenceCheck], *, skip_locked: bool = False
) -> list[PresenceCheck]:
    """:func:`record_presence` for many heartbeats at once (one executemany per party kind),
    each at its own moment. With ``skip_locked``, rows another transaction holds are
    passed by (nothing waits on a lock): returns the checks not written for that."""
    # the rows locked first, in id order (as every path that locks several calls does),
    # so two processes' batches never wait for each other in a cycle
    locked = set(
        await session.scalars(
            select(Call.id)
            .where(Call.id.in_(sorted({check.call_id for check in checks})))
            .order_by(Call.id)
            .with_for_update(skip_locked=skip_locked)
        )
    )
    passed = [check for check in checks if skip_locked and check.call_id not in locked]
    connection = await session.connection()
    for party in ("client", "host"):
        params = [
            _presence_params(check)
            for check in checks
            if check.party == party and (check.call_id in locked or not skip_locked)
        ]
        if params:
            await connection.execute(_WRITE_PRESENCE[party], params)
    return passed


# the meter listens here (PostgreSQL) and ticks at once when calls are brought due
DUE_CHANNEL = "callmeter_due"
# The meter says it is ticking here (at most once a second, after a tick that settled): API
# processes that heard it recently leave a charge that is due to it (calls.beats).
METER_CHANNEL = "callmeter_meter"


async def say_meter_ticks(session: AsyncSession) -> None:
    """The meter's beacon on ``METER_CHANNEL`` (PostgreSQL; sent when the transaction
    commits)."""
    await session.execute(select(func.pg_notify(METER_CHANNEL, "")))


async def bring_due(session: AsyncSession, call_ids: Sequence[int], now: datetime) -> None:
    """The meter looks at these active calls at ``now`` (sooner than it planned to): on
    PostgreSQL it is told so when this transaction commits, rather than at its next tick.
    The rows are locked in id order first, as every path that locks several calls does."""
    locked = (
        select(Call.id)
        .where(id_in(session, Call.id, call_ids), Call.status == CallStatus.active)
        .where(Call.due_at > now)
        .order_by(Call.id)
        .with_for_update()
    )
    brought = await session.scalars(
        update(Call)
        .where(Call.id.in_(locked.scalar_subquery()), Call.due_at > now)
        .values(due_at=now)
        .returning(Call.id)
        .execution_options(synchronize_session=False)
    )
    if brought.first() is not None and session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(DUE_CHANNEL, "")))


async def recently_present(
    session: AsyncSession, check: PresenceCheck, *, due_ok: bool = False
) -> Call | None:
    """The call, read without a lock or a write, when ``party`` was seen within
    ``coalesce`` and a heartbeat would only record presence (``due_ok``: as in
    :func:`record_presence`); else None."""
    statement = _RECENTLY_PRESENT[(check.party, due_ok)]
    result = await session.scalars(statement, _presence_params(check))
    return result.one_or_none()


async def has_unfinished_call(
    session: AsyncSession, *, client_id: int | None = None, host_id: int | None = None
) -> bool:
    condition = Call.client_id == client_id if client_id is not None else Call.host_id == host_id
    result = await session.execute(select(exists().where(condition, NOT_ENDED)))
    return bool(result.scalar())


async def lock_unfinished_call_of_client(session: AsyncSession, client_id: int) -> Call | None:
    """The client's unfinished call (at most one), row-locked."""
    call_id = await session.scalar(select(Call.id).where(Call.client_id == client_id, NOT_ENDED))
    return None if call_id is None else await lock_call(session, call_id)


async def client_is_frozen(session: AsyncSession, client_id: int) -> bool:
    """Whether the client's account is frozen, read under a share lock: a freeze waits for
    a call being created, and then ends it."""
    frozen_at = await session.scalar(
        select(User.frozen_at).where(User.id == client_id).with_for_update(read=True)
    )
    return frozen_at is not None


async def unfinished_calls(session: AsyncSession, *, client_id: int, host_id: int) -> list[Call]:
    """The unfinished calls of a client or of a host, in id order (the lock order), read
    without locking them."""
    result = await session.scalars(
        select(Call)
        .where(or_(Call.client_id == client_id, Call.host_id == host_id), NOT_ENDED)
        .order_by(Call.id)
    )
    return list(result)


async def last_unconnected_end(
    session: AsyncSession, *, client_id: int, host_id: int, since: datetime
) -> datetime | None:
    """When the latest call from ``client_id`` to ``host_id`` that never connected ended,
    if that was after ``since``."""
    result = await session.execute(
        select(func.max(Call.ended_at)).where(
            Call.client_id == client_id,
            Call.ended_at > since,
            Call.host_id == host_id,
            Call.end_reason.in_(NEVER_CONNECTED),
        )
    )
    ended: datetime | None = result.scalar()
    return ended


async def unanswered_ends(
    session: AsyncSession, *, client_id: int, since: datetime, limit: int
) -> list[datetime]:
    """When ``client_id``'s latest rings that no host picked up ended (at most ``limit``,
    newest first, none before ``since``)."""
    result = await session.scalars(
        select(Call.ended_at)
        .where(Call.client_id == client_id, Call.ended_at > since, Call.accepted_at.is_(None))
        .order_by(Call.ended_at.desc())
        .limit(limit)
    )
    return [ended for ended in result.all() if ended is not None]


async def ringing_call_id(session: AsyncSession, *, client_id: int, host_id: int) -> int | None:
    result = await session.execute(
        select(Call.id).where(
            Call.client_id == client_id,
            Call.host_id == host_id,
            Call.status == CallStatus.ringing,
        )
    )
    return result.scalar_one_or_none()


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
    query = select(Call).order_by(Call.id.desc()).limit(limit)
    if since is not None:
        query = query.where(Call.created_at >= since)
    if until is not None:
        query = query.where(Call.created_at < until)
    if user_id is not None:
        query = query.where(or_(Call.client_id == user_id, Call.host_id == user_id))
    if status is not None:
        query = query.where(Call.status == status)
    if before is not None:
        query = query.where(Call.id < before)
    return list((await session.scalars(query)).all())


@dataclass(frozen=True)
class DueCall:
    id: int
    status: str
    media_provider: str
    room: str


async def claim_due_calls(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[DueCall]:
    """Take up to ``limit`` calls that need attention at ``now`` and push their ``due_at``
    to ``lease_until`` so that other workers pass them by while this one works on them
    (a crashed worker's calls come due again when the lease runs out)."""
    rows = await claim_due(
        session,
        id_column=Call.id,
        due_column=Call.due_at,
        where=[NOT_ENDED],
        now=now,
        lease_until=lease_until,
        limit=limit,
        returning=[Call.id, Call.status, Call.media_provider, Call.room],
    )
    claimed = [DueCall(r.id, r.status, r.media_provider, r.room) for r in rows]
    return sorted(claimed, key=lambda due: due.id)


async def add_signal(session: AsyncSession, signal: CallSignal) -> None:
    session.add(signal)
    await session.flush()


_IN_CHUNK = 5000  # ids per IN list: far below any driver's bound parameter limit


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]


async def versions_of(session: AsyncSession, call_ids: Sequence[int]) -> dict[int, int]:
    """The version of each of ``call_ids`` that exists."""
    versions: dict[int, int] = {}
    for chunk in _chunks(call_ids):
        rows = await session.execute(
            select(Call.id, Call.version).where(id_in(session, Call.id, chunk))
        )
        versions.update((call_id, version) for call_id, version in rows)
    return versions


async def calls_by_id(session: AsyncSession, call_ids: Sequence[int]) -> list[Call]:
    calls: list[Call] = []
    for chunk in _chunks(call_ids):
        result = await session.scalars(
            select(Call)
            .where(id_in(session, Call.id, chunk))
            .execution_options(populate_existing=True)
        )
        calls.extend(result)
    return calls


# what a call's stream delivers besides the call: signals (to one party) and messages (to both)
Delivered = TypeVar("Delivered", CallSignal, CallMessage)


async def to_deliver(
    session: AsyncSession,
    model: type[Delivered],
    call_ids: Sequence[int],
    after_id: int,
    since: datetime,
) -> list[Delivered]:
    """The signals or messages of ``call_ids`` after ``after_id`` or created at ``since`` or
    later, in id order."""
    rows: list[Delivered] = []
    for chunk in _chunks(call_ids):
        result = await session.scalars(
            select(model)
            .where(
                id_in(session, model.call_id, chunk),
                or_(model.id > after_id, model.created_at >= since),
            )
            .order_by(model.id)
        )
        rows.extend(result)
    if len(call_ids) > _IN_CHUNK:
        rows.sort(key=lambda row: row.id)
    return rows


async def by_ids(
    session: AsyncSession, model: type[Delivered], ids: Sequence[int]
) -> list[Delivered]:
    """The signals or messages with these ids (those that exist), in id order."""
    rows: list[Delivered] = []
    for chunk in _chunks(ids):
        result = await session.scalars(select(model).where(id_in(session, model.id, chunk)))
        rows.extend(result)
    rows.sort(key=lambda row: row.id)
    return rows


async def of_calls_after(
    session: AsyncSession, model: type[Delivered], call_ids: Sequence[int], after_id: int
) -> list[Delivered]:
    """The signals or messages of ``call_ids`` after ``after_id``, in id order."""
    rows: list[Delivered] = []
    for chunk in _chunks(call_ids):
        result = await session.scalars(
            select(model)
            .where(id_in(session, model.call_id, chunk), model.id > after_id)
            .order_by(model.id)
        )
        rows.extend(result)
    if len(call_ids) > _IN_CHUNK:
        rows.sort(key=lambda row: row.id)
    return rows


async def signals_after(
    session: AsyncSession, *, call_id: int, recipient_id: int, after_id: int, limit: int = 100
) -> list[CallSignal]:
    result = await session.scalars(
        select(CallSignal)
        .where(
            and_(
                CallSignal.call_id == call_id,
                CallSignal.recipient_id == recipient_id,
                CallSignal.id > after_id,
            )
        )
        .order_by(CallSignal.id)
        .limit(limit)
    )
    return list(result.all())


async def recent_signals(
    session: AsyncSession, *, call_id: int, sender_id: int, since: datetime
) -> tuple[int, datetime | None]:
    """How many signals ``sender_id`` sent on the call after ``since``, and the oldest one's
    time."""
    result = await session.execute(
        select(func.count(), func.min(CallSignal.created_at)).where(
            CallSignal.call_id == call_id,
            CallSignal.sender_id == sender_id,
            CallSignal.created_at > since,
        )
    )
    count, oldest = result.one()
    return int(count), oldest


async def count_signals(session: AsyncSession, call_id: int) -> int:
    result = await session.execute(
        select(func.count()).select_from(CallSignal).where(CallSignal.call_id == call_id)
    )
    return int(result.scalar_one())


CALLS = cast(Table, Call.__table__)
Wallet = aliased(Account, name="wallet")
Earnings = aliased(Account, name="earnings")


async def lock_due_calls(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Any]:
    """Up to ``limit`` unfinished calls due at ``now``, oldest due first, locked (``SKIP
    LOCKED``: another worker's calls are left to it), as rows with every settlement field
    (``billing.settlement.STATE_FIELDS``), ``due_at``, ``hold_id``, ``media_provider``,
    ``room`` and the ids of the client's wallet and the host's earnings."""
    rows = await session.execute(
        select(
            *(getattr(Call, name) for name in STATE_FIELDS),
            Call.due_at,
            Call.hold_id,
            Call.media_provider,
            Call.room,
            Wallet.id.label("wallet_id"),
            Earnings.id.label("earnings_id"),
        )
        .outerjoin(
            Wallet, and_(Wallet.user_id == Call.client_id, Wallet.kind == AccountKind.wallet)
        )
        .outerjoin(
            Earnings,
            and_(Earnings.user_id == Call.host_id, Earnings.kind == AccountKind.earnings),
        )
        .where(NOT_ENDED, Call.due_at <= now)
        .order_by(Call.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Call.__table__)
    )
    return rows.all()


async def lease(session: AsyncSession, call_ids: Sequence[int], until: datetime) -> None:
    """Push these calls' ``due_at`` to ``until``: another worker leaves them alone."""
    if call_ids:
        await session.execute(
            update(Call)
            .where(Call.id.in_(call_ids))
            .values(due_at=until)
            .execution_options(synchronize_session=False)
        )


async def save_outcomes(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Write planned settlements onto their call rows, each a compare-and-set on
    ``version`` as every ORM update of a call is: one statement for the calls that stay
    active (their billing columns only) and one for those that end. Every row is locked by
    this transaction, so each must change; a miss rolls the whole batch back."""
    ongoing = [o for o in outcomes if not o.ended]
    ending = [o for o in outcomes if o.ended] if len(ongoing) < len(outcomes) else []
    for group, columns in ((ongoing, ONGOING_COLUMNS), (ending, CALL_COLUMNS)):
        if group:
            await _save(session, group, columns)


async def _save(session: AsyncSession, outcomes: Sequence[Outcome], columns: Sequence[str]) -> None:
    read = attrgetter("call_id", "old_version", *columns)
    names = ("id", "old_version", *columns)
    rows = [dict(zip(names, read(o), strict=True)) for o in outcomes]
    changed = await update_rows(
        session,
        CALLS,
        rows,
        where={"id": "id", "old_version": "version"},
        assign={name: name for name in columns},
    )
    if changed is not None and changed != len(rows):
        raise ConcurrentUpdate(f"a settlement changed {changed} call rows, not {len(rows)}")


async def display_names(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    """Display names by user id (a page of calls names at most twice its size)."""
    rows = await session.execute(
        select(User.id, User.display_name).where(User.id.in_(sorted(user_ids)))
    )
    return {user_id: name for user_id, name in rows}


async def add_message(session: AsyncSession, message: CallMessage) -> None:
    session.add(message)
    await session.flush()


async def message_sent(
    session: AsyncSession, *, call_id: int, sender_id: int, client_msg_id: str
) -> CallMessage | None:
    """The message ``sender_id`` already sent on the call with ``client_msg_id``."""
    result = await session.scalars(
        select(CallMessage).where(
            CallMessage.call_id == call_id,
            CallMessage.sender_id == sender_id,
            CallMessage.client_msg_id == client_msg_id,
        )
    )
    return result.first()


async def recent_messages(
    session: AsyncSession, *, call_id: int, sender_id: int, since: datetime
) -> tuple[int, datetime | None]:
    """How many messages and tips ``sender_id`` sent on the call after ``since``, and the
    oldest one's time."""
    result = await session.execute(
        select(func.count(), func.min(CallMessage.created_at)).where(
            CallMessage.call_id == call_id,
            CallMessage.sender_id == sender_id,
            CallMessage.kind.in_(("text", "tip")),
            CallMessage.created_at > since,
        )
    )
    count, oldest = result.one()
    return int(count), oldest


async def count_messages(session: AsyncSession, call_id: int) -> int:
    """The call's text messages (tips are bounded by coins and the pace, the call's own
    story is not the parties' to fill)."""
    result = await session.execute(
        select(func.count())
        .select_from(CallMessage)
        .where(CallMessage.call_id == call_id, CallMessage.kind == "text")
    )
    return int(result.scalar_one())


async def messages_after(
    session: AsyncSession, *, call_id: int, after_id: int, limit: int
) -> list[CallMessage]:
    """A call's messages after ``after_id``, oldest first."""
    result = await session.scalars(
        select(CallMessage)
        .where(CallMessage.call_id == call_id, CallMessage.id > after_id)
        .order_by(CallMessage.id)
        .limit(limit)
    )
    return list(result.all())


async def money_of_call(
    session: AsyncSession, call_id: int, kinds: Sequence[str]
) -> list[tuple[datetime, str, int]]:
    """The call's transfers of ``kinds`` as (time, kind, coins), one per moment and kind (a
    charge's two parts are one), oldest first."""
    rows = await session.execute(
        select(Transfer.created_at, Transfer.kind, func.sum(Transfer.amount))
        .where(Transfer.call_id == call_id, Transfer.kind.in_(kinds))
        .group_by(Transfer.created_at, Transfer.kind)
        .order_by(Transfer.created_at, Transfer.kind)
    )
    return [(at, kind, int(coins)) for at, kind, coins in rows]
