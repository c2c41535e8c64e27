"""Tables of the projection database.

The schema itself is created by the Alembic migrations (``store/migrations``); a test
checks that these models and the migrated schema do not differ, on both databases.
Text columns have no length limit so SQLite and PostgreSQL accept the same values;
sizes are checked by the pydantic models upstream.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.types import JSONDocument, UTCDateTime
from workflows.payloads import OPEN_STATUSES, PAUSED_STATUSES, DossierStatus, PortalStatus, StepStatus

# Stable constraint names, so migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# `abandoned` is the store's own: a dossier the projection had open whose workflow
# Temporal reports terminated, timed out, failed, cancelled or unknown (migration 0005;
# `lienthong dossiers orphans --mark`). Not open: the gauges leave it out.
ABANDONED = "abandoned"
DOSSIER_STATUSES = (*(s.value for s in DossierStatus), ABANDONED)
STEP_STATUSES = tuple(s.value for s in StepStatus)
WEBHOOK_KINDS = ("step_assigned", "step_resumed", "step_withdrawn", "escalation")  # AgencyNotification.kind
WEBHOOK_OUTCOMES = ("delivered", "refused", "failed")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _partial(name: str, *columns: str, where: str) -> Index:
    """A partial index, the same condition on both databases (migration 0003)."""
    return Index(name, *columns, postgresql_where=text(where), sqlite_where=text(where))


# Audit-log kinds the Biểu 06 report reads (services/report.py), in the partial index
# ix_dossier_events_report (migration 0010): receipt, the end events of Decision 766's
# priority, a due recorded passed, and the applicant's pauses and their ends.
REPORT_EVENT_KINDS = ("received", "result_ready", "completed", "withdrawn", "rejected", "dossier_overdue",
                      "supplement_requested", "obligation_requested", "resubmitted")
TOKEN_ROLES = ("agency", "monitoring")  # gateway_tokens.role (migration 0010)

OPEN_DOSSIER = _one_of("status", tuple(s.value for s in OPEN_STATUSES))
SUBMITTED_DOSSIER = f"status = '{DossierStatus.SUBMITTED.value}'"
AWAITING_APPLICANT = _one_of("status", tuple(s.value for s in PAUSED_STATUSES))
WITHDRAWAL_REQUESTED = f"portal_status = {PortalStatus.WITHDRAWAL_REQUESTED.value}"
HELD_STEP = "status = 'assigned' AND agency IS NOT NULL"
ABANDONED_DOSSIER = "status = 'abandoned'"
OPEN_WITHOUT_DUE = f"{OPEN_DOSSIER} AND due_at IS NULL"
PORTAL_PENDING = "delivered_at IS NULL AND parked_at IS NULL"  # waits to be sent (migration 0008)
PORTAL_PARKED = "parked_at IS NOT NULL AND delivered_at IS NULL"  # the portal refused it for good


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        date: Date(),
        str: String(),
        dict[str, Any]: JSONDocument,
        list[str]: JSONDocument,
    }


metadata = Base.metadata


class DefinitionRow(Base):
    """A deployed procedure definition: immutable once written (code@version + hash)."""

    __tablename__ = "definitions"
    __table_args__ = (
        UniqueConstraint("code", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str]
    version: Mapped[int]
    content_hash: Mapped[str]  # sha256 hex of `body`'s bytes
    body: Mapped[str] = mapped_column(Text)  # the YAML text as deployed
    snapshot: Mapped[dict[str, Any]]  # ProcedureSnapshot.model_dump(mode="json")
    name: Mapped[str]
    sector: Mapped[str]
    level: Mapped[str]
    calendar: Mapped[str]
    effective_from: Mapped[date | None]
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[str]

    @property
    def ref(self) -> str:
        return f"{self.code}@{self.version}"


class AgencyRow(Base):
    __tablename__ = "agencies"

    code: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    level: Mapped[str]
    webhook_url: Mapped[str | None]
    receives_dossiers: Mapped[bool] = mapped_column(Boolean)
    # A desk's receiving scope (definitions.schema.Receives, the province-wide list
    # expanded into it), NULL for an agency that receives nothing (migration 0005).
    receives: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    # Set when a deploy of a registry without it (or `agencies retire`) retired it: kept,
    # since history names it; its tokens stop working and nothing new is routed to it.
    retired_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class SectorRow(Base):
    __tablename__ = "sectors"

    code: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]


class DossierRow(Base):
    """The latest known state of a dossier (one row per workflow)."""

    __tablename__ = "dossiers"
    __table_args__ = (
        CheckConstraint(_one_of("status", DOSSIER_STATUSES), name="status"),
        Index(None, "due_at"),  # due soon
        # The exporter's queries (monitoring/collector.py; migration 0003): index-only scans
        # of the open dossiers, by sector/level/status/procedure and by id for the join
        # with the held steps. Finished dossiers are not in them.
        _partial("ix_dossiers_open", "sector", "level", "status", "procedure_code", "overdue", "due_at",
                 "original_due_at", where=OPEN_DOSSIER),
        _partial("ix_dossiers_open_by_id", "id", "sector", "status", where=OPEN_DOSSIER),
        # Stuck dossiers (migration 0005): abandoned ones, and open ones without a due.
        _partial("ix_dossiers_abandoned", "sector", "status", where=ABANDONED_DOSSIER),
        _partial("ix_dossiers_without_due", "sector", "status", "due_at", "updated_at", where=OPEN_WITHOUT_DUE),
        # Online dossiers waiting for a desk to receive them (migration 0007).
        _partial("ix_dossiers_awaiting_receipt", "received_by", "received_at", where=SUBMITTED_DOSSIER),
        # The applicant's turn (portal 5 and 6) and withdrawals not stopped yet (7) (migration 0011).
        _partial("ix_dossiers_awaiting_applicant", "sector", "level", "status", "awaiting_since",
                 where=AWAITING_APPLICANT),
        _partial("ix_dossiers_withdrawal_requested", "sector", "level", where=WITHDRAWAL_REQUESTED),
    )

    id: Mapped[str] = mapped_column(primary_key=True)  # the dossier id = the workflow id
    # The workflow run the row and the audit log describe (migration 0004; NULL for rows
    # written before): set by the first write that knows it, never changed after.
    run_id: Mapped[str | None]
    procedure_code: Mapped[str]
    procedure_version: Mapped[int]
    procedure_name: Mapped[str]
    sector: Mapped[str]
    level: Mapped[str]
    calendar: Mapped[str]
    channel: Mapped[str]
    status: Mapped[str]  # a DossierStatus, or ABANDONED
    portal_status: Mapped[int]
    received_at: Mapped[datetime]  # for a dossier not received yet (submitted), when it was submitted
    received_by: Mapped[str | None]  # the receiving desk, or the desk it is addressed to (migration 0007)
    finished_at: Mapped[datetime | None]  # status 9: processing finished (migration 0007)
    # When the applicant's current turn began (supplement or obligation requested); NULL
    # while the agencies hold the dossier (migration 0011).
    awaiting_since: Mapped[datetime | None]
    clock_started_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    original_due_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    verdict: Mapped[str | None]
    overdue: Mapped[bool] = mapped_column(Boolean)
    supplement_count: Mapped[int]
    current_agencies: Mapped[list[str]]
    last_seq: Mapped[int]  # seq of the event this row reflects; only ever grows
    state: Mapped[dict[str, Any]]  # DossierState.model_dump(mode="json")
    updated_at: Mapped[datetime]


class DossierIdRow(Base):
    """A dossier id, reserved once received and never released (migration 0004): the
    store, not Temporal, decides whether an id is new (store/identity.py). Reserved
    before the workflow starts, in a transaction of its own; the run it started is
    recorded once it has."""

    __tablename__ = "dossier_ids"

    id: Mapped[str] = mapped_column(primary_key=True)
    request: Mapped[str | None]  # the idempotency identity that reserved it (a retry of it may start it)
    received_by: Mapped[str | None]  # the receiving desk's agency code
    reserved_at: Mapped[datetime]
    run_id: Mapped[str | None]  # the workflow run started for it; NULL until started
    started_at: Mapped[datetime | None]


class DossierStepRow(Base):
    __tablename__ = "dossier_steps"
    __table_args__ = (
        CheckConstraint(_one_of("status", STEP_STATUSES), name="status"),
        # The steps agencies hold, by dossier, for the exporter (migration 0003).
        _partial("ix_dossier_steps_held", "dossier_id", "agency", "status", "overdue", "due_at", where=HELD_STEP),
    )

    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"), primary_key=True)
    step_id: Mapped[str] = mapped_column(primary_key=True)
    position: Mapped[int]  # order in the dossier's state
    name: Mapped[str]
    agency: Mapped[str | None]  # known once the step is reached
    status: Mapped[str]
    assigned_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    original_due_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    verdict: Mapped[str | None]
    overdue: Mapped[bool] = mapped_column(Boolean)
    escalations: Mapped[int]
    extensions: Mapped[int]


class DossierEventRow(Base):
    """Audit log: one row per (dossier, seq), appended; rewritten only when a workflow re-runs
    the transitions of a workflow task a dead worker never completed (store/projection.py)."""

    __tablename__ = "dossier_events"
    __table_args__ = (
        CheckConstraint("seq >= 1", name="seq_positive"),
        # The report's events by kind and instant, covering (migration 0010).
        _partial("ix_dossier_events_report", "kind", "at", "dossier_id", "seq", "actor",
                 where=_one_of("kind", REPORT_EVENT_KINDS)),
    )

    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str]
    at: Mapped[datetime]
    actor: Mapped[str | None]
    step_id: Mapped[str | None]
    note: Mapped[str | None] = mapped_column(Text)
    portal_status: Mapped[int | None]  # the status this event moved its dossier to (migration 0007)
    recorded_at: Mapped[datetime]


class InboxItemRow(Base):
    """A step waiting in an agency's inbox."""

    __tablename__ = "inbox_items"
    __table_args__ = (Index(None, "agency", "due_at"),)

    agency: Mapped[str] = mapped_column(primary_key=True)
    dossier_id: Mapped[str] = mapped_column(primary_key=True)
    step_id: Mapped[str] = mapped_column(primary_key=True)
    procedure_code: Mapped[str]
    procedure_version: Mapped[int]
    sector: Mapped[str]
    step_name: Mapped[str]
    assigned_at: Mapped[datetime]
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]


