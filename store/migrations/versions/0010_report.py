"""The Biểu 06 report (issue 15 §2): its index on the audit log, and monitoring tokens.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14

* ``ix_dossier_events_report`` (kind, at, dossier_id, seq, actor), partial over the
  event kinds the report reads (receipt, the end events, a due recorded passed, the
  applicant's pauses and their ends): a report reads those rows up to its period's end
  from the index alone, not the whole audit log. Built once, from the rows already there.
* ``gateway_tokens.role``: ``agency`` (every existing token: it acts for its agency) or
  ``monitoring`` (reads the province's reports at /v1/reports, and nothing else;
  `lienthong agencies issue-token CODE --role monitoring`). SQLite rebuilds the small
  table to add the CHECK constraint.

Downgrading drops the index, the monitoring tokens (they would become agency tokens)
and the column. Self-contained (no import of store.models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("received", "result_ready", "completed", "withdrawn", "rejected", "dossier_overdue",
         "supplement_requested", "obligation_requested", "resubmitted")
REPORT_WHERE = f"kind IN ({', '.join(repr(k) for k in KINDS)})"
REPORT_INDEX = "ix_dossier_events_report"
ROLE_CHECK = "role IN ('agency', 'monitoring')"


def upgrade() -> None:
    op.create_index(op.f(REPORT_INDEX), "dossier_events", ["kind", "at", "dossier_id", "seq", "actor"],
                    postgresql_where=sa.text(REPORT_WHERE), sqlite_where=sa.text(REPORT_WHERE))
    with op.batch_alter_table("gateway_tokens") as batch:
        batch.add_column(sa.Column("role", sa.String(), nullable=False, server_default="agency"))
        batch.create_check_constraint(op.f("ck_gateway_tokens_role"), ROLE_CHECK)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM gateway_tokens WHERE role <> 'agency'"))
    with op.batch_alter_table("gateway_tokens") as batch:
        batch.drop_constraint(op.f("ck_gateway_tokens_role"), type_="check")
        batch.drop_column("role")
    op.drop_index(op.f(REPORT_INDEX), table_name="dossier_events")
