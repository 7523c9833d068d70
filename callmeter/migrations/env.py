"""Alembic environment: always run with a connection handed in by callmeter.kit.migrate."""

from __future__ import annotations

from alembic import context

import callmeter.models as models

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - guard against running plain `alembic`
    raise SystemExit("run migrations with `callmeter migrate`")

context.configure(
    connection=connection,
    target_metadata=models.Base.metadata,
    render_as_batch=True,  # SQLite can only ALTER through table copies
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
