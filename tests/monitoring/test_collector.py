"""The exporter's gauges, from the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import urllib.request
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from activities.portal_payload import PortalPayload
from definitions.loader import load_catalog, load_procedures
from monitoring.collector import read_gauges
from monitoring.exporter import build_registry, serve
from store import orphans, portal_outbox, projection
from store.db import make_engine, make_session_factory
from tests.monitoring.builders import NOW, dossier, situation, step
from tests.monitoring.conftest import DEFINITIONS
from tests.store.builders import portal_journey
from workflows.payloads import DossierState, DossierStatus

STORE_FAMILIES = {
    "lienthong_dossiers_open": {"sector", "level", "status"},
    "lienthong_dossiers_overdue": {"sector", "level"},
    "lienthong_dossiers_awaiting_supplement": {"sector"},
    "lienthong_oldest_overdue_age_seconds": {"sector"},
    "lienthong_procedure_dossiers_open": {"sector", "procedure"},
    "lienthong_procedure_dossiers_overdue": {"sector", "procedure"},
    "lienthong_steps_open": {"sector", "agency"},
    "lienthong_steps_overdue": {"sector", "agency"},
    "lienthong_dossiers_abandoned": {"sector"},
    "lienthong_dossiers_without_due": {"sector"},
    "lienthong_dossiers_awaiting_applicant": {"sector", "level", "reason"},
    "lienthong_dossier_applicant_wait_oldest_seconds": {"sector", "reason"},
    "lienthong_dossiers_withdrawal_requested": {"sector"},
    "lienthong_dossiers_awaiting_receipt": {"desk"},
    "lienthong_dossier_receipt_wait_oldest_seconds": {"desk"},
    "lienthong_dossier_receipt_wait_oldest_working_seconds": {"desk"},
    "lienthong_portal_sync_pending": set(),
    "lienthong_portal_sync_lag_seconds": set(),
    "lienthong_portal_sync_parked": set(),
}


def project(sessions: sessionmaker[Session], states: list[DossierState]) -> None:
    with sessions.begin() as session:
        for state in states:
            projection.apply_state(session, state, 1, now=NOW)


def test_gauges_count_open_and_overdue_as_documented(store: sessionmaker[Session]) -> None:
    project(store, situation())
    with store() as session:
        g = read_gauges(session, NOW)

    # Open: processing or awaiting a supplement; finished dossiers (F, G) are not open.
    assert g.open[("G13-TN01", "xa", "processing")] == 3  # A, B, C
    assert g.open[("G13-TN01", "xa", "awaiting_supplement")] == 2  # D, E
    assert g.open[("G15-TP07", "xa", "processing")] == 1  # H
    assert g.awaiting_supplement["G13-TN01"] == 2
    # Overdue: B (due passed, not flagged yet), C (flagged, extended since), E (flagged,
    # then awaiting). Not D: its due passed while the applicant held it.
    assert g.overdue[("G13-TN01", "xa")] == 3
    assert g.overdue[("G15-TP07", "xa")] == 0
    # Oldest: E's due passed 3 days ago.
    assert g.oldest_overdue_age["G13-TN01"] == timedelta(days=3).total_seconds()
    assert g.oldest_overdue_age["G15-TP07"] == 0
    assert g.procedure_open == {("G13-TN01", "1.012756"): 5, ("G15-TP07", "3.000722"): 1}
    assert g.procedure_overdue == {("G13-TN01", "1.012756"): 3, ("G15-TP07", "3.000722"): 0}
    # Steps held by agencies: B's and C's at vpdk-tinh are overdue; D's step is not (the
    # dossier's clock is stopped); H's step is due a minute ago but not yet flagged: overdue.
    assert g.steps_open == {("G13-TN01", "bpmc-xa-xa-tan-lap"): 1, ("G13-TN01", "vpdk-tinh"): 2,
                            ("G13-TN01", "thue-co-so"): 1, ("G15-TP07", "ubnd-xa-xa-tan-lap"): 1}
    assert g.steps_overdue == {("G13-TN01", "bpmc-xa-xa-tan-lap"): 0, ("G13-TN01", "vpdk-tinh"): 2,
                               ("G13-TN01", "thue-co-so"): 0, ("G15-TP07", "ubnd-xa-xa-tan-lap"): 1}


def test_every_known_sector_and_level_is_reported_at_zero(store: sessionmaker[Session]) -> None:
    with store() as session:
        g = read_gauges(session, NOW)
    # The shipped procedures' (sector, level) pairs, and every sector of sectors.yaml.
    shipped = {(p.procedure.sector, p.procedure.level) for p in load_procedures(load_catalog(DEFINITIONS))}
    assert ("G13-TN01", "xa") in shipped and len(shipped) >= 5
    assert g.overdue == {pair: 0 for pair in shipped}
    assert g.open[("G05-KD10", "tinh", "awaiting_supplement")] == 0
    assert g.awaiting_supplement["G10-LD04"] == 0 and g.oldest_overdue_age["G10-LD04"] == 0
    assert g.steps_open == {} and g.procedure_open == {}


def test_a_due_passing_makes_a_dossier_overdue_without_any_write(store: sessionmaker[Session]) -> None:
    """Workers down: nothing flags the dossier, the gauge still turns at the due instant."""
    project(store, [dossier("X", due=timedelta(minutes=10),
                            steps=[step("tham-dinh", "vpdk-tinh", due=timedelta(minutes=5))])])
    with store() as session:
        before = read_gauges(session, NOW)
        after = read_gauges(session, NOW + timedelta(minutes=11))
    assert before.overdue[("G13-TN01", "xa")] == 0 and before.steps_overdue[("G13-TN01", "vpdk-tinh")] == 0
    assert after.overdue[("G13-TN01", "xa")] == 1 and after.steps_overdue[("G13-TN01", "vpdk-tinh")] == 1
    assert after.oldest_overdue_age["G13-TN01"] == 60


def test_one_scrape_is_a_fixed_number_of_queries(store: sessionmaker[Session]) -> None:
    """Grouped in SQL: the number of statements does not grow with the dossiers."""
    engine = store.kw["bind"]
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with store() as session:
            read_gauges(session, NOW)
        few = len(statements)
        project(store, [dossier(f"N{i}", due=timedelta(hours=i - 25),
                                steps=[step("tham-dinh", "vpdk-tinh")]) for i in range(50)])
        statements.clear()
        with store() as session:
            g = read_gauges(session, NOW)
        assert len(statements) == few == 13, statements  # 3 registries, 3 counts, 2 stuck, 3 of issue 14, 2 portal
        assert g.overdue[("G13-TN01", "xa")] == 25
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_the_exporter_serves_every_family_with_bounded_labels(store: sessionmaker[Session]) -> None:
    project(store, situation())
    server = serve(build_registry(store, clock=lambda: NOW), "127.0.0.1", 0)
    try:
        text = urllib.request.urlopen(server.url, timeout=10).read().decode()
    finally:
        server.stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, labels in STORE_FAMILIES.items():
        assert families[name].type == "gauge", name
        for sample in families[name].samples:
            assert set(sample.labels) == labels, (name, sample)
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert values[("lienthong_dossiers_overdue", (("level", "xa"), ("sector", "G13-TN01")))] == 3
    assert values[("lienthong_exporter_store_up", ())] == 1
    assert "lienthong_exporter_collect_duration_seconds" in families
    assert "process_cpu_seconds" in families  # the exporter process itself
    # No dossier id ever appears in a label value.
    assert not any(v in ("A", "B", "C", "D", "E", "F", "G", "H") for f in families.values()
                   for s in f.samples for v in s.labels.values())


def test_an_unreadable_database_is_reported_not_fatal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    not_a_database = tmp_path / "nothing.db"
    not_a_database.write_bytes(b"this is not an SQLite file\n" * 100)
    engine = make_engine(f"sqlite:///{not_a_database}")
    server = serve(build_registry(make_session_factory(engine)), "127.0.0.1", 0)
    try:
        first = urllib.request.urlopen(server.url, timeout=10).read().decode()
        second = urllib.request.urlopen(server.url, timeout=10).read().decode()
    finally:
        server.stop()
        engine.dispose()
    families = {f.name: f for f in text_string_to_metric_families(second)}
    assert families["lienthong_exporter_store_up"].samples[0].value == 0
    assert families["lienthong_exporter_collect_errors"].samples[0].value == 2
    assert not set(STORE_FAMILIES) & set(families)
    assert "lienthong_exporter_store_up 0.0" in first


def test_finished_dossiers_leave_the_gauges(store: sessionmaker[Session]) -> None:
    late = dossier("L", due=-timedelta(hours=1), overdue=True, steps=[step("tham-dinh", "vpdk-tinh", overdue=True)])
    project(store, [late])
    with store() as session:
        assert read_gauges(session, NOW).overdue[("G13-TN01", "xa")] == 1
    done = late.model_copy(update={"status": DossierStatus.COMPLETED, "steps": [], "verdict": "late",
                                   "completed_at": NOW})
    with store.begin() as session:
        projection.apply_state(session, done, 2, now=NOW)
    with store() as session:
        g = read_gauges(session, NOW)
    assert g.overdue[("G13-TN01", "xa")] == 0 and g.steps_open == {} and g.procedure_open == {}


def test_abandoned_dossiers_leave_the_open_families_and_are_counted(store: sessionmaker[Session]) -> None:
    project(store, situation())
    with store() as session:
        before = read_gauges(session, NOW)
        b = orphans.details(session, ["B"])
    assert before.abandoned["G13-TN01"] == 0 and set(before.abandoned.values()) == {0}
    with store.begin() as session:
        assert orphans.mark_abandoned(session, b, NOW) == ["B"]
    with store() as session:
        after = read_gauges(session, NOW)
        assert orphans.mark_abandoned(session, b, NOW) == []  # no longer open: left alone
    # B was open, overdue and held a step at vpdk-tinh: it leaves all of them, nothing else moves.
    assert after.open[("G13-TN01", "xa", "processing")] == before.open[("G13-TN01", "xa", "processing")] - 1
    assert after.overdue[("G13-TN01", "xa")] == before.overdue[("G13-TN01", "xa")] - 1
    assert after.steps_open[("G13-TN01", "vpdk-tinh")] == before.steps_open[("G13-TN01", "vpdk-tinh")] - 1
    assert after.steps_overdue[("G13-TN01", "vpdk-tinh")] == before.steps_overdue[("G13-TN01", "vpdk-tinh")] - 1
    assert after.abandoned["G13-TN01"] == 1 and after.abandoned["G15-TP07"] == 0
    unchanged = ("awaiting_supplement", "oldest_overdue_age", "without_due")
    for name in unchanged:
        assert getattr(after, name) == getattr(before, name), name


def test_open_dossiers_without_a_due_count_once_their_row_is_five_minutes_old(store: sessionmaker[Session]) -> None:
    stuck = dossier("S").model_copy(update={"due_at": None, "original_due_at": None})
    done = dossier("T", status=DossierStatus.COMPLETED).model_copy(update={"due_at": None})
    project(store, [stuck, done, dossier("A")])
    with store() as session:
        assert read_gauges(session, NOW + timedelta(minutes=4)).without_due["G13-TN01"] == 0  # just written
        later = read_gauges(session, NOW + timedelta(minutes=6))
    assert later.without_due["G13-TN01"] == 1  # S; not T (finished), not A (has a due)
    assert later.without_due["G15-TP07"] == 0


def test_the_portal_gauges_say_what_waits_how_long_and_what_was_refused(store: sessionmaker[Session]) -> None:
    with store() as session:
        idle = read_gauges(session, NOW)
    assert (idle.portal_pending, idle.portal_lag, idle.portal_parked) == (0, 0.0, 0)
    first, second, *_ = portal_journey("HS-P")
    with store.begin() as session:
        projection.write_changes(session, first, portal=PortalPayload(), now=NOW - timedelta(minutes=12))
        projection.write_changes(session, second, portal=PortalPayload(), now=NOW - timedelta(minutes=2))
    with store() as session:
        waiting = read_gauges(session, NOW)
    assert (waiting.portal_pending, waiting.portal_lag, waiting.portal_parked) == (4, 12 * 60.0, 0)
    with store.begin() as session:
        one, two, three, five = portal_outbox.list_rows(session, "HS-P")
        portal_outbox.mark_delivered(session, one.id, NOW)
        portal_outbox.mark_delivered(session, two.id, NOW)
        portal_outbox.park(session, five.id, NOW, "HTTP 422")  # the dossier's last change: not superseded
    with store() as session:
        later = read_gauges(session, NOW + timedelta(minutes=1))
    assert (later.portal_pending, later.portal_lag, later.portal_parked) == (1, 3 * 60.0, 1)
