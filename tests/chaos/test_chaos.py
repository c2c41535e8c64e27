"""Chaos: a few hundred dossiers in flight while the worker is SIGKILLed, the Temporal
dev server is restarted and the database is down for 30 seconds (and the worker is
killed again in the middle of that outage: the new one must wait for the database).

Real parts, each a process the test can break: a PostgreSQL cluster of its own (initdb
+ pg_ctl into /tmp, on a free port), `temporal server start-dev --db-filename` (history
in a file, so a restart finds every dossier), `lienthong worker` and `lienthong gateway`.
Agencies complete every step twice (tests/chaos/load.py says how) while the faults
happen. Afterwards, polling until things converge (no timing is asserted):

* every dossier is completed (portal status 10) with every step completed;
* each step was applied once: one accepted `complete_step` Update per step in the
  workflow's history, every answered duplicate carried the applied Update id (it was
  deduplicated) or was refused as not current / finished;
* the audit log has seqs 1..N per dossier, no (dossier, seq) twice and no two events of
  the same kind for the same step;
* the projection equals each workflow's `state` query;
* no inbox item is left or duplicated.

Every fault is a `CHAOS` line in the output; on failure the logs of every process are printed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from services import tokens
from store import projection
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import AgencyRow, DossierEventRow, GatewayRequestRow, InboxItemRow
from tests.chaos.load import AGENCIES, FINAL_EVENTS, STEPS, Load, Sent, start_dossiers
from tests.chaos.processes import (
    Lienthong,
    PostgresCluster,
    TemporalServer,
    chaos_env,
    gateway_ready,
    say,
    tail,
)
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierState

DOSSIERS = 200
TASK_QUEUE = "chaos"
DB_OUTAGE = 30.0  # seconds
# Generous bounds for a loaded 2-core machine; they only stop a hung test, nothing is timed.
PROGRESS_WAIT = 300.0
FINISH_WAIT = 600.0
CONVERGE_WAIT = 180.0
DRAIN_WAIT = 240.0  # every duplicate send answered once the dossiers closed


async def wait_progress(load: Load, fraction: float, processes: list[Lienthong]) -> None:
    give_up = time.monotonic() + PROGRESS_WAIT
    while load.progress < fraction:
        if time.monotonic() > give_up:
            raise AssertionError(f"the load stalled at {load.progress:.0%} of steps dispatched "
                                 f"(waiting for {fraction:.0%})")
        for process in processes:
            if not process.alive():
                raise AssertionError(f"lienthong {process.args[0]} exited unexpectedly:\n{process.output()}")
        await asyncio.sleep(0.2)


async def report(load: Load, stop: asyncio.Event) -> None:
    """A progress line every few seconds: where a slow or stuck run spent its time."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), 15)
            return
        except TimeoutError:
            answered = sum(1 for s in load.sent if s.answer)
            say(f"progress: {len(load.dispatched)}/{load.total_steps} steps dispatched, "
                f"{answered}/{len(load.sent)} sends answered, retries {dict(load.retries)}")
            if len(load.dispatched) == load.total_steps:
                for line in load.pending()[:5]:
                    say(f"  waiting: {line}")


