"""The definition registry (immutable ``code@version``) and the agency/sector registries.

A deployed definition is never changed: deploying the same file again is a no-op,
and deploying different content under a deployed ``code@version`` is refused, so a
dossier's ``code@version`` always means the rules it was received under.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import String, cast, exists, func, or_, select, update
from sqlalchemy.orm import Session

from definitions.loader import Catalog
from definitions.schema import ProcedureSnapshot
from definitions.versions import newest_in_effect
from store.models import AgencyRow, DefinitionRow, GatewayTokenRow, InboxItemRow, SectorRow
from store.upsert import dialect_insert, touched


class VersionConflictError(Exception):
    """A ``code@version`` is already deployed with other content."""


@dataclass(frozen=True)
class DeployResult:
    outcome: Literal["deployed", "unchanged"]
    definition: DefinitionRow

    @property
    def ref(self) -> str:
        return self.definition.ref


def deploy(
    session: Session, snapshot: ProcedureSnapshot, body: str, deployed_by: str, now: datetime
) -> DeployResult:
    """Register a validated definition. ``body`` is the file's text; its sha256 must be
    the snapshot's ``content_hash`` (read the file as bytes and decode, so line endings
    are kept)."""
    body_hash = hashlib.sha256(body.encode("utf-8")).hexdigest()
    if body_hash != snapshot.content_hash:
        raise ValueError(
            f"{snapshot.ref}: the body's sha256 {body_hash[:12]}… is not the snapshot's "
            f"{snapshot.content_hash[:12]}…; deploy the exact text the snapshot was loaded from"
        )
    procedure = snapshot.procedure
    # Insert-or-nothing, then look: two operators deploying at once cannot both "win".
    stmt = dialect_insert(session, DefinitionRow).values(
        code=procedure.code,
        version=procedure.version,
        content_hash=snapshot.content_hash,
        body=body,
        snapshot=snapshot.model_dump(mode="json"),
        name=procedure.name,
        sector=procedure.sector,
        level=procedure.level,
        calendar=procedure.calendar,
        effective_from=procedure.effective_from,
        deployed_at=now,
        deployed_by=deployed_by,
    ).on_conflict_do_nothing(index_elements=[DefinitionRow.code, DefinitionRow.version])
    inserted = touched(session, stmt) == 1
    row = get_definition(session, procedure.code, procedure.version)
    assert row is not None  # just inserted, or the conflicting row
    if inserted:
        return DeployResult("deployed", row)
    if row.content_hash == snapshot.content_hash:
        return DeployResult("unchanged", row)
    raise VersionConflictError(
        f"{row.ref} is already deployed with different content (sha256 {row.content_hash[:12]}… "
        f"deployed {row.deployed_at.isoformat(timespec='seconds')} by {row.deployed_by}; "
        f"this file is sha256 {snapshot.content_hash[:12]}…); give the changed file a new version"
    )


def list_definitions(session: Session) -> Sequence[DefinitionRow]:
    return session.scalars(select(DefinitionRow).order_by(DefinitionRow.code, DefinitionRow.version)).all()


def get_definition(session: Session, code: str, version: int | None = None) -> DefinitionRow | None:
    """``code@version``, or the newest deployed version of ``code`` when ``version`` is None."""
    query = select(DefinitionRow).where(DefinitionRow.code == code)
    if version is not None:
        query = query.where(DefinitionRow.version == version)
    return session.scalars(query.order_by(DefinitionRow.version.desc()).limit(1)).first()


def effective_definition(session: Session, code: str, today: date) -> DefinitionRow | None:
    """The newest version of ``code`` in effect on ``today`` (no date, or a date not after it)."""
    return newest_in_effect(session.scalars(select(DefinitionRow).where(DefinitionRow.code == code)), today)


def snapshot_of(row: DefinitionRow) -> ProcedureSnapshot:
    return ProcedureSnapshot.model_validate(row.snapshot)


@dataclass(frozen=True)
class Retired:
    """An agency just retired: the tokens revoked with it and the open steps it still holds."""

    code: str
    tokens_revoked: int
    open_steps: list[tuple[str, str]]  # (dossier id, step id), for an operator to hand over

    def line(self) -> str:
        steps = (f"; it still holds {len(self.open_steps)} open step(s): "
                 + ", ".join(f"{dossier}/{step}" for dossier, step in self.open_steps[:20])
                 + (" …" if len(self.open_steps) > 20 else "")) if self.open_steps else "; it holds no open step"
        return f"retired agency {self.code} ({self.tokens_revoked} token(s) revoked){steps}"


def receiving_scope(catalog: Catalog, code: str) -> dict[str, object] | None:
    """A desk's scope as stored: its levels, communes (None: any) and the procedures it
    receives anywhere (the province-wide list when `province_wide`)."""
    agency = catalog.agencies[code]
    if agency.receives is None:
        return None
    return {"levels": list(agency.receives.levels),
            "communes": list(agency.receives.communes) if agency.receives.communes is not None else None,
            "procedures": list(catalog.province_wide) if agency.receives.province_wide else []}


def sync_registries(session: Session, catalog: Catalog, now: datetime) -> tuple[int, int]:
    """Upsert agencies and sectors from the catalog; returns how many rows of each were
    added or changed. Entries that left the catalog are kept (old dossiers and events
    name them); `retire_missing` retires the agencies among them. An agency that comes
    back is active again (with new tokens only: retiring revoked its old ones)."""
    agencies_changed = sectors_changed = 0
    for agency in catalog.agencies.values():
        stmt = dialect_insert(session, AgencyRow).values(
            code=agency.code,
            name=agency.name,
            level=agency.level,
            webhook_url=agency.webhook,
            receives_dossiers=agency.receives_dossiers,
            receives=receiving_scope(catalog, agency.code),
            retired_at=None,
            updated_at=now,
        )
        changed = [AgencyRow.name, AgencyRow.level, AgencyRow.webhook_url, AgencyRow.receives_dossiers,
                   AgencyRow.retired_at]
        stmt = stmt.on_conflict_do_update(
            index_elements=[AgencyRow.code],
            set_={c.key: stmt.excluded[c.key] for c in [*changed, AgencyRow.receives, AgencyRow.updated_at]},
            # Only real changes count (and move updated_at). JSON is compared as text: JSONB
            # has no equality with a bound JSON value on every dialect.
            where=or_(*(c.is_distinct_from(stmt.excluded[c.key]) for c in changed),
                      func.coalesce(_as_text(AgencyRow.receives), "").is_distinct_from(
                          func.coalesce(_as_text(stmt.excluded.receives), ""))),
        )
        agencies_changed += touched(session, stmt)
    for sector in catalog.sectors.values():
        stmt = dialect_insert(session, SectorRow).values(code=sector.code, name=sector.name)
        stmt = stmt.on_conflict_do_update(
            index_elements=[SectorRow.code],
            set_={"name": stmt.excluded.name},
            where=SectorRow.name != stmt.excluded.name,
        )
        sectors_changed += touched(session, stmt)
    return agencies_changed, sectors_changed


def retire_missing(session: Session, catalog: Catalog, now: datetime) -> list[Retired]:
    """Retire the active agencies the catalog (a whole agencies.yaml) no longer has."""
    active = session.scalars(select(AgencyRow.code).where(AgencyRow.retired_at.is_(None))).all()
    return [retire(session, code, now) for code in sorted(set(active) - set(catalog.agencies))]


def _as_text(column: Any) -> Any:
    return cast(column, String)


class UnknownAgencyCode(ValueError):
    """`retire` of a code the registry never had."""


def retire(session: Session, code: str, now: datetime) -> Retired:
    """Retire an agency (idempotent): kept for history, its tokens revoked; returns the
    open steps it still holds (its inbox) for an operator to hand over."""
    row = session.get(AgencyRow, code)
    if row is None:
        raise UnknownAgencyCode(f"unknown agency {code}")
    if row.retired_at is None:
        row.retired_at = now
        row.updated_at = now
    revoked = len(session.execute(update(GatewayTokenRow)
                                  .where(GatewayTokenRow.agency == code, GatewayTokenRow.revoked_at.is_(None))
                                  .values(revoked_at=now).returning(GatewayTokenRow.id)).all())
    steps = session.execute(select(InboxItemRow.dossier_id, InboxItemRow.step_id)
                            .where(InboxItemRow.agency == code)
                            .order_by(InboxItemRow.due_at, InboxItemRow.dossier_id)).all()
    session.flush()
    return Retired(code, revoked, [(d, s) for d, s in steps])


def known_agency(session: Session, code: str) -> bool:
    """A registered agency that is not retired (what steps may be routed to)."""
    return bool(session.scalar(select(exists().where(AgencyRow.code == code, AgencyRow.retired_at.is_(None)))))


def retired_agency(session: Session, code: str) -> datetime | None:
    """When `code` was retired, or None (active or unknown)."""
    return session.scalar(select(AgencyRow.retired_at).where(AgencyRow.code == code))
