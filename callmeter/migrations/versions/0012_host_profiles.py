"""host profiles: a bio, languages and tags on the host, and an avatar (a small JPEG the
server made from the upload) in its own table

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bio", sa.String(1000), nullable=True))
        batch_op.add_column(sa.Column("languages", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=True))
    op.create_table(
        "host_avatars",
        sa.Column("host_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["users.id"], name=op.f("fk_host_avatars_host_id_users")
        ),
        sa.PrimaryKeyConstraint("host_id", name=op.f("pk_host_avatars")),
    )


def downgrade() -> None:
    op.drop_table("host_avatars")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("tags")
        batch_op.drop_column("languages")
        batch_op.drop_column("bio")
