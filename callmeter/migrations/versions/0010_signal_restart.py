"""signal type restart: a party whose page joined a call again (a reload, a return to the
call page) asks the other side for a fresh offer (docs/api.md, peer-to-peer media)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call_signals", schema=None) as batch_op:
        batch_op.drop_constraint("type", type_="check")
        batch_op.create_check_constraint("type", "type IN ('offer', 'answer', 'ice', 'restart')")


def downgrade() -> None:
    op.execute("DELETE FROM call_signals WHERE type = 'restart'")
    with op.batch_alter_table("call_signals", schema=None) as batch_op:
        batch_op.drop_constraint("type", type_="check")
        batch_op.create_check_constraint("type", "type IN ('offer', 'answer', 'ice')")
