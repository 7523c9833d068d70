"""Many rows in one statement: INSERT and UPDATE of a list of rows, portably.

PostgreSQL gets one statement over arrays (``… FROM unnest($1::bigint[], …)``): one round
trip, one plan, rows in list order. Elsewhere (SQLite, in-process) an executemany of the
single-row statement does the same work with no round trips to save.

Identifiers in the generated SQL come from the table metadata, never from input; values
always travel as bound parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _arrays(
    table: Table, dialect: Dialect, rows: Sequence[Mapping[str, Any]], fields: Mapping[str, str]
) -> tuple[list[str], dict[str, list[Any]]]:
    """``CAST(:p AS type[])`` per field (field -> column) and the bound arrays."""
    casts, params = [], {}
    for index, (field, column_name) in enumerate(fields.items()):
        column = table.c[column_name]
        process = column.type.bind_processor(dialect)
        values = [row[field] for row in rows]
        params[f"p{index}"] = [process(v) for v in values] if process else values
        # a string travels as TEXT: a CAST to VARCHAR(n) would silently cut a longer value,
        # where the column itself refuses it
        sql_type = (
            "TEXT" if isinstance(column.type, String) else column.type.compile(dialect=dialect)
        )
        casts.append(f"CAST(:p{index} AS {sql_type}[])")
    return casts, params


async def insert_rows(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """INSERT ``rows`` (dicts with the same keys: column names), in list order."""
    if not rows:
        return
    if not _is_postgres(session):
        await session.execute(insert(table), list(rows))
        return
    names = list(rows[0])
    casts, params = _arrays(table, session.get_bind().dialect, rows, {n: n for n in names})
    columns = ", ".join(names)
    statement = f"INSERT INTO {table.name} ({columns}) SELECT * FROM unnest({', '.join(casts)})"  # noqa: S608
    await session.execute(text(statement), params)


async def insert_new_rows(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]], *, unique: str
) -> list[int | None]:
    """INSERT ``rows`` (without ids — on SQLite each gets its ``id`` here; their ``unique``
    values distinct), skipping those
    whose ``unique`` column value is already taken — a concurrent insert of the same value
    waits for its transaction and is then skipped. Returns each row's new id, None where
    it was skipped. PostgreSQL: one statement (``RETURNING``). SQLite: ids from
    :func:`new_ids`, one executemany, and a look at which ids exist only when a row was
    skipped."""
    if not rows:
        return []
    if _is_postgres(session):
        names = list(rows[0])
        casts, params = _arrays(table, session.get_bind().dialect, rows, {n: n for n in names})
        statement = (
            f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608
            f"SELECT * FROM unnest({', '.join(casts)}) "
            f"ON CONFLICT ({unique}) DO NOTHING RETURNING {unique}, id"
        )
        result = await session.execute(text(statement), params)
        created: dict[Any, int] = {key: row_id for key, row_id in result}
        return [created.get(row[unique]) for row in rows]
    ids = await new_ids(session, table, len(rows))
    for row, row_id in zip(rows, ids, strict=True):
        row["id"] = row_id
    skipping = sqlite_insert(table).on_conflict_do_nothing(index_elements=[unique])
    result = await session.execute(skipping, list(rows))
    count = int(result.rowcount)  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect
    if count == len(rows) and (len(rows) == 1 or dialect.supports_sane_multi_rowcount):
        return list(ids)
    inserted = set(await session.scalars(select(table.c.id).where(table.c.id.in_(ids))))
    return [row_id if row_id in inserted else None for row_id in ids]


async def update_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    where: Mapping[str, str],
    assign: Mapping[str, str] | None = None,
    add: Mapping[str, str] | None = None,
    where_null: Sequence[str] = (),
) -> int | None:
    """UPDATE one row per element of ``rows``: the row whose columns equal the ``where``
    fields (field -> column), setting ``assign`` columns to the field's value and adding
    the ``add`` fields to theirs. Returns how many rows changed (None where the driver
    cannot tell for an executemany)."""
    if not rows:
        return 0
    assign, add = assign or {}, add or {}
    if not _is_postgres(session):
        # bound names must differ from column names in an UPDATE: b_<field>
        values: dict[str, Any] = {c: bindparam(f"b_{f}") for f, c in assign.items()}
        values.update({c: table.c[c] + bindparam(f"b_{f}") for f, c in add.items()})
        statement = (
            update(table)
            .where(*(table.c[c] == bindparam(f"b_{f}") for f, c in where.items()))
            .where(*(table.c[c].is_(None) for c in where_null))
            .values(values)
        )
        renamed = [{f"b_{f}": v for f, v in row.items()} for row in rows]
        result = await session.execute(statement, renamed)
        dialect = session.get_bind().dialect
        if not dialect.supports_sane_multi_rowcount:
            return None
        return int(result.rowcount)  # type: ignore[attr-defined]
    fields = {**where, **assign, **add}
    casts, params = _arrays(table, session.get_bind().dialect, rows, fields)
    alias = {field: f"f{index}" for index, field in enumerate(fields)}
    sets = [f"{c} = v.{alias[f]}" for f, c in assign.items()]
    sets += [f"{c} = t.{c} + v.{alias[f]}" for f, c in add.items()]
    matches = " AND ".join(
        [f"t.{c} = v.{alias[f]}" for f, c in where.items()] + [f"t.{c} IS NULL" for c in where_null]
    )
    sql = (
        f"UPDATE {table.name} AS t SET {', '.join(sets)} "  # noqa: S608
        f"FROM unnest({', '.join(casts)}) AS v({', '.join(alias.values())}) WHERE {matches}"
    )
    result = await session.execute(text(sql), params)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def new_ids(session: AsyncSession, table: Table, count: int) -> list[int]:
    """``count`` fresh primary keys for ``table``, ascending, in one statement (a multi-row
    INSERT … RETURNING would do, but SQLAlchemy runs it row by row on SQLite to keep the
    order). PostgreSQL: from the table's sequence. SQLite: after the largest id, which is
    safe only while the transaction holds SQLite's one write lock (BEGIN IMMEDIATE,
    as every write transaction here does)."""
    if _is_postgres(session):
        rows = await session.scalars(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                "FROM generate_series(1, :count)"
            ),
            {"table": table.name, "count": count},
        )
        return sorted(rows)
    last = await session.scalar(select(func.coalesce(func.max(table.c.id), 0)))
    assert last is not None
    return list(range(last + 1, last + count + 1))


def id_in(session: AsyncSession, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column IN ids`` as one statement whatever the number of ids: ``= ANY($1)`` over
    one array on PostgreSQL (one prepared statement for every size), an ``IN`` list on
    SQLite (callers keep lists below its bound-parameter limit)."""
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, list(ids), ARRAY(BigInteger))
        return cast(ColumnElement[bool], column == any_(array))
    return cast(ColumnElement[bool], column.in_(ids))