async def inject_faults(load: Load, worker: Lienthong, gateway: Lienthong, temporal: TemporalServer,
                        pg: PostgresCluster) -> list[str]:
    faults: list[str] = []

    await wait_progress(load, 0.15, [worker, gateway])
    say(f"FAULT 1: SIGKILL the worker at {load.progress:.0%} of steps dispatched")
    worker.kill()
    faults.append("worker SIGKILLed")
    await asyncio.sleep(1.0)
    worker.start()

    await wait_progress(load, 0.40, [worker, gateway])
    say(f"FAULT 2: stop the Temporal dev server at {load.progress:.0%} of steps dispatched")
    code = temporal.stop()
    say(f"Temporal dev server stopped (exit {code}); starting it again on {temporal.address}, same --db-filename")
    temporal.start()
    await temporal.ready()
    say("Temporal dev server answers again")
    faults.append("Temporal dev server restarted")

    await wait_progress(load, 0.65, [worker, gateway])
    say(f"FAULT 3: PostgreSQL down (pg_ctl stop -m fast) for {DB_OUTAGE:.0f}s at {load.progress:.0%} "
        "of steps dispatched")
    pg.stop("fast")
    faults.append(f"PostgreSQL down for {DB_OUTAGE:.0f}s")
    await asyncio.sleep(DB_OUTAGE / 3)
    say("FAULT 4: SIGKILL the worker and the gateway while PostgreSQL is down, and start new ones "
        "(they must wait for the database, not exit)")
    for process in (worker, gateway):
        process.kill()
        process.start()
    faults.append("worker and gateway SIGKILLed and restarted during the database outage")
    await asyncio.sleep(DB_OUTAGE * 2 / 3)
    for process in (worker, gateway):
        if not process.alive():
            say(f"the {process.args[0]} started during the outage has exited")
    pg.start()
    say("PostgreSQL is back")
    return faults


async def final_states(client: Client, dossier_ids: list[str]) -> dict[str, DossierState]:
    """Each dossier's final state, once it has finished (retrying a dropped long poll)."""
    limit = asyncio.Semaphore(32)

    async def one(dossier_id: str) -> DossierState:
        handle = client.get_workflow_handle_for(DossierWorkflow.run, dossier_id)  # type: ignore[arg-type]
        async with limit:
            while True:
                try:
                    await handle.result()  # a summary; the final state is the query's
                    return await handle.query(DossierWorkflow.state)
                except RPCError:
                    await asyncio.sleep(1.0)

    states = await asyncio.wait_for(asyncio.gather(*(one(d) for d in dossier_ids)), FINISH_WAIT)
    return dict(zip(dossier_ids, states))


async def accepted_updates(client: Client, dossier_id: str) -> tuple[list[str], int]:
    """The ids of the `complete_step` Updates the workflow accepted, and how many completed."""
    history = await client.get_workflow_handle(dossier_id).fetch_history()
    accepted, completed = [], 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            attributes = event.workflow_execution_update_accepted_event_attributes
            if attributes.accepted_request.input.name == "complete_step":
                accepted.append(attributes.accepted_request.meta.update_id)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            completed += 1
    return accepted, completed


def wait_converged(sessions: Any, finals: dict[str, DossierState]) -> None:
    """Poll until the projection reflects every dossier's last event and no inbox item is left."""
    give_up = time.monotonic() + CONVERGE_WAIT
    while True:
        with sessions() as session:
            behind = [d for d, final in finals.items() if projection.last_seq(session, d) != final.last_event_seq]
            left = session.scalar(select(func.count()).select_from(InboxItemRow)
                                  .where(InboxItemRow.dossier_id.in_(list(finals))))
        if not behind and not left:
            return
        if time.monotonic() > give_up:
            raise AssertionError(f"the store never converged: {len(behind)} projections behind "
                                 f"(e.g. {behind[:5]}), {left} inbox items left")
        time.sleep(0.5)


@pytest.fixture
def postgres_cluster(postgres_server_url: str) -> Any:
    """A cluster of the test's own, to stop and start. (Asking for the suite's server first
    makes scripts/ensure-postgres.sh install the binaries where they are missing.)"""
    cluster = PostgresCluster()
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


