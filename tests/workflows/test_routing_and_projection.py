"""Routing, webhooks, the audit log and the projection, through real workflows.

A real Temporal (time-skipping test server), a real database (SQLite and
PostgreSQL) and a real HTTP server on loopback standing in for an agency's system.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities import webhooks
from activities.recording import RecordingActivities
from store import deliveries, inbox, projection
from store.models import AgencyRow
from tests.workflows.harness import (
    assigned,
    complete,
    finished,
    resubmit,
    running_worker,
    snapshot,
    start_dossier,
    state,
    until,
)
from workflows.dossier import DossierWorkflow
from workflows.payloads import ApplyCalendar, DossierState, StoreWrite

SECRET = "bí-mật-của-sở"
DESK = "bpmc-xa-xa-tan-lap"


@pytest.fixture
def store(migrated_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    return migrated_sessions


class AgencySystem:
    """An agency's HTTP endpoint answering with scripted status codes."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(({k: v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}" if status < 300 else b'{"detail": "refused by test"}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lienthong"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def payloads(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def agency_system() -> Iterator[callable]:
    systems: list[AgencySystem] = []

    def make(statuses: list[int]) -> AgencySystem:
        systems.append(AgencySystem(statuses))
        return systems[-1]

    yield make
    for system in systems:
        system.close()


def register_agency(sessions: sessionmaker[Session], code: str, webhook: str | None) -> None:
    with sessions.begin() as session:
        session.merge(AgencyRow(code=code, name=code, level="tinh", webhook_url=webhook,
                                receives_dossiers=False, updated_at=datetime.now(UTC)))


def delivered(sessions: sessionmaker[Session], dossier_id: str) -> list:
    with sessions() as session:
        return list(deliveries.list_deliveries(session, dossier_id=dossier_id))


