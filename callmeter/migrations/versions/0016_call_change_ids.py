"""call change ids: on PostgreSQL a call's change of version notifies channel
callmeter_calls with the call's id (one notification per changed row; a new call, a
signal and a message still notify with an empty payload, once per statement), so a process
that keeps calls in memory (the heartbeat's, ``calls.beats``) knows which one to forget

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION callmeter_notify_call_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('callmeter_calls', NEW.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute("DROP TRIGGER calls_notify ON calls")
    op.execute(
        "CREATE TRIGGER calls_notify AFTER INSERT ON calls "
        "FOR EACH STATEMENT EXECUTE FUNCTION callmeter_notify_calls()"
    )
    # Only a real change of version: the meter's batch sets it on every row it settles,
    # changed or not.
    op.execute(
        "CREATE TRIGGER calls_notify_changed AFTER UPDATE OF version ON calls FOR EACH ROW "
        "WHEN (OLD.version IS DISTINCT FROM NEW.version) "
        "EXECUTE FUNCTION callmeter_notify_call_changed()"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER calls_notify_changed ON calls")
    op.execute("DROP TRIGGER calls_notify ON calls")
    op.execute(
        "CREATE TRIGGER calls_notify AFTER INSERT OR UPDATE OF version ON calls "
        "FOR EACH STATEMENT EXECUTE FUNCTION callmeter_notify_calls()"
    )
    op.execute("DROP FUNCTION callmeter_notify_call_changed()")
