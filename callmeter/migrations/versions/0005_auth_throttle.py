"""auth throttle: login and registration attempts recorded before the password is checked,
per username and per client address; addresses a user logged in from

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "auth_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.CheckConstraint("kind IN ('login', 'register')", name=op.f("ck_auth_attempts_kind")),
        sa.CheckConstraint(
            "state IN ('pending', 'failed', 'succeeded')", name=op.f("ck_auth_attempts_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_attempts")),
    )
    op.create_index(
        "ix_auth_attempts_kind_username_at", "auth_attempts", ["kind", "username", "at"]
    )
    op.create_index("ix_auth_attempts_kind_address_at", "auth_attempts", ["kind", "address", "at"])
    op.create_index("ix_auth_attempts_at", "auth_attempts", ["at"])

    op.create_table(
        "known_addresses",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_known_addresses_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "address", name=op.f("pk_known_addresses")),
    )

    # Failures kept for a minute: nothing worth carrying over.
    op.drop_index("ix_login_failures_username_at", table_name="login_failures")
    op.drop_table("login_failures")


def downgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", ID, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index("ix_login_failures_username_at", "login_failures", ["username", "at"])

    op.drop_table("known_addresses")
    op.drop_index("ix_auth_attempts_at", table_name="auth_attempts")
    op.drop_index("ix_auth_attempts_kind_address_at", table_name="auth_attempts")
    op.drop_index("ix_auth_attempts_kind_username_at", table_name="auth_attempts")
    op.drop_table("auth_attempts")
