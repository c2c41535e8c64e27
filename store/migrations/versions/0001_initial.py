"""Initial schema: definition registry, agencies, sectors, dossier projection, audit log,
inboxes and webhook deliveries.

Revision ID: 0001
Revises:
Create Date: 2026-05-20

Self-contained on purpose (no import of store.models): a revision must keep meaning
what it meant when it was written, whatever the models become. Names are final (op.f):
alembic would otherwise apply the models' naming convention to them a second time.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Aware instants: timestamptz on PostgreSQL; naive UTC on SQLite (store.types.UTCDateTime).
Instant = sa.DateTime(timezone=True)
Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

DOSSIER_STATUSES = "status IN ('processing', 'awaiting_supplement', 'rejected', 'completed')"
STEP_STATUSES = "status IN ('pending', 'assigned', 'completed', 'skipped', 'rejected')"


def upgrade() -> None:
    op.create_table(
        "definitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("snapshot", Document, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("sector", sa.String(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("calendar", sa.String(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("deployed_at", Instant, nullable=False),
        sa.Column("deployed_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_definitions")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_definitions_code_version")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_definitions_version_positive")),
    )
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("webhook_url", sa.String(), nullable=True),
        sa.Column("receives_dossiers", sa.Boolean(), nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_agencies")),
    )
    op.create_table(
        "sectors",
        sa.Column("code", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_sectors")),
    )
    op.create_table(
        "dossiers",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("procedure_code", sa.String(), nullable=False),
        sa.Column("procedure_version", sa.Integer(), nullable=False),
        sa.Column("procedure_name", sa.String(), nullable=False),
        sa.Column("sector", sa.String(), nullable=False),
        sa.Column("level", sa.String(), nullable=False),
        sa.Column("calendar", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("portal_status", sa.Integer(), nullable=False),
        sa.Column("received_at", Instant, nullable=False),
        sa.Column("clock_started_at", Instant, nullable=True),
        sa.Column("due_at", Instant, nullable=True),
        sa.Column("original_due_at", Instant, nullable=True),
        sa.Column("completed_at", Instant, nullable=True),
        sa.Column("verdict", sa.String(), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("supplement_count", sa.Integer(), nullable=False),
        sa.Column("current_agencies", Document, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("state", Document, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dossiers")),
        sa.CheckConstraint(DOSSIER_STATUSES, name=op.f("ck_dossiers_status")),
    )
    op.create_index(op.f("ix_dossiers_status_sector_level"), "dossiers", ["status", "sector", "level"])
    op.create_index(op.f("ix_dossiers_sector_overdue"), "dossiers", ["sector", "overdue"])
    op.create_index(op.f("ix_dossiers_due_at"), "dossiers", ["due_at"])
    op.create_table(
        "dossier_steps",
        sa.Column("dossier_id", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("agency", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("assigned_at", Instant, nullable=True),
        sa.Column("due_at", Instant, nullable=True),
        sa.Column("original_due_at", Instant, nullable=True),
        sa.Column("completed_at", Instant, nullable=True),
        sa.Column("verdict", sa.String(), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dossier_id", "step_id", name=op.f("pk_dossier_steps")),
        sa.ForeignKeyConstraint(
            ["dossier_id"], ["dossiers.id"], name=op.f("fk_dossier_steps_dossier_id_dossiers"), ondelete="CASCADE"
        ),
        sa.CheckConstraint(STEP_STATUSES, name=op.f("ck_dossier_steps_status")),
    )
    op.create_index(op.f("ix_dossier_steps_agency_status"), "dossier_steps", ["agency", "status"])
    op.create_index(op.f("ix_dossier_steps_status_due_at"), "dossier_steps", ["status", "due_at"])
    op.create_table(
        "dossier_events",
        sa.Column("dossier_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("at", Instant, nullable=False),
        sa.Column("actor", sa.String(), nullable=True),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("dossier_id", "seq", name=op.f("pk_dossier_events")),
        sa.ForeignKeyConstraint(
            ["dossier_id"], ["dossiers.id"], name=op.f("fk_dossier_events_dossier_id_dossiers"), ondelete="CASCADE"
        ),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_dossier_events_seq_positive")),
    )
    op.create_table(
        "inbox_items",
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("dossier_id", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("procedure_code", sa.String(), nullable=False),
        sa.Column("procedure_version", sa.Integer(), nullable=False),
        sa.Column("sector", sa.String(), nullable=False),
        sa.Column("step_name", sa.String(), nullable=False),
        sa.Column("assigned_at", Instant, nullable=False),
        sa.Column("due_at", Instant, nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("agency", "dossier_id", "step_id", name=op.f("pk_inbox_items")),
    )
    op.create_index(op.f("ix_inbox_items_agency_due_at"), "inbox_items", ["agency", "due_at"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("dossier_id", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", Instant, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.CheckConstraint(
            "kind IN ('step_assigned', 'step_resumed', 'step_withdrawn', 'escalation')",
            name=op.f("ck_webhook_deliveries_kind"),
        ),
        sa.CheckConstraint("outcome IN ('delivered', 'refused', 'failed')", name=op.f("ck_webhook_deliveries_outcome")),
    )
    op.create_index(op.f("ix_webhook_deliveries_agency_at"), "webhook_deliveries", ["agency", "at"])
    op.create_index(op.f("ix_webhook_deliveries_dossier_id"), "webhook_deliveries", ["dossier_id"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("inbox_items")
    op.drop_table("dossier_events")
    op.drop_table("dossier_steps")
    op.drop_table("dossiers")
    op.drop_table("sectors")
    op.drop_table("agencies")
    op.drop_table("definitions")
