"""call messages: a call's chat (text, tips, the call's own events), delivered on its stream

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "call_messages",
        sa.Column("id", ID, nullable=False),
        sa.Column("call_id", ID, nullable=False),
        sa.Column("sender_id", ID, nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("body", sa.String(4000), nullable=False),
        sa.Column("client_msg_id", sa.String(64), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("transfer_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('text', 'tip', 'system')", name=op.f("ck_call_messages_kind")),
        sa.CheckConstraint(
            "amount IS NULL OR amount > 0", name=op.f("ck_call_messages_amount_positive")
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_messages_call_id_calls")
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["users.id"], name=op.f("fk_call_messages_sender_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_call_messages_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_messages")),
    )
    op.create_index(
        "uq_call_messages_call_id_sender_id_client_msg_id",
        "call_messages",
        ["call_id", "sender_id", "client_msg_id"],
        unique=True,
    )
    op.create_index("ix_call_messages_call_id_id", "call_messages", ["call_id", "id"])
    op.create_index(
        "ix_call_messages_call_id_sender_id_created_at",
        "call_messages",
        ["call_id", "sender_id", "created_at"],
    )
    if op.get_context().dialect.name == "postgresql":
        # a message wakes every process's call feed, as a signal does (migration 0009)
        op.execute(
            "CREATE TRIGGER call_messages_notify AFTER INSERT ON call_messages "
            "FOR EACH STATEMENT EXECUTE FUNCTION callmeter_notify_calls()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER call_messages_notify ON call_messages")
    op.drop_index("ix_call_messages_call_id_sender_id_created_at", table_name="call_messages")
    op.drop_index("ix_call_messages_call_id_id", table_name="call_messages")
    op.drop_index("uq_call_messages_call_id_sender_id_client_msg_id", table_name="call_messages")
    op.drop_table("call_messages")
