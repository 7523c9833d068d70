"""request limits: an index for the per-sender signal rate limit

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_signals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_signals_call_id_sender_id_created_at",
            ["call_id", "sender_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("call_signals", schema=None) as batch_op:
        batch_op.drop_index("ix_call_signals_call_id_sender_id_created_at")
