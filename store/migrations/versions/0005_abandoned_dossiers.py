"""Stuck dossiers are seen (issue 13 §5): the ``abandoned`` status, and two small partial
indexes for the exporter.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10

* ``dossiers.status`` may be ``abandoned``: the projection had the dossier open, but
  Temporal reports its workflow terminated, timed out, failed, cancelled or unknown
  (`lienthong dossiers orphans --mark` sets it). It is not an open status: the open
  and overdue gauges and the partial indexes of 0003 leave such dossiers out. Only the
  CHECK constraint changes. PostgreSQL replaces it (one validating read of the table);
  SQLite cannot alter a constraint, and rebuilding ``dossiers`` would copy every row
  and, with foreign keys on, cascade the drop of the old table to the steps and the
  audit log. A constraint that accepts one more value holds for every existing row,
  so the table's SQL text is rewritten in place, as SQLite documents for loosening a
  CHECK (https://sqlite.org/lang_altertable.html, "simpler procedure"); the downgrade
  first gives abandoned rows back their last known status (from ``state``), then
  tightens it the same way.
* ``ix_dossiers_abandoned`` (sector, status) over abandoned dossiers:
  ``lienthong_dossiers_abandoned{sector}`` without reading the finished dossiers.
* ``ix_dossiers_without_due`` (sector, status, due_at, updated_at) over open dossiers without a due:
  ``lienthong_dossiers_without_due{sector}``. Normally empty (the workflow computes
  the due before its first store write).

No import of store.models (the schema as it was then); names are final (op.f).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.migrations.checks import replace_check

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "ck_dossiers_status"
BEFORE = "status IN ('processing', 'awaiting_supplement', 'rejected', 'completed')"
AFTER = "status IN ('processing', 'awaiting_supplement', 'rejected', 'completed', 'abandoned')"

ADDED = [
    ("ix_dossiers_abandoned", ["sector", "status"], "status = 'abandoned'"),
    ("ix_dossiers_without_due", ["sector", "status", "due_at", "updated_at"],
     "status IN ('processing', 'awaiting_supplement') AND due_at IS NULL"),
]


def upgrade() -> None:
    replace_check("dossiers", CONSTRAINT, BEFORE, AFTER)
    for name, columns, where in ADDED:
        op.create_index(op.f(name), "dossiers", columns, postgresql_where=sa.text(where),
                        sqlite_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in reversed(ADDED):
        op.drop_index(op.f(name), table_name="dossiers")
    last_known = "state->>'status'" if op.get_bind().dialect.name == "postgresql" \
        else "json_extract(state, '$.status')"
    op.execute(f"UPDATE dossiers SET status = {last_known} WHERE status = 'abandoned'")
    replace_check("dossiers", CONSTRAINT, AFTER, BEFORE)
