"""The legal life cycle (issue 14): the portal's ten statuses in the projection and
the audit log.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

* ``dossiers.status`` may also be ``submitted`` (online, waiting for a desk: portal 1),
  ``not_received`` (refused at the desk: 3), ``awaiting_obligation`` (the applicant
  pays: 6), ``withdrawn`` (7, then stopped: 8) and ``result_ready`` (processing
  finished, the result at the desk: 9); ``dossier_steps.status`` may be ``returned``
  (a step that sent the dossier back to an earlier one). Constraints that accept more
  values hold for every existing row: loosened in place as 0005 does (PostgreSQL
  replaces them; SQLite's table text is rewritten).
* ``dossier_events.portal_status``: the portal status an event moved its dossier to
  (NULL for the others): the status history, with the instant of each change.
* ``dossiers.received_by`` (the receiving desk, or the desk an online dossier is
  addressed to) and ``dossiers.finished_at`` (status 9, the end time Decision 766
  judges).
* The open-dossier partial indexes of 0003/0005 are rebuilt: ``awaiting_obligation`` is
  open (in progress). ``ix_dossiers_awaiting_receipt`` (received_by, received_at) over
  submitted dossiers: the gauges of online dossiers waiting for receipt, by desk.

No import of store.models (the schema as it was then); names are final (op.f).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.migrations.checks import replace_check

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOSSIER_CHECK = "ck_dossiers_status"
DOSSIER_BEFORE = "status IN ('processing', 'awaiting_supplement', 'rejected', 'completed', 'abandoned')"
DOSSIER_AFTER = ("status IN ('submitted', 'not_received', 'processing', 'awaiting_supplement', "
                 "'awaiting_obligation', 'withdrawn', 'rejected', 'result_ready', 'completed', 'abandoned')")
STEP_CHECK = "ck_dossier_steps_status"
STEP_BEFORE = "status IN ('pending', 'assigned', 'completed', 'skipped', 'rejected')"
STEP_AFTER = "status IN ('pending', 'assigned', 'completed', 'skipped', 'rejected', 'returned')"

OPEN_BEFORE = "status IN ('processing', 'awaiting_supplement')"
OPEN_AFTER = "status IN ('processing', 'awaiting_supplement', 'awaiting_obligation')"
SUBMITTED = "status = 'submitted'"


def _open_indexes(open_condition: str) -> list[tuple[str, list[str], str]]:
    return [
        ("ix_dossiers_open", ["sector", "level", "status", "procedure_code", "overdue", "due_at", "original_due_at"],
         open_condition),
        ("ix_dossiers_open_by_id", ["id", "sector", "status"], open_condition),
        ("ix_dossiers_without_due", ["sector", "status", "due_at", "updated_at"],
         f"{open_condition} AND due_at IS NULL"),
    ]


def upgrade() -> None:
    replace_check("dossiers", DOSSIER_CHECK, DOSSIER_BEFORE, DOSSIER_AFTER)
    replace_check("dossier_steps", STEP_CHECK, STEP_BEFORE, STEP_AFTER)
    op.add_column("dossier_events", sa.Column("portal_status", sa.Integer(), nullable=True))
    op.add_column("dossiers", sa.Column("received_by", sa.String(), nullable=True))
    op.add_column("dossiers", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    _rebuild_open_indexes(OPEN_BEFORE, OPEN_AFTER)
    op.create_index(op.f("ix_dossiers_awaiting_receipt"), "dossiers", ["received_by", "received_at"],
                    postgresql_where=sa.text(SUBMITTED), sqlite_where=sa.text(SUBMITTED))


def downgrade() -> None:
    op.drop_index(op.f("ix_dossiers_awaiting_receipt"), table_name="dossiers")
    _rebuild_open_indexes(OPEN_AFTER, OPEN_BEFORE)
    # Plain ALTER TABLE DROP COLUMN (SQLite >= 3.35): a batch rebuild of `dossiers` would
    # cascade to its steps and audit log with foreign keys on (0005's docstring).
    for table, column in (("dossiers", "finished_at"), ("dossiers", "received_by"),
                          ("dossier_events", "portal_status")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    # Rows in the new statuses have no older equivalent: the downgrade refuses rather than guess.
    bind = op.get_bind()
    newer = bind.execute(sa.text(f"SELECT count(*) FROM dossiers WHERE NOT ({DOSSIER_BEFORE})")).scalar_one()
    if newer:
        raise RuntimeError(f"{newer} dossier(s) are in a status 0006 does not know; downgrade refused")
    replace_check("dossier_steps", STEP_CHECK, STEP_AFTER, STEP_BEFORE)
    replace_check("dossiers", DOSSIER_CHECK, DOSSIER_AFTER, DOSSIER_BEFORE)


def _rebuild_open_indexes(before: str, after: str) -> None:
    for name, _, _ in _open_indexes(before):
        op.drop_index(op.f(name), table_name="dossiers")
    for name, columns, where in _open_indexes(after):
        op.create_index(op.f(name), "dossiers", columns, postgresql_where=sa.text(where),
                        sqlite_where=sa.text(where))