class WebhookDeliveryRow(Base):
    """One attempt to tell an agency's system something."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_one_of("kind", WEBHOOK_KINDS), name="kind"),
        CheckConstraint(_one_of("outcome", WEBHOOK_OUTCOMES), name="outcome"),
        Index(None, "agency", "at"),
        Index(None, "dossier_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str]
    dossier_id: Mapped[str]
    step_id: Mapped[str]
    kind: Mapped[str]
    url: Mapped[str]
    outcome: Mapped[str]
    status_code: Mapped[int | None]
    attempt: Mapped[int]
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class PortalOutboxRow(Base):
    """One change for the National Public Service Portal (migration 0008): written with
    the audit-log event that caused it, in the same transaction, keyed like it by
    (dossier_id, seq); sent in seq order per dossier by the portal sync
    (activities/portal.py). `payload` is the adapter's (activities/portal_payload.py)."""

    __tablename__ = "portal_outbox"
    __table_args__ = (
        UniqueConstraint("dossier_id", "seq"),
        CheckConstraint("portal_status BETWEEN 1 AND 10", name="portal_status"),
        # What waits, per dossier in seq order (the claim: only a dossier's oldest is
        # sent) and oldest first (the claim's order, the lag gauge).
        _partial("ix_portal_outbox_pending", "dossier_id", "seq", where=PORTAL_PENDING),
        _partial("ix_portal_outbox_pending_created", "created_at", "id", where=PORTAL_PENDING),
        _partial("ix_portal_outbox_parked", "dossier_id", "seq", where=PORTAL_PARKED),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    dossier_id: Mapped[str] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"))
    seq: Mapped[int]  # the audit-log event (dossier_events.seq) that caused it
    kind: Mapped[str]  # that event's kind
    portal_status: Mapped[int]  # TrangThaiHoSo after the change
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]  # the portal answered 2xx
    attempts: Mapped[int]  # POSTs made for it (the failed ones and the one delivered)
    last_error: Mapped[str | None] = mapped_column(Text)  # the last failure (no person data)
    parked_at: Mapped[datetime | None]  # refused for good (a 4xx about the change itself): not sent again


