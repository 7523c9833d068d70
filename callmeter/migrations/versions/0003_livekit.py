"""livekit presence, webhook inbox, media kick outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("room", sa.String(length=128), nullable=True),
        sa.Column("participant_identity", sa.String(length=128), nullable=True),
        sa.Column("participant_sid", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("handled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("source", "event_id", name=op.f("uq_webhook_events_source_event_id")),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_events_participant_sid", ["participant_sid"], unique=False
        )

    op.create_table(
        "media_kicks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("call_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("room", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_media_kicks_call_id_calls")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_kicks")),
        sa.UniqueConstraint("call_id", name=op.f("uq_media_kicks_call_id")),
    )
    with op.batch_alter_table("media_kicks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_media_kicks_next_attempt_at",
            ["next_attempt_at"],
            unique=False,
            sqlite_where=sa.text("done_at IS NULL"),
            postgresql_where=sa.text("done_at IS NULL"),
        )

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_lk_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("host_lk_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("client_left_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("host_left_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("host_left_at")
        batch_op.drop_column("client_left_at")
        batch_op.drop_column("host_lk_sid")
        batch_op.drop_column("client_lk_sid")

    with op.batch_alter_table("media_kicks", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_media_kicks_next_attempt_at",
            sqlite_where=sa.text("done_at IS NULL"),
            postgresql_where=sa.text("done_at IS NULL"),
        )

    op.drop_table("media_kicks")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_participant_sid")

    op.drop_table("webhook_events")
