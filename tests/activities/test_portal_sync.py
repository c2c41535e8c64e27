"""The National Portal's sync under faults: the real PortalSyncWorkflow on a real Temporal
(time-skipping server), the real store (SQLite and PostgreSQL) and a real HTTP server
on loopback playing the portal (tests/support/fake_portal.py), which takes each change
once per Idempotency-Key. Every test checks that each change arrived exactly once and,
per dossier, in seq order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import metrics
from activities.portal import PortalConfig
from activities.portal_payload import PortalPayload
from services import portal
from store import portal_outbox, projection
from tests.store.builders import PORTAL_JOURNEY_ROWS, portal_journey
from tests.support.fake_portal import FakePortal, Planned
from workers.worker import build_worker
from workflows.payloads import StoreWrite
from workflows.portal_sync import PORTAL_SYNC_ID, PortalSyncWorkflow

ADAPTER = PortalPayload()
SEQS = [seq for seq, _, _ in PORTAL_JOURNEY_ROWS]
STATUSES = [status for _, _, status in PORTAL_JOURNEY_ROWS]


@pytest.fixture
def sessions(migrated_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    return migrated_sessions


@pytest.fixture
def fake() -> AsyncIterator[FakePortal]:
    server = FakePortal().start()
    yield server
    server.stop()


def write(sessions: sessionmaker[Session], *changes: StoreWrite) -> None:
    """What the dossiers' store writes do while the sync is on."""
    for change in changes:
        with sessions.begin() as session:
            projection.write_changes(session, change, portal=ADAPTER)


def interleaved(*dossiers: str) -> list[StoreWrite]:
    journeys = [portal_journey(d) for d in dossiers]
    return [journey[i] for i in range(len(journeys[0])) for journey in journeys]


@asynccontextmanager
async def syncing(env: WorkflowEnvironment, sessions: sessionmaker[Session], fake: FakePortal,
                  token: str | None = None, rounds_per_run: int | None = None,
                  ) -> AsyncIterator[WorkflowHandle[PortalSyncWorkflow, None]]:
    """A worker with the portal on (short rounds, small batches) and the sync started as
    a worker starts it (or with `rounds_per_run`); terminated on exit."""
    config = PortalConfig(url=fake.url, token=token, batch_size=2, timeout=5.0, poll=0.05, idle=0.3,
                          round_seconds=1.0)
    task_queue = f"portal-{uuid.uuid4()}"
    async with build_worker(env.client, task_queue, sessions, portal=config):
        if rounds_per_run is None:
            await portal.ensure_portal_sync(env.client, task_queue)
        else:
            await env.client.start_workflow(PortalSyncWorkflow.run, rounds_per_run, id=PORTAL_SYNC_ID,
                                            task_queue=task_queue)
        handle = env.client.get_workflow_handle_for(PortalSyncWorkflow.run, PORTAL_SYNC_ID)
        try:
            yield handle
        finally:
            await handle.terminate(reason="test finished")


async def until(what: str, check: Callable[[], bool], attempts: int = 1200) -> None:
    """Wait for the sync (it runs on other tasks and threads); a bound, not a measure."""
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def all_delivered(sessions: sessionmaker[Session], count: int) -> Callable[[], bool]:
    def check() -> bool:
        with sessions() as session:
            backlog = portal_outbox.backlog(session)
        return backlog.pending == 0 and backlog.parked == 0 and delivered(sessions) == count
    return check


