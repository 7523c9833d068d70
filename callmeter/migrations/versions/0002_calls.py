"""calls, call signals, host rate and availability

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("host_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column("rate", sa.BigInteger(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("free_seconds", sa.Integer(), nullable=False),
        sa.Column("host_share_percent", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("billed_seconds", sa.BigInteger(), nullable=False),
        sa.Column("charged", sa.BigInteger(), nullable=False),
        sa.Column("host_earned", sa.BigInteger(), nullable=False),
        sa.Column("refunded", sa.BigInteger(), nullable=False),
        sa.Column("hold_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("paid_until", sa.DateTime(), nullable=True),
        sa.Column("next_charge_at", sa.DateTime(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("warning", sa.String(length=16), nullable=True),
        sa.Column("client_last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("host_last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("client_media_at", sa.DateTime(), nullable=True),
        sa.Column("host_media_at", sa.DateTime(), nullable=True),
        sa.Column("media_provider", sa.String(length=16), nullable=False),
        sa.Column("room", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('ringing', 'connecting', 'active', 'ended')", name=op.f("ck_calls_status")
        ),
        sa.CheckConstraint(
            "charged >= 0 AND host_earned >= 0 AND host_earned <= charged "
            "AND refunded >= 0 AND refunded <= charged",
            name=op.f("ck_calls_amounts"),
        ),
        sa.CheckConstraint("client_id != host_id", name=op.f("ck_calls_two_parties")),
        sa.CheckConstraint("rate > 0 AND interval_seconds > 0", name=op.f("ck_calls_tariff")),
        sa.ForeignKeyConstraint(["client_id"], ["users.id"], name=op.f("fk_calls_client_id_users")),
        sa.ForeignKeyConstraint(["hold_id"], ["holds.id"], name=op.f("fk_calls_hold_id_holds")),
        sa.ForeignKeyConstraint(["host_id"], ["users.id"], name=op.f("fk_calls_host_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_client_id_id", ["client_id", "id"], unique=False)
        batch_op.create_index(
            "ix_calls_client_unfinished",
            ["client_id"],
            unique=True,
            sqlite_where=sa.text("status != 'ended'"),
            postgresql_where=sa.text("status != 'ended'"),
        )
        batch_op.create_index(
            "ix_calls_due_at",
            ["due_at"],
            unique=False,
            sqlite_where=sa.text("status != 'ended'"),
            postgresql_where=sa.text("status != 'ended'"),
        )
        batch_op.create_index("ix_calls_host_id_id", ["host_id", "id"], unique=False)
        batch_op.create_index(
            "ix_calls_host_unfinished",
            ["host_id"],
            unique=True,
            sqlite_where=sa.text("status != 'ended'"),
            postgresql_where=sa.text("status != 'ended'"),
        )
        batch_op.create_index("ix_calls_status_id", ["status", "id"], unique=False)

    op.create_table(
        "call_signals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("call_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "sender_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("type IN ('offer', 'answer', 'ice')", name=op.f("ck_call_signals_type")),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_signals_call_id_calls")
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["users.id"], name=op.f("fk_call_signals_recipient_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["users.id"], name=op.f("fk_call_signals_sender_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_signals")),
    )
    with op.batch_alter_table("call_signals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_signals_call_id_recipient_id_id",
            ["call_id", "recipient_id", "id"],
            unique=False,
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("accepting_calls", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("accepting_calls")
        batch_op.drop_column("rate")

    with op.batch_alter_table("call_signals", schema=None) as batch_op:
        batch_op.drop_index("ix_call_signals_call_id_recipient_id_id")

    op.drop_table("call_signals")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_status_id")
        batch_op.drop_index(
            "ix_calls_host_unfinished",
            sqlite_where=sa.text("status != 'ended'"),
            postgresql_where=sa.text("status != 'ended'"),
        )
        batch_op.drop_index("ix_calls_host_id_id")
        batch_op.drop_index(
            "ix_calls_due_at",
            sqlite_where=sa.text("status != 'ended'"),
            postgresql_where=sa.text("status != 'ended'"),
        )
        batch_op.drop_index(
            "ix_calls_client_unfinished",
            sqlite_where=sa.text("status != 'ended'"),
            postgresql_where=sa.text("status != 'ended'"),
        )
        batch_op.drop_index("ix_calls_client_id_id")

    op.drop_table("calls")
