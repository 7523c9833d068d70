from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from callmeter.models.base import Base, Id, UTCDateTime


class CallStatus(enum.StrEnum):
    """ringing → (host accepts) connecting → (both connected) active → ended."""

    ringing = "ringing"
    connecting = "connecting"
    active = "active"
    ended = "ended"


class EndReason(enum.StrEnum):
    # from ringing or connecting: never billed
    declined = "declined"
    cancelled = "cancelled"
    missed = "missed"  # ring timeout
    connect_failed = "connect_failed"  # connect timeout
    # from active
    client_hangup = "client_hangup"
    host_hangup = "host_hangup"
    insufficient_funds = "insufficient_funds"
    connection_lost = "connection_lost"  # heartbeat timeout
    media_left = "media_left"  # LiveKit: a party left or the room finished
    admin = "admin"
    account_frozen = "account_frozen"  # a payment dispute froze the client's account


# Endings of a call that never connected: the host was rung (and perhaps picked up), nobody
# talked. They count towards the re-ring cool-down.
NEVER_CONNECTED = (
    EndReason.declined,
    EndReason.cancelled,
    EndReason.missed,
    EndReason.connect_failed,
)

UNFINISHED = text("status != 'ended'")


class Call(Base):
    """A call and its billing state. ``version`` is the compare-and-set guard: every
    change of billing state is ``UPDATE … WHERE id = :id AND version = :v``."""

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint("status IN ('ringing', 'connecting', 'active', 'ended')", name="status"),
        CheckConstraint(
            "charged >= 0 AND host_earned >= 0 AND host_earned <= charged "
            "AND refunded >= 0 AND refunded <= charged",
            name="amounts",
        ),
        CheckConstraint("rate > 0 AND interval_seconds > 0", name="tariff"),
        CheckConstraint("client_id != host_id", name="two_parties"),
        # A client and a host each have at most one unfinished call.
        Index(
            "ix_calls_client_unfinished",
            "client_id",
            unique=True,
            sqlite_where=UNFINISHED,
            postgresql_where=UNFINISHED,
        ),
        Index(
            "ix_calls_host_unfinished",
            "host_id",
            unique=True,
            sqlite_where=UNFINISHED,
            postgresql_where=UNFINISHED,
        ),
        # What the meter picks: unfinished calls by the next moment they need attention.
        Index(
            "ix_calls_due_at",
            "due_at",
            sqlite_where=UNFINISHED,
            postgresql_where=UNFINISHED,
        ),
        Index("ix_calls_client_id_id", "client_id", "id"),
        # A client's recently ended calls: the re-ring cool-down and the unanswered-ring limit.
        Index("ix_calls_client_id_ended_at", "client_id", "ended_at"),
        Index("ix_calls_host_id_id", "host_id", "id"),
        Index("ix_calls_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16))
    end_reason: Mapped[str | None] = mapped_column(String(32))

    # the tariff, snapshotted at creation
    policy: Mapped[str] = mapped_column(String(32))
    rate: Mapped[int] = mapped_column(BigInteger)
    interval_seconds: Mapped[int] = mapped_column(Integer)
    free_seconds: Mapped[int] = mapped_column(Integer)
    host_share_percent: Mapped[int] = mapped_column(Integer)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    billed_seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    charged: Mapped[int] = mapped_column(BigInteger, default=0)
    host_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id"))
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_charge_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    warning: Mapped[str | None] = mapped_column(String(16))

    client_last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    host_last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    client_media_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    host_media_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # LiveKit presence: the participant sid LiveKit last reported for each party, and when
    # that participant left (cleared when the party rejoins within the grace period).
    client_lk_sid: Mapped[str | None] = mapped_column(String(64))
    host_lk_sid: Mapped[str | None] = mapped_column(String(64))
    client_left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    host_left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    media_provider: Mapped[str] = mapped_column(String(16))
    room: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=0)

    # Every ORM UPDATE of a call is "… WHERE id = :id AND version = :old"; the services bump
    # the version themselves whenever the state a client sees changes.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}  # noqa: RUF012


# A call that has not ended, in queries (the partial indexes above say it in SQL).
NOT_ENDED = Call.status != CallStatus.ended


class CallSignal(Base):
    """A peer-to-peer signaling message (offer, answer, ICE, restart) for the other party."""

    __tablename__ = "call_signals"
    __table_args__ = (
        CheckConstraint("type IN ('offer', 'answer', 'ice', 'restart')", name="type"),
        Index("ix_call_signals_call_id_recipient_id_id", "call_id", "recipient_id", "id"),
        # the per-sender rate limit counts a call's recent signals by sender
        Index("ix_call_signals_call_id_sender_id_created_at", "call_id", "sender_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    type: Mapped[str] = mapped_column(String(16))
    payload: Mapped[object] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MessageKind(enum.StrEnum):
    text = "text"  # typed by a party
    tip = "tip"  # a client's tip: ``amount`` coins moved to the host's earnings
    system = "system"  # the call's own events, ``body`` a code: connected, ended, …


class CallMessage(Base):
    """A line of a call's chat: text from a party, a tip, or one of the call's events.

    A party's retry carries the same ``client_msg_id``: unique per call and sender, so a
    message (or a tip) is stored once however often it is sent."""

    __tablename__ = "call_messages"
    __table_args__ = (
        CheckConstraint("kind IN ('text', 'tip', 'system')", name="kind"),
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
        Index(
            "uq_call_messages_call_id_sender_id_client_msg_id",
            "call_id",
            "sender_id",
            "client_msg_id",
            unique=True,
        ),
        # the history of a call in order, and the per-sender rate limit
        Index("ix_call_messages_call_id_id", "call_id", "id"),
        Index(
            "ix_call_messages_call_id_sender_id_created_at", "call_id", "sender_id", "created_at"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the system
    kind: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(String(4000))
    client_msg_id: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int | None] = mapped_column(BigInteger)  # a tip's coins
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"))  # a tip's
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