def delivered(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return sum(1 for d in ("HS-A", "HS-B", "HS-C") for r in portal_outbox.list_rows(session, d)
                   if r.delivered_at is not None)


def attempts(sessions: sessionmaker[Session], dossier: str, seq: int) -> int:
    with sessions() as session:
        return next(r.attempts for r in portal_outbox.list_rows(session, dossier) if r.seq == seq)


def failures(reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("lienthong_portal_sync_failures_total", {"reason": reason}) or 0.0


def assert_each_once_in_order(fake: FakePortal, *dossiers: str) -> None:
    keys = fake.keys()
    assert len(keys) == len(set(keys)), "a change was taken twice"
    for dossier in dossiers:
        taken = [(key, body) for key, body in fake.taken if key.startswith(f"{dossier}:")]
        assert [key for key, _ in taken] == [f"{dossier}:{seq}" for seq in SEQS], dossier
        assert [body["TrangThaiHoSo"] for _, body in taken] == STATUSES, dossier
        # Each message carries the timeline so far: one entry more each time.
        assert [len(body["QuaTrinhXuLy"]) for _, body in taken] == list(range(1, len(SEQS) + 1)), dossier


async def test_each_change_arrives_once_and_in_order_per_dossier(private_time_skipping_env, sessions, fake):
    changes = interleaved("HS-A", "HS-B", "HS-C")
    write(sessions, *changes[:5])
    async with syncing(private_time_skipping_env, sessions, fake):
        write(sessions, *changes[5:])  # while it runs
        await until("every change delivered", all_delivered(sessions, 3 * len(SEQS)))
        # A second worker's start joins the running sync.
        first = (await private_time_skipping_env.client.get_workflow_handle(PORTAL_SYNC_ID).describe()).run_id
        assert await portal.ensure_portal_sync(private_time_skipping_env.client, "another-queue") == first
    assert_each_once_in_order(fake, "HS-A", "HS-B", "HS-C")
    assert all(body["ChuHoSo"] == "Nguyễn Văn A" for _, body in fake.taken)
    assert all(request.key is not None for request in fake.requests)
    with sessions() as session:  # delivered rows keep no name
        assert {r.payload["ChuHoSo"] for r in portal_outbox.list_rows(session, "HS-A")} == {None}


async def test_a_5xx_is_retried_by_temporal_until_the_portal_takes_it(private_time_skipping_env, sessions, fake):
    fake.plan.extend([Planned(503), Planned(502), Planned(500)])
    before = failures("http_5xx")
    write(sessions, *interleaved("HS-A", "HS-B"))
    async with syncing(private_time_skipping_env, sessions, fake):
        await until("every change delivered", all_delivered(sessions, 2 * len(SEQS)))
    assert_each_once_in_order(fake, "HS-A", "HS-B")
    assert failures("http_5xx") - before == 3
    assert attempts(sessions, "HS-A", 1) == 4  # three failures, then delivered
    assert fake.attempts("HS-A:1") == 4 and fake.attempts("HS-B:1") == 1


async def test_a_portal_down_for_a_while_loses_nothing_and_keeps_the_order(private_time_skipping_env, sessions,
                                                                           fake):
    changes = interleaved("HS-A", "HS-B")
    fake.stop()
    before = failures("network")
    write(sessions, *changes[:3])
    async with syncing(private_time_skipping_env, sessions, fake):
        await until("three attempts refused", lambda: attempts(sessions, "HS-A", 1) >= 3)
        write(sessions, *changes[3:])  # changes go on while the portal is down
        assert delivered(sessions) == 0
        fake.start()  # back, on the same port
        await until("every change delivered", all_delivered(sessions, 2 * len(SEQS)))
    assert_each_once_in_order(fake, "HS-A", "HS-B")
    assert failures("network") - before >= 3


async def test_a_lost_answer_is_sent_again_and_the_portal_takes_it_once(private_time_skipping_env, sessions, fake):
    # The portal takes the change, but its answer is a 503 (or never comes back).
    fake.plan.extend([Planned(503, take=True), Planned(200, take=True), Planned(504, take=True)])
    write(sessions, *portal_journey("HS-A"))
    async with syncing(private_time_skipping_env, sessions, fake):
        await until("every change delivered", all_delivered(sessions, len(SEQS)))
    assert_each_once_in_order(fake, "HS-A")
    assert (fake.attempts("HS-A:1"), fake.attempts("HS-A:2"), fake.attempts("HS-A:3")) == (2, 2, 1)


async def test_a_refused_change_is_parked_without_holding_its_dossier(private_time_skipping_env, sessions, fake):
    fake.refuse.update({"HS-A:3": 422, "HS-B:10": 400})
    before = failures("http_4xx")
    write(sessions, *interleaved("HS-A", "HS-B"))
    async with syncing(private_time_skipping_env, sessions, fake):
        await until("HS-B's last change parked", lambda: len(portal.parked(sessions)) == 1)
        await until("the rest delivered", lambda: delivered(sessions) == 2 * len(SEQS) - 2)
        # HS-A:3 is superseded (HS-A:5 carried its timeline entry); HS-B:10 is not.
        assert [(p.dossier_id, p.seq, p.last_error) for p in portal.parked(sessions)] == \
            [("HS-B", 10, 'HTTP 400: {"status": 400}')]
        assert failures("http_4xx") - before == 2
        fake.refuse.clear()  # fixed on the portal's side
        assert [p.seq for p in portal.retry_parked(sessions)] == [10]
        await until("HS-B:10 delivered", lambda: fake.keys().count("HS-B:10") == 1)
    keys = fake.keys()
    assert [k for k in keys if k.startswith("HS-A:")] == [f"HS-A:{s}" for s in SEQS if s != 3]
    assert [k for k in keys if k.startswith("HS-B:")] == [f"HS-B:{s}" for s in SEQS]
    assert len(keys) == len(set(keys))


async def test_wrong_credentials_are_retried_not_parked(private_time_skipping_env, sessions, fake):
    fake.token = "the-portal-s-token"
    write(sessions, *portal_journey("HS-A"))
    async with syncing(private_time_skipping_env, sessions, fake, token="an-expired-token"):
        await until("refused twice", lambda: fake.attempts("HS-A:1") >= 2)
        assert portal.parked(sessions) == [] and fake.taken == []
        fake.token = "an-expired-token"  # the portal's operators renew it
        await until("every change delivered", all_delivered(sessions, len(SEQS)))
    assert_each_once_in_order(fake, "HS-A")
    assert {r.authorization for r in fake.requests} == {"Bearer an-expired-token"}


async def test_the_sync_continues_as_new_and_goes_on(private_time_skipping_env, sessions, fake):
    client = private_time_skipping_env.client
    async with syncing(private_time_skipping_env, sessions, fake, rounds_per_run=2) as handle:
        first = (await handle.describe()).run_id

        async def continued() -> bool:
            described = await handle.describe()
            return described.run_id != first and described.status == WorkflowExecutionStatus.RUNNING

        for _ in range(1200):
            if await continued():
                break
            await asyncio.sleep(0.05)
        assert await continued()
        write(sessions, *portal_journey("HS-A"))
        await until("every change delivered", all_delivered(sessions, len(SEQS)))
        history = await client.get_workflow_handle(PORTAL_SYNC_ID, run_id=first).fetch_history()
        assert len(history.events) < 40  # two rounds, then a new run
    assert_each_once_in_order(fake, "HS-A")


REVIEWED = [
    {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
    {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "2d"},
    {"id": "phe-duyet", "agency": "so-nnmt", "deadline": "1d", "returns_to": ["tham-dinh"]},
    {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "1d", "returns_result": True},
]
DESK = "bpmc-xa-xa-tan-lap"


async def test_a_dossier_never_waits_for_the_portal_and_its_whole_life_reaches_it_in_order(
        private_time_skipping_env, sessions, fake):
    """The real DossierWorkflow, online, with a supplement and a return, while the portal
    is down from start to end; then the portal comes back and gets every change once."""
    from tests.workflows import harness

    client = private_time_skipping_env.client
    fake.stop()
    config = PortalConfig(url=fake.url, batch_size=3, timeout=5.0, poll=0.05, idle=0.3, round_seconds=1.0)
    async with harness.running_worker(client, sessions, portal=config) as tq:
        await portal.ensure_portal_sync(client, tq)
        sync = client.get_workflow_handle_for(PortalSyncWorkflow.run, PORTAL_SYNC_ID)
        try:
            data = {"commune": "xa-tan-lap", "area_m2": 120, "applicant": "Trần Thị C"}
            handle = await harness.start_dossier(client, tq, harness.snapshot(deadline="6d", steps=REVIEWED), data,
                                                 channel="online", received_by=DESK)
            await harness.until(handle, lambda s: s.status == "submitted", "submitted")
            await harness.desk(handle, "receive", DESK, note="đủ thành phần")
            await harness.until(handle, harness.assigned("tiep-nhan"))
            await harness.complete(handle, "tiep-nhan", DESK)
            await harness.until(handle, harness.assigned("tham-dinh"))
            await harness.complete(handle, "tham-dinh", "vpdk-tinh", "supplement", note="Thiếu bản vẽ")
            await harness.resubmit(handle)
            await harness.until(handle, harness.assigned("tham-dinh"))
            await harness.complete(handle, "tham-dinh", "vpdk-tinh")
            await harness.until(handle, harness.assigned("phe-duyet"))
            await harness.send_back(handle, "phe-duyet", "so-nnmt", "tham-dinh", note="Chưa đạt: thiếu trích đo")
            await harness.until(handle, harness.assigned("tham-dinh"))
            await harness.complete(handle, "tham-dinh", "vpdk-tinh")
            await harness.until(handle, harness.assigned("phe-duyet"))
            await harness.complete(handle, "phe-duyet", "so-nnmt")
            await harness.until(handle, harness.assigned("tra-ket-qua"))
            await harness.complete(handle, "tra-ket-qua", DESK)
            final = await harness.finished(handle)  # the portal is still down
            assert final.status == "completed"
            events = await harness.audit_log(tq, handle)
            assert fake.taken == [] and delivered_of(sessions, handle.id) == 0

            fake.start()
            with sessions() as session:
                queued = [(r.seq, r.portal_status) for r in portal_outbox.list_rows(session, handle.id)]
            await until("every change delivered", lambda: delivered_of(sessions, handle.id) == len(queued))
        finally:
            await sync.terminate(reason="test finished")

    # Every status change and timeline step, in the audit log's order, each once.
    sent_kinds = {"step_assigned", "step_completed", "step_returned", "extended", "calendar_applied"}
    expected = [kind for kind, status in events if status is not None or kind in sent_kinds]
    taken = [(key, body) for key, body in fake.taken if key.startswith(f"{handle.id}:")]
    assert [key for key, _ in taken] == [f"{handle.id}:{seq}" for seq, _ in queued]
    assert len(taken) == len(expected) and len(fake.keys()) == len(set(fake.keys()))
    statuses = [body["TrangThaiHoSo"] for _, body in taken]
    assert [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]] == [1, 2, 4, 5, 4, 9, 10]
    last = taken[-1][1]
    assert (last["MaHoSo"], last["ChuHoSo"], last["KenhThucHien"], last["DonViXuLy"]) == \
        (handle.id, "Trần Thị C", 2, DESK)
    assert last["NgayTra"] is not None and last["NgayKetThucXuLy"] is not None
    assert len(last["QuaTrinhXuLy"]) == len(expected)
    assert any("Chưa đạt: thiếu trích đo" in e["NoiDungXuLy"] for e in last["QuaTrinhXuLy"])


def delivered_of(sessions: sessionmaker[Session], dossier_id: str) -> int:
    with sessions() as session:
        return sum(1 for r in portal_outbox.list_rows(session, dossier_id) if r.delivered_at is not None)
