"""payouts: hosts withdraw matured earnings through a payout_clearing account; hosts'
Stripe Connect accounts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KINDS = "('wallet', 'earnings', 'revenue', 'issuance', 'losses', 'payout_clearing')"
OLD_KINDS = "('wallet', 'earnings', 'revenue', 'issuance', 'losses')"


def upgrade() -> None:
    op.create_table(
        "payouts",
        sa.Column("id", ID, nullable=False),
        sa.Column("host_id", ID, nullable=False),
        sa.Column("request_key", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hold_id", sa.BigInteger(), nullable=True),
        sa.Column("matured_at_request", sa.BigInteger(), nullable=False),
        sa.Column("coins_returned", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("reviewed_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "amount > 0 AND rate > 0 AND amount_minor > 0 AND coins_returned >= 0 "
            "AND coins_returned <= amount",
            name=op.f("ck_payouts_amounts"),
        ),
        sa.CheckConstraint(
            "status IN ('requested', 'approved', 'paid', 'failed', 'reversed', 'rejected')",
            name=op.f("ck_payouts_status"),
        ),
        sa.ForeignKeyConstraint(["host_id"], ["users.id"], name=op.f("fk_payouts_host_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("host_id", "request_key", name=op.f("uq_payouts_host_id_request_key")),
    )
    op.create_index("ix_payouts_host_id_id", "payouts", ["host_id", "id"])
    op.create_index("ix_payouts_status_id", "payouts", ["status", "id"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_account_id", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("payouts_enabled", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_unique_constraint("uq_users_stripe_account_id", ["stripe_account_id"])
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.create_check_constraint("kind", f"kind IN {KINDS}")
    op.execute(
        "INSERT INTO accounts (kind, user_id, balance, held, created_at) "
        "VALUES ('payout_clearing', NULL, 0, 0, CURRENT_TIMESTAMP)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM accounts WHERE kind = 'payout_clearing'")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.create_check_constraint("kind", f"kind IN {OLD_KINDS}")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_users_stripe_account_id", type_="unique")
        batch_op.drop_column("payouts_enabled")
        batch_op.drop_column("stripe_account_id")
    op.drop_index("ix_payouts_status_id", table_name="payouts")
    op.drop_index("ix_payouts_host_id_id", table_name="payouts")
    op.drop_table("payouts")
