"""Loosening or tightening a CHECK constraint in place, on PostgreSQL and SQLite
(migrations 0005 and 0007).

PostgreSQL replaces the constraint (one validating read of the table). SQLite cannot
alter a constraint, and rebuilding a table would copy every row and, with foreign
keys on, cascade the drop of the old table to the rows that reference it. A
constraint that accepts more values holds for every existing row, so the table's
SQL text is rewritten in place, as SQLite documents for loosening a CHECK
(https://sqlite.org/lang_altertable.html, "simpler procedure"); tightening does the
same after the migration has made every row fit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def replace_check(table: str, constraint: str, old: str, new: str) -> None:
    """Replace `table`'s CHECK `constraint` (condition `old`) by condition `new`."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_constraint(op.f(constraint), table, type_="check")
        op.create_check_constraint(op.f(constraint), table, new)
        return
    table_sql = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
                             {"name": table}).scalar_one()
    clause = f"CONSTRAINT {constraint} CHECK ({old})"
    if table_sql.count(clause) != 1:
        raise RuntimeError(f"{table}: expected the constraint {clause!r} once in {table_sql!r}")
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    try:
        bind.execute(sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :name"),
                     {"sql": table_sql.replace(clause, f"CONSTRAINT {constraint} CHECK ({new})"), "name": table})
        bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))  # every connection re-reads it
    finally:
        bind.execute(sa.text("PRAGMA writable_schema = OFF"))