async def test_dossiers_survive_a_killed_worker_a_restarted_server_and_a_database_outage(
        tmp_path: Path, postgres_cluster: PostgresCluster) -> None:
    began = time.monotonic()
    pg = postgres_cluster
    url = pg.url
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for code in AGENCIES:
            session.add(AgencyRow(code=code, name=code, level="xa", webhook_url=None,
                                  receives_dossiers=code.startswith("bpmc"), updated_at=now))
    with sessions.begin() as session:
        agency_tokens = {code: tokens.issue(session, code, "chaos", now).token for code in AGENCIES}

    temporal = TemporalServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    temporal.start()
    env = chaos_env(temporal.address, url, TASK_QUEUE)
    worker = Lienthong(["worker"], env, tmp_path / "worker.log")
    # Port 0: the gateway binds a free port and says which (no race with other processes' ports).
    gateway = Lienthong(["gateway", "--host", "127.0.0.1", "--port", "0"], env, tmp_path / "gateway.log")
    logs = {"worker": worker.log, "gateway": gateway.log, "temporal": temporal.log, "postgres": pg.log}
    load: Load | None = None
    finished = asyncio.Event()  # every dossier closed: the agencies stop reading their inboxes
    stop = asyncio.Event()  # stops the progress lines
    try:
        client = await temporal.ready()
        worker.start()
        gateway.start()
        gateway_url = await gateway_ready(gateway)
        gateway.args[-1] = gateway_url.rsplit(":", 1)[1]  # a restarted gateway takes the same port

        run = uuid.uuid4().hex[:6]
        dossier_ids = [f"HS-CHAOS-{run}-{i:04d}" for i in range(DOSSIERS)]
        load = Load(client, gateway_url, agency_tokens, sessions, env, dossier_ids)
        agencies = asyncio.create_task(load.run(finished))
        reporter = asyncio.create_task(report(load, stop))
        await start_dossiers(client, TASK_QUEUE, dossier_ids)

        faults = await inject_faults(load, worker, gateway, temporal, pg)
        worker_alive, gateway_alive = worker.alive(), gateway.alive()
        for process in (worker, gateway):
            if not process.alive():
                say(f"lienthong {process.args[0]} died during the faults; starting it again to check convergence")
                process.start()

        finals = await final_states(client, dossier_ids)
        say(f"every dossier closed {time.monotonic() - began:.0f}s after the start")
        finished.set()
        await agencies
        await asyncio.wait_for(load.drain(), DRAIN_WAIT)
        stop.set()
        await reporter
        await asyncio.to_thread(wait_converged, sessions, finals)
        say("the store converged")

        assert worker_alive, f"the worker died during the faults:\n{worker.output()}"
        assert gateway_alive, f"the gateway died during the faults:\n{gateway.output()}"
        assert not load.unexpected, "\n".join(load.unexpected[:20])
        counts = await check(client, sessions, load, finals)
        counts["faults injected"] = len(faults)
        counts["wall time (s)"] = round(time.monotonic() - began)
        print("\nchaos counts:")
        for name, value in counts.items():
            print(f"  {name}: {value}")
    except BaseException:
        for name, path in logs.items():
            print(f"\n===== {name} log ({path}) =====\n{tail(path, 8000)}")
        if load is not None:
            print(f"\nretries: {dict(load.retries)}\nunexpected: {load.unexpected[:20]}")
            print("sends without an answer:\n  " + "\n  ".join(load.pending()[:40]))
            try:
                with sessions() as session:
                    held = session.execute(select(GatewayRequestRow.agency, GatewayRequestRow.key,
                                                  GatewayRequestRow.claimed_at)
                                           .where(GatewayRequestRow.status_code.is_(None))).all()
                print(f"gateway idempotency keys still held: {held[:20]}")
            except Exception as err:  # noqa: BLE001 (the database may be what broke)
                print(f"(gateway_requests not readable: {err})")
        raise
    finally:
        finished.set()
        stop.set()
        if load is not None:
            await load.close()
        for process in (gateway, worker):
            process.stop()
        temporal.stop()
        sessions.kw["bind"].dispose()


