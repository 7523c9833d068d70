"""purchases: coin packs bought through Stripe Checkout, the Stripe event inbox, the
platform's losses account and frozen clients

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KINDS = "('wallet', 'earnings', 'revenue', 'issuance', 'losses')"
EXTERNAL = "('issuance', 'losses')"


def upgrade() -> None:
    op.create_table(
        "purchases",
        sa.Column("id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("request_key", sa.String(length=200), nullable=False),
        sa.Column("pack_id", sa.String(length=32), nullable=False),
        sa.Column("coins", sa.BigInteger(), nullable=False),
        sa.Column("bonus_coins", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("unit_amount", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checkout_session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.String(length=2048), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("review_reason", sa.String(length=255), nullable=True),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("coins_reversed", sa.BigInteger(), nullable=False),
        sa.Column("dispute", sa.String(length=8), nullable=True),
        sa.Column("dispute_id", sa.String(length=255), nullable=True),
        sa.Column("dispute_hold_id", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "coins > 0 AND bonus_coins >= 0 AND unit_amount > 0 "
            "AND refunded_amount >= 0 AND coins_reversed >= 0 "
            "AND coins_reversed <= coins + bonus_coins",
            name=op.f("ck_purchases_amounts"),
        ),
        sa.CheckConstraint(
            "dispute IS NULL OR dispute IN ('open', 'won', 'lost')",
            name=op.f("ck_purchases_dispute"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'expired', 'failed', 'review')",
            name=op.f("ck_purchases_status"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_purchases_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("checkout_session_id", name=op.f("uq_purchases_checkout_session_id")),
        sa.UniqueConstraint(
            "user_id", "request_key", name=op.f("uq_purchases_user_id_request_key")
        ),
    )
    op.create_index("ix_purchases_user_id_id", "purchases", ["user_id", "id"])
    op.create_index("ix_purchases_payment_intent_id", "purchases", ["payment_intent_id"])
    op.create_table(
        "payment_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=True),
        sa.Column("purchase_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=255), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_payment_events_event_id")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frozen_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("frozen_reason", sa.String(length=255), nullable=True))
    _account_kinds(KINDS, EXTERNAL, "external_holds_nothing", "issuance_holds_nothing")
    op.execute(
        "INSERT INTO accounts (kind, user_id, balance, held, created_at) "
        "VALUES ('losses', NULL, 0, 0, CURRENT_TIMESTAMP)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM accounts WHERE kind = 'losses'")
    _account_kinds(
        "('wallet', 'earnings', 'revenue', 'issuance')",
        "('issuance')",
        "issuance_holds_nothing",
        "external_holds_nothing",
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("frozen_reason")
        batch_op.drop_column("frozen_at")
    op.drop_table("payment_events")
    op.drop_index("ix_purchases_payment_intent_id", table_name="purchases")
    op.drop_index("ix_purchases_user_id_id", table_name="purchases")
    op.drop_table("purchases")


def _account_kinds(kinds: str, external: str, holds_nothing: str, old_holds_nothing: str) -> None:
    """The accounts' kind constraints (SQLite rebuilds the table: see kit/migrate.py)."""
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint("kind", type_="check")
        batch_op.drop_constraint("available", type_="check")
        batch_op.drop_constraint(old_holds_nothing, type_="check")
        batch_op.create_check_constraint("kind", f"kind IN {kinds}")
        batch_op.create_check_constraint(
            "available", f"held >= 0 AND (kind IN {external} OR balance >= held)"
        )
        batch_op.create_check_constraint(holds_nothing, f"kind NOT IN {external} OR held = 0")
