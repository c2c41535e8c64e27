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
from typing import Literal

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from definitions.loader import Catalog
from definitions.schema import ProcedureSnapshot
from definitions.versions import newest_in_effect
from store.models import AgencyRow, DefinitionRow, SectorRow
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


def sync_registries(session: Session, catalog: Catalog, now: datetime) -> tuple[int, int]:
    """Upsert agencies and sectors from the catalog; returns how many rows of each were
    added or changed. Entries that left the catalog are kept as they are: old dossiers
    and events still name them, and nothing routes to a code the catalog no longer has."""
    agencies_changed = 0
    for agency in catalog.agencies.values():
        stmt = dialect_insert(session, AgencyRow).values(
            code=agency.code,
            name=agency.name,
            level=agency.level,
            webhook_url=agency.webhook,
            receives_dossiers=agency.receives_dossiers,
            updated_at=now,
        )
        changed = [AgencyRow.name, AgencyRow.level, AgencyRow.webhook_url, AgencyRow.receives_dossiers]
        stmt = stmt.on_conflict_do_update(
            index_elements=[AgencyRow.code],
            set_={c.key: stmt.excluded[c.key] for c in [*changed, AgencyRow.updated_at]},
            # Only real changes count (and move updated_at).
            where=or_(*(c.is_distinct_from(stmt.excluded[c.key]) for c in changed)),
        )
        agencies_changed += touched(session, stmt)
    sectors_changed = 0
    for sector in catalog.sectors.values():
        stmt = dialect_insert(session, SectorRow).values(code=sector.code, name=sector.name)
        stmt = stmt.on_conflict_do_update(
            index_elements=[SectorRow.code],
            set_={"name": stmt.excluded.name},
            where=SectorRow.name != stmt.excluded.name,
        )
        sectors_changed += touched(session, stmt)
    return agencies_changed, sectors_changed


def known_agency(session: Session, code: str) -> bool:
    return bool(session.scalar(select(exists().where(AgencyRow.code == code))))
