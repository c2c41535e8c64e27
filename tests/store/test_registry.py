"""The definition registry is immutable per code@version; registries sync from the catalog."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from definitions.loader import Catalog, load_catalog, load_procedures
from definitions.schema import ProcedureSnapshot
from store.deliveries import list_deliveries, record_delivery, webhook_url
from store.models import AgencyRow, DefinitionRow, SectorRow
from store.registry import (
    VersionConflictError,
    deploy,
    effective_definition,
    get_definition,
    known_agency,
    list_definitions,
    snapshot_of,
    sync_registries,
)

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def shipped(catalog: Catalog) -> list[ProcedureSnapshot]:
    return load_procedures(catalog)


def _body(snapshot: ProcedureSnapshot) -> str:
    assert snapshot.source is not None
    return Path(snapshot.source).read_bytes().decode("utf-8")


def _land(shipped: list[ProcedureSnapshot]) -> ProcedureSnapshot:
    return next(s for s in shipped if s.ref == "1.012756@1")


def _variant(snapshot: ProcedureSnapshot, body: str, **changes: object) -> ProcedureSnapshot:
    """The snapshot of an edited file: other text, maybe other fields."""
    return snapshot.model_copy(update={
        "procedure": snapshot.procedure.model_copy(update=changes),
        "content_hash": hashlib.sha256(body.encode()).hexdigest(),
    })


def test_deploy_new_then_unchanged(sessions: sessionmaker[Session], shipped: list[ProcedureSnapshot]) -> None:
    snapshot = _land(shipped)
    with sessions.begin() as session:
        first = deploy(session, snapshot, _body(snapshot), "operator-a", NOW)
    with sessions.begin() as session:
        again = deploy(session, snapshot, _body(snapshot), "operator-b", NOW + timedelta(days=1))
    assert (first.outcome, again.outcome) == ("deployed", "unchanged")
    assert again.definition.id == first.definition.id
    assert (again.definition.deployed_by, again.definition.deployed_at) == ("operator-a", NOW)
    row = first.definition
    assert (row.ref, row.content_hash, row.body) == ("1.012756@1", snapshot.content_hash, _body(snapshot))
    assert (row.name, row.sector, row.level, row.calendar, row.effective_from) == (
        snapshot.procedure.name, "G13-TN01", "xa", "vn-gov", date(2025, 7, 1))


def test_changed_content_under_a_deployed_version_is_refused(
    sessions: sessionmaker[Session], shipped: list[ProcedureSnapshot]
) -> None:
    snapshot = _land(shipped)
    with sessions.begin() as session:
        deploy(session, snapshot, _body(snapshot), "operator-a", NOW)
    edited = _body(snapshot) + "# one more comment\n"
    with pytest.raises(VersionConflictError) as refused, sessions.begin() as session:
        deploy(session, _variant(snapshot, edited), edited, "operator-b", NOW)
    message = str(refused.value)
    assert message.startswith(f"1.012756@1 is already deployed with different content (sha256 {snapshot.content_hash[:12]}")
    assert "2026-03-02T01:00:00+00:00 by operator-a" in message
    assert message.endswith("give the changed file a new version")
    with sessions() as session:
        [row] = list_definitions(session)
    assert (row.content_hash, row.body) == (snapshot.content_hash, _body(snapshot))


def test_a_body_that_is_not_the_snapshot_is_refused(
    sessions: sessionmaker[Session], shipped: list[ProcedureSnapshot]
) -> None:
    snapshot = _land(shipped)
    with pytest.raises(ValueError, match="sha256"), sessions.begin() as session:
        deploy(session, snapshot, _body(snapshot).replace("\n", "\r\n"), "operator-a", NOW)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(DefinitionRow)) == 0


def test_every_shipped_definition_round_trips(
    sessions: sessionmaker[Session], shipped: list[ProcedureSnapshot]
) -> None:
    with sessions.begin() as session:
        for snapshot in shipped:
            assert deploy(session, snapshot, _body(snapshot), "ci", NOW).outcome == "deployed"
    with sessions() as session:
        rows = list_definitions(session)
        assert [r.ref for r in rows] == sorted(s.ref for s in shipped)
        assert {r.ref: snapshot_of(r) for r in rows} == {s.ref: s for s in shipped}


def test_newest_and_effective_versions(sessions: sessionmaker[Session], shipped: list[ProcedureSnapshot]) -> None:
    v1 = _land(shipped)
    body2 = _body(v1).replace("version: 1", "version: 2").replace("effective_from: 2025-07-01", "effective_from: 2026-07-01")
    v2 = _variant(v1, body2, version=2, effective_from=date(2026, 7, 1))
    body3 = _body(v1).replace("version: 1", "version: 3")
    v3 = _variant(v1, body3, version=3, effective_from=date(2027, 1, 1))
    with sessions.begin() as session:
        deploy(session, v2, body2, "ci", NOW)  # deployed out of order on purpose
        deploy(session, v1, _body(v1), "ci", NOW)
        deploy(session, v3, body3, "ci", NOW)
    with sessions() as session:
        assert get_definition(session, "1.012756").version == 3  # type: ignore[union-attr]
        assert get_definition(session, "1.012756", 1).version == 1  # type: ignore[union-attr]
        assert get_definition(session, "1.012756", 9) is None
        assert get_definition(session, "9.999999") is None

        def effective(day: date) -> int | None:
            row = effective_definition(session, "1.012756", day)
            return None if row is None else row.version

        assert effective(date(2025, 6, 30)) is None
        assert effective(date(2025, 7, 1)) == 1
        assert effective(date(2026, 6, 30)) == 1
        assert effective(date(2026, 7, 1)) == 2
        assert effective(date(2027, 1, 1)) == 3


def test_an_undated_version_is_always_in_effect(sessions: sessionmaker[Session], shipped: list[ProcedureSnapshot]) -> None:
    v1 = _land(shipped)
    undated = _variant(v1, "undated", effective_from=None)
    with sessions.begin() as session:
        deploy(session, undated, "undated", "ci", NOW)
    with sessions() as session:
        assert effective_definition(session, "1.012756", date(1999, 1, 1)) is not None


def test_sync_registries(sessions: sessionmaker[Session], catalog: Catalog) -> None:
    with sessions.begin() as session:
        assert sync_registries(session, catalog, NOW) == (len(catalog.agencies), len(catalog.sectors))
    with sessions.begin() as session:
        assert sync_registries(session, catalog, NOW + timedelta(hours=1)) == (0, 0)

    renamed_code, dropped_code = sorted(catalog.agencies)[:2]
    sector_code = sorted(catalog.sectors)[0]
    agencies = dict(catalog.agencies)
    agencies[renamed_code] = agencies[renamed_code].model_copy(update={"webhook": "https://example.test/hook"})
    del agencies[dropped_code]
    sectors = {**catalog.sectors, sector_code: catalog.sectors[sector_code].model_copy(update={"name": "Đổi tên"})}
    later = NOW + timedelta(days=1)
    with sessions.begin() as session:
        assert sync_registries(session, dataclasses.replace(catalog, agencies=agencies, sectors=sectors), later) == (1, 1)

    with sessions() as session:
        assert session.get_one(AgencyRow, renamed_code).updated_at == later
        assert webhook_url(session, renamed_code) == "https://example.test/hook"
        assert session.get_one(AgencyRow, dropped_code).updated_at == NOW  # kept, untouched
        assert session.get_one(SectorRow, sector_code).name == "Đổi tên"
        assert known_agency(session, renamed_code) and known_agency(session, dropped_code)
        assert not known_agency(session, "khong-co")
        assert webhook_url(session, "khong-co") is None
        desk = next(a for a in catalog.agencies.values() if a.receives_dossiers)
        assert session.get_one(AgencyRow, desk.code).receives_dossiers is True


def test_webhook_deliveries_are_appended(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for attempt, outcome in [(1, "failed"), (2, "delivered")]:
            record_delivery(session, agency="thue-co-so", dossier_id="HS-1", step_id="tham-dinh",
                            kind="step_assigned", url="https://example.test/hook", outcome=outcome,
                            status_code=503 if outcome == "failed" else 200, attempt=attempt,
                            error="Service Unavailable" if outcome == "failed" else None,
                            at=NOW + timedelta(seconds=attempt))
    with sessions() as session:
        rows = list_deliveries(session, dossier_id="HS-1")
        assert [(r.attempt, r.outcome, r.status_code) for r in rows] == [(1, "failed", 503), (2, "delivered", 200)]
        assert list_deliveries(session, agency="other") == []
    with pytest.raises(Exception, match="ck_webhook_deliveries_outcome|CHECK constraint"), sessions.begin() as session:
        record_delivery(session, agency="a", dossier_id="HS-1", step_id="s", kind="step_assigned",
                        url="u", outcome="maybe")
