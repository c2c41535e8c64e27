"""HTTP gateway: agencies' bearer tokens (hashed) and idempotent requests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-27

Self-contained like 0001 (no import of store.models); names are final (op.f).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Instant = sa.DateTime(timezone=True)
Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "gateway_tokens",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("secret_sha256", sa.String(), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("revoked_at", Instant, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_tokens")),
        sa.ForeignKeyConstraint(["agency"], ["agencies.code"], name=op.f("fk_gateway_tokens_agency_agencies")),
    )
    op.create_index(op.f("ix_gateway_tokens_agency"), "gateway_tokens", ["agency"])
    op.create_table(
        "gateway_requests",
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("claimed_at", Instant, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", Document, nullable=True),
        sa.Column("completed_at", Instant, nullable=True),
        sa.PrimaryKeyConstraint("agency", "key", name=op.f("pk_gateway_requests")),
    )


def downgrade() -> None:
    op.drop_table("gateway_requests")
    op.drop_index(op.f("ix_gateway_tokens_agency"), table_name="gateway_tokens")
    op.drop_table("gateway_tokens")