async def check(client: Client, sessions: Any, load: Load, finals: dict[str, DossierState]) -> dict[str, Any]:
    dossier_ids = list(finals)
    # Every dossier finished, every step completed.
    for dossier_id, final in finals.items():
        assert (final.status, final.portal_status) == ("completed", 10), final.model_dump_json(indent=1)
        assert [(s.id, s.status) for s in final.steps] == [(s, "completed") for s in STEPS], dossier_id

    # The projection equals the workflow's `state` query (and its result).
    limit = asyncio.Semaphore(16)

    async def query(dossier_id: str) -> DossierState:
        async with limit:
            handle = client.get_workflow_handle_for(DossierWorkflow.run, dossier_id)  # type: ignore[arg-type]
            return await handle.query(DossierWorkflow.state)

    queried = dict(zip(dossier_ids, await asyncio.gather(*(query(d) for d in dossier_ids))))
    with sessions() as session:
        for dossier_id, state in queried.items():
            assert state == finals[dossier_id], dossier_id
            assert projection.get_dossier(session, dossier_id) == state, dossier_id

    # The audit log: seqs 1..N, no (dossier, seq) twice, no kind twice for one step.
    with sessions() as session:
        rows = session.execute(select(DossierEventRow.dossier_id, DossierEventRow.seq, DossierEventRow.kind,
                                      DossierEventRow.step_id)
                               .where(DossierEventRow.dossier_id.in_(dossier_ids))).all()
        inbox_dupes = session.execute(
            select(InboxItemRow.agency, InboxItemRow.dossier_id, InboxItemRow.step_id, func.count())
            .group_by(InboxItemRow.agency, InboxItemRow.dossier_id, InboxItemRow.step_id)
            .having(func.count() > 1)).all()
    assert not inbox_dupes, inbox_dupes
    events: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        events[row.dossier_id].append(row)
    seq_dupes = Counter((r.dossier_id, r.seq) for r in rows) - Counter({(r.dossier_id, r.seq) for r in rows})
    assert not seq_dupes, seq_dupes
    for dossier_id, final in finals.items():
        mine = events[dossier_id]
        assert sorted(r.seq for r in mine) == list(range(1, final.last_event_seq + 1)), dossier_id
        assert Counter((r.kind, r.step_id) for r in mine) == FINAL_EVENTS, (dossier_id, sorted(
            (r.seq, r.kind, r.step_id) for r in mine))

    # Each step applied once: one accepted Update per step, and every answered send carried its id.
    sends: dict[tuple[str, str], list[Sent]] = defaultdict(list)
    for sent in load.sent:
        sends[(sent.dossier_id, sent.step_id)].append(sent)
    step_of = {sent.update_id: sent.step_id for sent in load.sent}
    limit = asyncio.Semaphore(16)

    async def history(dossier_id: str) -> tuple[list[str], int]:
        async with limit:
            return await accepted_updates(client, dossier_id)

    histories = dict(zip(dossier_ids, await asyncio.gather(*(history(d) for d in dossier_ids))))
    applied = 0
    for dossier_id, (accepted, completed) in histories.items():
        assert sorted(step_of.get(uid, f"unknown id {uid}") for uid in accepted) == sorted(STEPS), \
            (dossier_id, accepted)
        assert completed == len(accepted), (dossier_id, completed, accepted)
        applied += len(accepted)
        for uid in accepted:
            step = step_of[uid]
            mine = sends[(dossier_id, step)]
            assert len(mine) == 2, (dossier_id, step, mine)
            for sent in mine:
                assert sent.answer == "ok" and sent.update_id == uid or sent.answer in (
                    "refused:NotCurrent", "refused:DossierFinished"), (dossier_id, step, uid, mine)

    answers = Counter(sent.answer for sent in load.sent)
    ok = answers["ok"]
    return {
        "dossiers": len(finals),
        "steps (completions intended)": len(dossier_ids) * len(STEPS),
        "completions sent": len(load.sent),
        "sent by path": dict(Counter(sent.path for sent in load.sent)),
        "sent by mode": dict(Counter(load.dispatched.values())),
        "completions applied (accepted Updates in histories)": applied,
        "duplicates deduplicated (answered with the applied Update)": ok - applied,
        "of which gateway replays from its idempotency store": sum(s.replayed for s in load.sent),
        "duplicates refused": {k: v for k, v in answers.items() if k != "ok"},
        "attempts retried during faults": dict(load.retries),
        "inbox reads failed (database down)": load.inbox_failures,
        "audit events checked": len(rows),
        "projections compared with the state query": len(queried),
    }
