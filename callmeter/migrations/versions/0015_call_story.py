"""call story: a call's chat tells what happened to the call (system messages)

A trigger on ``calls`` writes a ``system`` message whenever a call connects, is charged,
gets its low-balance warning or ends, whichever process or code path (a heartbeat, the
meter's batch, an admin, a webhook) made the change: the story is written where the state
changes, in the same transaction. Bodies are codes the client puts in words:
``connected``, ``charged:<coins>``, ``low_balance``, ``ended:<end_reason>``. A line's
``created_at`` is when it was written (the database's clock, UTC), like any message's: the
call feed delivers messages by id and, for those committed late, by a short lookback on
``created_at``, which a back-dated line would slip past. When the call itself says it
happened (``started_at``, ``ended_at``, its billed time) is on the call.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRES_FUNCTION = """
CREATE FUNCTION callmeter_call_story() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written timestamp := timezone('UTC', clock_timestamp());
BEGIN
    IF NEW.status = 'active' AND OLD.status <> 'active' THEN
        INSERT INTO call_messages (call_id, kind, body, created_at)
        VALUES (NEW.id, 'system', 'connected', written);
    END IF;
    IF NEW.charged > OLD.charged THEN
        INSERT INTO call_messages (call_id, kind, body, amount, created_at)
        VALUES (NEW.id, 'system', 'charged:' || (NEW.charged - OLD.charged),
                NEW.charged - OLD.charged, written);
    END IF;
    IF NEW.warning IS NOT NULL AND NEW.warning IS DISTINCT FROM OLD.warning THEN
        INSERT INTO call_messages (call_id, kind, body, created_at)
        VALUES (NEW.id, 'system', NEW.warning, written);
    END IF;
    IF NEW.status = 'ended' AND OLD.status <> 'ended' THEN
        INSERT INTO call_messages (call_id, kind, body, created_at)
        VALUES (NEW.id, 'system', 'ended:' || COALESCE(NEW.end_reason, ''), written);
    END IF;
    RETURN NULL;
END
$$
"""

POSTGRES_TRIGGER = """
CREATE TRIGGER calls_story AFTER UPDATE OF status, charged, warning ON calls FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.charged IS DISTINCT FROM NEW.charged
      OR OLD.warning IS DISTINCT FROM NEW.warning)
EXECUTE FUNCTION callmeter_call_story()
"""

# Only an UPDATE that sets one of the watched columns fires it: a heartbeat's presence write
# does not. SQLite runs a trigger's statements in order: one trigger, one INSERT … WHERE per event.
_WRITTEN = "strftime('%Y-%m-%d %H:%M:%f', 'now')"  # UTC
SQLITE_TRIGGER = f"""
CREATE TRIGGER calls_story AFTER UPDATE OF status, charged, warning ON calls FOR EACH ROW
WHEN OLD.status IS NOT NEW.status OR OLD.charged IS NOT NEW.charged
     OR OLD.warning IS NOT NEW.warning
BEGIN
    INSERT INTO call_messages (call_id, kind, body, created_at)
    SELECT NEW.id, 'system', 'connected', {_WRITTEN}
    WHERE NEW.status = 'active' AND OLD.status <> 'active';
    INSERT INTO call_messages (call_id, kind, body, amount, created_at)
    SELECT NEW.id, 'system', 'charged:' || (NEW.charged - OLD.charged),
           NEW.charged - OLD.charged, {_WRITTEN}
    WHERE NEW.charged > OLD.charged;
    INSERT INTO call_messages (call_id, kind, body, created_at)
    SELECT NEW.id, 'system', NEW.warning, {_WRITTEN}
    WHERE NEW.warning IS NOT NULL AND NEW.warning IS NOT OLD.warning;
    INSERT INTO call_messages (call_id, kind, body, created_at)
    SELECT NEW.id, 'system', 'ended:' || COALESCE(NEW.end_reason, ''), {_WRITTEN}
    WHERE NEW.status = 'ended' AND OLD.status <> 'ended';
END
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER calls_story ON calls" if _postgres() else "DROP TRIGGER calls_story")
    if _postgres():
        op.execute("DROP FUNCTION callmeter_call_story()")


def _postgres() -> bool:
    return op.get_context().dialect.name == "postgresql"