ONE_STEP = snapshot(steps=[{"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "1d"}])


async def test_webhook_is_signed_and_retried_on_503(private_time_skipping_env, store, agency_system, monkeypatch):
    monkeypatch.setenv("LIENTHONG_WEBHOOK_SECRET_VPDK_TINH", SECRET)
    system = agency_system([503, 503, 200])
    register_agency(store, "vpdk-tinh", system.url)
    client = private_time_skipping_env.client
    async with running_worker(client, store) as tq:
        handle = await start_dossier(client, tq, ONE_STEP)
        await until(handle, assigned("tham-dinh"))
        await until(handle, lambda s: len(delivered(store, handle.id)) >= 3, "three delivery attempts")
        rows = delivered(store, handle.id)
        assert [(r.outcome, r.status_code, r.attempt) for r in rows] == [
            ("failed", 503, 1), ("failed", 503, 2), ("delivered", 200, 3)]

    ids = set()
    for headers, body in system.requests:
        assert webhooks.verify_signature(SECRET.encode(), headers[webhooks.TIMESTAMP_HEADER], body,
                                         headers[webhooks.SIGNATURE_HEADER])
        assert not webhooks.verify_signature(b"another secret", headers[webhooks.TIMESTAMP_HEADER], body,
                                             headers[webhooks.SIGNATURE_HEADER])
        ids.add(headers[webhooks.DELIVERY_HEADER])
    assert len(ids) == 1  # the same delivery id on every retry: receivers can de-duplicate
    payload = system.payloads()[0]
    assert payload["kind"] == "step_assigned" and payload["dossier_id"] == handle.id
    assert payload["step_id"] == "tham-dinh" and payload["agency"] == "vpdk-tinh"


async def test_webhook_refused_with_400_is_recorded_and_not_retried(private_time_skipping_env, store, agency_system,
                                                                    monkeypatch):
    monkeypatch.setenv("LIENTHONG_WEBHOOK_SECRET", SECRET)
    system = agency_system([400])
    register_agency(store, "vpdk-tinh", system.url)
    client = private_time_skipping_env.client
    async with running_worker(client, store) as tq:
        handle = await start_dossier(client, tq, ONE_STEP)
        await until(handle, assigned("tham-dinh"))
        await until(handle, lambda s: len(system.requests) >= 1, "one delivery attempt")
        # The dossier is not held up by the agency's refusal: completing still works.
        await complete(handle, "tham-dinh", "vpdk-tinh")
        await finished(handle)
        with store() as session:
            rows = deliveries.list_deliveries(session, dossier_id=handle.id)
    assigned_rows = [r for r in rows if r.kind == "step_assigned"]
    assert [(r.outcome, r.status_code, r.attempt) for r in assigned_rows] == [("refused", 400, 1)]
    assert len([p for p in system.payloads() if p["kind"] == "step_assigned"]) == 1


async def test_escalation_goes_to_the_escalation_agency_webhook(private_time_skipping_env, store, agency_system,
                                                                monkeypatch):
    monkeypatch.setenv("LIENTHONG_WEBHOOK_SECRET", SECRET)
    system = agency_system([])
    register_agency(store, "thue-tinh", system.url)
    snap = snapshot(steps=[{"id": "xac-dinh-thue", "agency": "thue-co-so", "deadline": "1d",
                            "escalate_to": "thue-tinh"}])
    env = private_time_skipping_env
    async with running_worker(env.client, store) as tq:
        handle = await start_dossier(env.client, tq, snap)
        await until(handle, assigned("xac-dinh-thue"))
        await env.sleep(timedelta(days=1, hours=1))
        await until(handle, lambda s: len(system.requests) >= 1, "escalation delivered")
    payload = system.payloads()[0]
    assert payload["kind"] == "escalation" and payload["agency"] == "thue-tinh"
    assert payload["responsible_agency"] == "thue-co-so"


async def test_projection_equals_the_workflow_state_after_a_full_run(private_time_skipping_env, store):
    steps = [
        {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
        {"parallel": [
            {"id": "xac-dinh-thue", "agency": "thue-co-so", "deadline": "1d"},
            {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "1d"},
        ]},
        {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
    ]
    env = private_time_skipping_env
    async with running_worker(env.client, store) as tq:
        handles = [await start_dossier(env.client, tq, snapshot(steps=steps)) for _ in range(3)]
        for h in handles:
            await until(h, assigned("tiep-nhan"))
            await complete(h, "tiep-nhan", DESK)
            await until(h, lambda s: s.step("tham-dinh").status == "assigned")
        # While they wait, the inbox holds them (written just after the state changes).
        def in_inbox() -> set[str]:
            with store() as session:
                return {i.dossier_id for i in inbox.list_items(session, "vpdk-tinh", limit=100,
                                                               now=datetime.now(UTC))}

        await until(handles[-1], lambda _: in_inbox() >= {h.id for h in handles}, "inbox items")
        await complete(handles[0], "tham-dinh", "vpdk-tinh", "supplement", note="thiếu giấy tờ")
        await resubmit(handles[0])
        for h in handles:
            await complete(h, "xac-dinh-thue", "thue-co-so")
            await complete(h, "tham-dinh", "vpdk-tinh")
            await until(h, assigned("tra-ket-qua"))
        await complete(handles[1], "tra-ket-qua", DESK)
        await complete(handles[2], "tra-ket-qua", DESK, "rejected", note="không đủ điều kiện")
        finals = [await finished(handles[1]), await finished(handles[2])]
        # Still open at tra-ket-qua (its dues may pass meanwhile): the state once the
        # store has caught up with it (each change is written just after it is made).
        def projected(dossier_id: str) -> DossierState | None:
            with store() as session:
                return projection.get_dossier(session, dossier_id)

        running = await until(handles[0], lambda s: projected(s.dossier_id) == s, "projection equals the state")

    with store() as session:
        for final in finals:
            assert projection.get_dossier(session, final.dossier_id) == final
        for final in finals:
            seqs = [e.seq for e in projection.list_events(session, final.dossier_id)]
            assert seqs == list(range(1, final.last_event_seq + 1))  # no gap, no duplicate
        seqs = [e.seq for e in projection.list_events(session, running.dossier_id)]
        # (its dues may have passed since, adding events after running's last)
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= running.last_event_seq
        for agency in ("vpdk-tinh", "thue-co-so"):
            assert not [i for i in inbox.list_items(session, agency, limit=100, now=datetime.now(UTC))
                        if i.dossier_id in {h.id for h in handles}]
        desk = [i for i in inbox.list_items(session, DESK, limit=100, now=datetime.now(UTC)) if i.dossier_id in {h.id for h in handles}]
        assert [(i.dossier_id, i.step_id) for i in desk] == [(handles[0].id, "tra-ket-qua")]
        kinds = [e.kind for e in projection.list_events(session, handles[0].id)]
        assert "supplement_requested" in kinds and "resubmitted" in kinds


class FlakyRecording(RecordingActivities):
    """Writes, then fails its first attempt: as if the worker died before reporting."""

    @activity.defn(name="write_changes")
    def write_changes(self, write: StoreWrite) -> None:
        super().write_changes(write)
        if activity.info().attempt == 1:
            raise RuntimeError("lost the connection after committing")


async def test_a_retried_event_write_leaves_one_row(private_time_skipping_env, store):
    from temporalio.worker import Worker

    from activities.routing import RoutingActivities

    client = private_time_skipping_env.client
    routing = RoutingActivities(store)
    import concurrent.futures
    import uuid

    tq = f"flaky-{uuid.uuid4()}"
    flaky = FlakyRecording(store)
    async with Worker(client, task_queue=tq, workflows=[DossierWorkflow],
                      activities=[flaky.write_changes, routing.notify_agency],
                      activity_executor=concurrent.futures.ThreadPoolExecutor(4)):
        handle = await start_dossier(client, tq, ONE_STEP)
        await until(handle, assigned("tham-dinh"))
        await complete(handle, "tham-dinh", "vpdk-tinh")
        final = await finished(handle)
    with store() as session:
        events = projection.list_events(session, handle.id)
        assert [e.seq for e in events] == list(range(1, final.last_event_seq + 1))
        assert projection.get_dossier(session, handle.id) == final


async def test_a_calendar_change_moves_an_open_dossiers_due(private_time_skipping_env, store, tmp_path, monkeypatch):
    """An operator adds a newly announced day off; the open dossier's dues move."""
    from definitions.calendar import load_calendar

    definitions = Path(__file__).resolve().parents[2] / "definitions"
    shutil.copytree(definitions / "calendars", tmp_path / "calendars")
    monkeypatch.setenv("LIENTHONG_DEFINITIONS", str(tmp_path))
    snap = snapshot(calendar="vn-gov", deadline="5d",
                    steps=[{"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "3d"}])
    env = private_time_skipping_env
    async with running_worker(env.client, store) as tq:
        handle = await start_dossier(env.client, tq, snap)
        before = await until(handle, assigned("tham-dinh"))
        cal = load_calendar("vn-gov", tmp_path)
        # The first working day after the clock started becomes a day off.
        day = cal.next_working_day(before.clock_started_at.astimezone(cal.timezone).date())
        path = tmp_path / "calendars" / "vn-gov.yaml"
        path.write_text(path.read_text().replace(
            "days_off:\n", f"days_off:\n  - date: {day.isoformat()}\n    reason: \"Nghỉ đột xuất (test)\"\n", 1))
        assert not load_calendar("vn-gov", tmp_path).is_working_day(day)

        new_cal = load_calendar("vn-gov", tmp_path)
        await handle.execute_update(DossierWorkflow.apply_calendar, ApplyCalendar(
            calendar="vn-gov", snapshot=new_cal.snapshot(before.received_at), reason="Công văn nghỉ bù"))
        after = await state(handle)
        assert after.due_at > before.due_at
        assert new_cal.elapsed(before.clock_started_at, after.due_at) == new_cal.duration("5d")
        assert after.step("tham-dinh").due_at > before.step("tham-dinh").due_at
        assert after.original_due_at == after.due_at
        with store() as session:
            kinds = [(e.kind, e.note) for e in projection.list_events(session, handle.id)]
        applied = [note for kind, note in kinds if kind == "calendar_applied"]
        assert len(applied) == 1 and "Công văn nghỉ bù" in applied[0]

        # Applying again changes nothing and records nothing.
        await handle.execute_update(DossierWorkflow.apply_calendar, ApplyCalendar(
            calendar="vn-gov", snapshot=new_cal.snapshot(before.received_at), reason="lần nữa"))
        again = await state(handle)
        assert again.due_at == after.due_at
        with store() as session:
            assert [e.kind for e in projection.list_events(session, handle.id)].count("calendar_applied") == 1
