"""INSERT … ON CONFLICT for the two supported databases (same SQL on both), and
counting what a write touched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import TextClause, bindparam, literal_column, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are written for sqlite and postgresql, not {dialect}")


def touched(session: Session, statement: Any) -> int:
    """Execute an INSERT/UPDATE/DELETE and count the rows it wrote (an ON CONFLICT that
    skipped counts 0). Counted with RETURNING, not ``rowcount``: psycopg 3 resets
    rowcount once SQLAlchemy has closed the cursor (sqlalchemy/sqlalchemy#10696)."""
    return len(session.execute(statement.returning(literal_column("1"))).all())


def insert_on_conflict(table: Any, *, conflict: Sequence[str], update: Sequence[str] = (), where: str | None = None,
                       returning: str = "1", rows: int = 1, keep: Sequence[str] = ()) -> TextClause:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING | DO UPDATE SET update … WHERE where
    RETURNING returning`` for every column of ``table``, as one text statement: the
    same SQL on SQLite and PostgreSQL, its parameters typed from the table's columns.

    Built once and executed with a dict of values per row. SQLAlchemy caches the
    compiled form of a text statement; the dialects' ``insert().on_conflict_…()``
    constructs have no cache key and are compiled again at every execution (with
    the statement built anew each time, that was most of the CPU of an event write).

    ``rows`` > 1: one statement inserting that many rows, their parameters named
    ``{column}_{row}`` (`row_parameters` builds the parameters for any ``rows``); RETURNING gives one row per
    row inserted (in no promised order).

    ``keep``: columns of ``update`` that keep their value once set (``COALESCE`` of the
    row's and the new one).
    """
    columns = list(table.columns)
    names = ", ".join(_q(c.name) for c in columns)
    suffixes = [""] if rows == 1 else [f"_{row}" for row in range(rows)]
    values = ", ".join("(" + ", ".join(f":{c.name}{suffix}" for c in columns) + ")" for suffix in suffixes)
    sql = (f"INSERT INTO {_q(table.name)} ({names}) VALUES {values} "
           f"ON CONFLICT ({', '.join(_q(name) for name in conflict)}) ")
    if update:
        sql += "DO UPDATE SET " + ", ".join(
            f"{_q(name)} = COALESCE({_q(table.name)}.{_q(name)}, excluded.{_q(name)})" if name in keep
            else f"{_q(name)} = excluded.{_q(name)}" for name in update)
        if where:
            sql += f" WHERE {where}"
    else:
        sql += "DO NOTHING"
    sql += f" RETURNING {returning}"
    return text(sql).bindparams(*(bindparam(c.name + suffix, type_=c.type) for suffix in suffixes for c in columns))


def row_parameters(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of an `insert_on_conflict(…, rows=len(rows))` statement."""
    if len(rows) == 1:
        return dict(rows[0])  # one row: the columns' own names
    return {f"{name}_{row}": value for row, values in enumerate(rows) for name, value in values.items()}


def _q(name: str) -> str:
    return f'"{name}"'  # standard SQL quoting, the same on both databases
