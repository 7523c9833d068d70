"""call notifications: on PostgreSQL, a change a party sees (a call's version, a new call,
a new signal) notifies channel callmeter_calls, once per statement, so every process's
change feed reads again at once (SQLite has no notifications: its feeds poll)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION callmeter_notify_calls() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('callmeter_calls', '');
            RETURN NULL;
        END
        $$
        """
    )
    # Statement-level: one notification per statement however many rows it writes (the
    # meter's batch), and identical notifications of one transaction are delivered once.
    # UPDATE OF version: a heartbeat that only records presence notifies nobody.
    op.execute(
        "CREATE TRIGGER calls_notify AFTER INSERT OR UPDATE OF version ON calls "
        "FOR EACH STATEMENT EXECUTE FUNCTION callmeter_notify_calls()"
    )
    op.execute(
        "CREATE TRIGGER call_signals_notify AFTER INSERT ON call_signals "
        "FOR EACH STATEMENT EXECUTE FUNCTION callmeter_notify_calls()"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER call_signals_notify ON call_signals")
    op.execute("DROP TRIGGER calls_notify ON calls")
    op.execute("DROP FUNCTION callmeter_notify_calls()")
