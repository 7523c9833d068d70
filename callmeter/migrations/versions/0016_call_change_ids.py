"""change ids: on PostgreSQL a notification on channel callmeter_calls says what changed —
``<id>`` a call's version, ``s<id>`` a new signal, ``m<id>`` a new message (one notification
per row; a new call still notifies with an empty payload, once per statement) — so a
process's call feed reads only those rows, and the heartbeat's memory (``calls.beats``)
knows which call to forget

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

# (trigger, table, event, function, payload)
ROW_TRIGGERS = (
    ("calls_notify_changed", "calls", "UPDATE OF version", "callmeter_notify_call", "NEW.id::text"),
    ("call_signals_notify", "call_signals", "INSERT", "callmeter_notify_signal", "'s' || NEW.id"),
    (
        "call_messages_notify",
        "call_messages",
        "INSERT",
        "callmeter_notify_message",
        "'m' || NEW.id",
    ),
)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER calls_notify ON calls")
    op.execute("DROP TRIGGER call_signals_notify ON call_signals")
    op.execute("DROP TRIGGER call_messages_notify ON call_messages")
    op.execute(
        "CREATE TRIGGER calls_notify AFTER INSERT ON calls "
        "FOR EACH STATEMENT EXECUTE FUNCTION callmeter_notify_calls()"
    )
    for trigger, table, event, function, payload in ROW_TRIGGERS:
        op.execute(
            f"""
            CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('callmeter_calls', {payload});
                RETURN NULL;
            END
            $$
            """
        )
        # a call: only a real change of version (the meter's batch sets it on every row
        # it settles, changed or not)
        when = "WHEN (OLD.version IS DISTINCT FROM NEW.version) " if table == "calls" else ""
        op.execute(
            f"CREATE TRIGGER {trigger} AFTER {event} ON {table} FOR EACH ROW {when}"
            f"EXECUTE FUNCTION {function}()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for trigger, table, _event, function, _payload in ROW_TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
        op.execute(f"DROP FUNCTION {function}()")
    op.execute("DROP TRIGGER calls_notify ON calls")
    op.execute(
        "CREATE TRIGGER calls_notify AFTER INSERT OR UPDATE OF version ON calls "
        "FOR EACH STATEMENT EXECUTE FUNCTION callmeter_notify_calls()"
    )
    for table in ("call_signals", "call_messages"):
        op.execute(
            f"CREATE TRIGGER {table}_notify AFTER INSERT ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION callmeter_notify_calls()"
        )