# ----------------------------------------------------------------------------- HTTP gateway (migration 0002)


class GatewayTokenRow(Base):
    """An agency's bearer token for the HTTP gateway. Only the sha256 of its secret is
    kept: a leaked database does not let anyone act as an agency. Its role (migration
    0010): `agency` acts for the agency on /v1; `monitoring` reads the province's reports
    (/v1/reports) for the monitoring team of the unit it is issued to, and nothing else."""

    __tablename__ = "gateway_tokens"
    __table_args__ = (Index(None, "agency"), CheckConstraint(_one_of("role", TOKEN_ROLES), name="role"))

    id: Mapped[str] = mapped_column(primary_key=True)  # the public part, printed with the token
    agency: Mapped[str] = mapped_column(ForeignKey("agencies.code"))
    secret_sha256: Mapped[str]  # hex
    role: Mapped[str] = mapped_column(server_default=TOKEN_ROLES[0])
    created_at: Mapped[datetime]
    created_by: Mapped[str]
    revoked_at: Mapped[datetime | None]


class GatewayRequestRow(Base):
    """The first answer to an agency's POST with an `Idempotency-Key`: a retry with the
    same key and body gets it again, and changes nothing."""

    __tablename__ = "gateway_requests"

    agency: Mapped[str] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    fingerprint: Mapped[str]  # sha256 of method, path and the parsed body
    method: Mapped[str]
    path: Mapped[str]
    claimed_at: Mapped[datetime]  # when the request holding the key started
    status_code: Mapped[int | None]  # None while that request is in progress
    response: Mapped[dict[str, Any] | None]  # {"body": ..., "headers": {...}}
    completed_at: Mapped[datetime | None]


# ----------------------------------------------------------------------------- documents (migration 0009)


class ReceiptBookRow(Base):
    """An entry of a desk's receipt book (sổ theo dõi hồ sơ, Mẫu 07; "Quyển số / Số" on the
    receipt slip Mẫu 01): one number per received dossier, per desk and per year (the
    volume), given once and never changed (store/receipt_book.py says in which order)."""

    __tablename__ = "receipt_book"
    __table_args__ = (
        UniqueConstraint("dossier_id"),
        CheckConstraint("number >= 1", name="number_positive"),
    )

    desk: Mapped[str] = mapped_column(primary_key=True)  # the receiving desk's agency code
    volume: Mapped[int] = mapped_column(primary_key=True)  # the year of receipt, Vietnam time
    number: Mapped[int] = mapped_column(primary_key=True)
    dossier_id: Mapped[str]
    received_at: Mapped[datetime]  # the audit log's "received" instant
    assigned_at: Mapped[datetime]
