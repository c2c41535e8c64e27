"""The load of the chaos test: a few hundred dossiers of a small procedure, and agencies
that read their inboxes and complete every step they find there *twice*, in one of
several ways: twice concurrently with the same Update id, a race of two different ids,
the same Idempotency-Key twice through the gateway, the same key through the CLI and
the gateway, or a plain retry. Every send is retried with its own id or key until it
gets a definitive answer (applied, or refused by the dossier), as a careful client
would through worker kills, a Temporal restart and a database outage.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from definitions.schema import Procedure, ProcedureSnapshot
from gateway.idempotency import update_id
from services.temporal import execute_change, inbox_check
from store.models import InboxItemRow
from tests.chaos.processes import LIENTHONG, REPO, say
from workflows.dossier import DossierWorkflow
from workflows.payloads import CompleteStep

DESK = "bpmc-xa-xa-tan-lap"
LAND_OFFICE = "vpdk-tinh"
TAX = "thue-co-so"
AGENCIES = (DESK, LAND_OFFICE, TAX)
# A continuous calendar and long deadlines: no due passes while the test runs.
PROCEDURE: dict[str, Any] = {
    "code": "T.CHAOS1",
    "name": "Thủ tục thử hỗn loạn",
    "sector": "G13-TN01",
    "level": "xa",
    "version": 1,
    "calendar": "continuous",
    "deadline": "90d",
    "steps": [
        {"id": "tiep-nhan", "agency": DESK, "deadline": "20d"},
        {"parallel": [
            {"id": "tham-dinh", "agency": LAND_OFFICE, "deadline": "20d"},
            {"id": "thue", "agency": TAX, "deadline": "20d"},
        ]},
        {"id": "tra-ket-qua", "agency": DESK, "deadline": "20d"},
    ],
}
STEPS = ("tiep-nhan", "tham-dinh", "thue", "tra-ket-qua")
# What one dossier's audit log holds at the end, in some order of the parallel steps.
FINAL_EVENTS = Counter({("received", None): 1, ("result_ready", None): 1, ("completed", None): 1}
                       | {("step_assigned", s): 1 for s in STEPS} | {("step_completed", s): 1 for s in STEPS})

# Ways of sending one completion twice; the CLI is a process per call, so it gets a few.
MODES = ("same-id-concurrent", "race-gateway-vs-client", "gateway-same-key-concurrent", "same-id-retry",
         "race-two-clients")
CLI_MODE = "cli-and-gateway-same-key"
CLI_EVERY = 17  # one step in CLI_EVERY goes through the CLI and the gateway

UPDATE_WAIT = 60.0  # seconds for one attempt (a retry with the same id attaches to the same Update)
RETRY_PAUSE = 1.0


def snapshot() -> ProcedureSnapshot:
    return ProcedureSnapshot(procedure=Procedure.model_validate(PROCEDURE), content_hash="sha256:chaos")


@dataclass
class Sent:
    """One send of a completion (one path, one id), after all its retries."""

    dossier_id: str
    step_id: str
    path: str  # client | gateway | cli
    update_id: str
    answer: str = ""  # "ok" (applied or deduplicated) or "refused:<kind>"
    replayed: bool = False  # the gateway answered from its idempotency store
    attempts: int = 0
    last_error: str = ""  # why the last attempt was retried


@dataclass
class Load:
    client: Client
    gateway_url: str
    tokens: dict[str, str]
    sessions: sessionmaker[Session]
    cli_env: dict[str, str]
    dossier_ids: list[str]
    sent: list[Sent] = field(default_factory=list)
    dispatched: dict[tuple[str, str], str] = field(default_factory=dict)  # (dossier, step) -> mode
    retries: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    inbox_failures: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.gateway_url, timeout=httpx.Timeout(UPDATE_WAIT + 30))
        self.limit = asyncio.Semaphore(48)  # completions in flight
        self.cli_limit = asyncio.Semaphore(2)  # CLI processes at once (2 cores)
        self.total_steps = len(self.dossier_ids) * len(STEPS)

    @property
    def progress(self) -> float:
        return len(self.dispatched) / self.total_steps

    # ------------------------------------------------------------------ inboxes

    async def run(self, stop: asyncio.Event) -> None:
        """Read every agency's inbox and complete what is new, until `stop`."""
        ours = set(self.dossier_ids)
        while not stop.is_set():
            try:
                items = await asyncio.to_thread(self._inbox)
            except Exception as err:  # noqa: BLE001 (the database is down: the agencies wait and read again)
                self.inbox_failures += 1
                if self.inbox_failures % 10 == 1:
                    say(f"inbox read failed ({type(err).__name__}); agencies retry")
                await asyncio.sleep(1.0)
                continue
            for dossier_id, step_id, agency in items:
                if dossier_id in ours and (dossier_id, step_id) not in self.dispatched:
                    self._dispatch(dossier_id, step_id, agency)
            await asyncio.sleep(0.3)

    def _inbox(self) -> list[tuple[str, str, str]]:
        with self.sessions() as session:
            rows = session.execute(select(InboxItemRow.dossier_id, InboxItemRow.step_id, InboxItemRow.agency))
            return [(d, s, a) for d, s, a in rows]

    def _dispatch(self, dossier_id: str, step_id: str, agency: str) -> None:
        n = next(self._counter)
        mode = CLI_MODE if n % CLI_EVERY == CLI_EVERY - 1 else MODES[n % len(MODES)]
        self.dispatched[(dossier_id, step_id)] = mode
        task = asyncio.create_task(self._twice(mode, dossier_id, step_id, agency))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def pending(self) -> list[str]:
        """The sends without an answer yet, for a stuck run's report."""
        return [f"{s.dossier_id}/{s.step_id} {s.path} ({self.dispatched.get((s.dossier_id, s.step_id))}) "
                f"id {s.update_id}: {s.attempts} attempts, last: {s.last_error}" for s in self.sent if not s.answer]

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.http.aclose()

    # ------------------------------------------------------------------ twice

    async def _twice(self, mode: str, dossier_id: str, step_id: str, agency: str) -> None:
        key = uuid.uuid4().hex
        same = update_id(agency, key)
        args = (dossier_id, step_id, agency)
        async with self.limit:
            try:
                if mode == "same-id-concurrent":
                    await asyncio.gather(self._client(*args, same), self._client(*args, same))
                elif mode == "same-id-retry":
                    await self._client(*args, same)
                    await self._client(*args, same)
                elif mode == "race-gateway-vs-client":
                    await asyncio.gather(self._gateway(*args, key), self._client(*args, uuid.uuid4().hex))
                elif mode == "race-two-clients":
                    await asyncio.gather(self._client(*args, uuid.uuid4().hex), self._client(*args, uuid.uuid4().hex))
                elif mode == "gateway-same-key-concurrent":
                    await asyncio.gather(self._gateway(*args, key), self._gateway(*args, key))
                elif mode == CLI_MODE:
                    await asyncio.gather(self._cli(*args, same), self._gateway(*args, key))
                else:
                    raise AssertionError(mode)
            except Exception as err:  # noqa: BLE001 (reported by the test as unexpected)
                self.unexpected.append(f"{dossier_id}/{step_id} ({mode}): {type(err).__name__}: {err}")

    async def _client(self, dossier_id: str, step_id: str, agency: str, uid: str) -> None:
        sent = Sent(dossier_id, step_id, "client", uid)
        self.sent.append(sent)
        handle = self.client.get_workflow_handle_for(DossierWorkflow.run, dossier_id)  # type: ignore[arg-type]
        request = CompleteStep(step_id=step_id, agency=agency, outcome="approved")
        while True:
            sent.attempts += 1
            try:
                await asyncio.wait_for(execute_change(handle, DossierWorkflow.complete_step, request, uid,
                                                     inbox_check(self.sessions, dossier_id, request)),
                                       UPDATE_WAIT)
                sent.answer = "ok"
                return
            except WorkflowUpdateFailedError as err:
                cause = err.cause
                kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
                sent.answer = f"refused:{kind}"
                return
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND and await self._closed(dossier_id):
                    sent.answer = "refused:DossierFinished"  # an Update on a closed workflow
                    return
                self.retries[f"client {err.status.name if err.status else 'rpc'}"] += 1
                sent.last_error = f"{err.status}: {err.message[:200]}"
            except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
                self.retries[f"client {type(err).__name__}"] += 1
                sent.last_error = type(err).__name__
            await asyncio.sleep(RETRY_PAUSE)

    async def _closed(self, dossier_id: str) -> bool:
        try:
            description = await self.client.get_workflow_handle(dossier_id).describe()
        except RPCError:
            return False
        return description.status is not None and description.status.name != "RUNNING"

    async def _gateway(self, dossier_id: str, step_id: str, agency: str, key: str) -> None:
        sent = Sent(dossier_id, step_id, "gateway", update_id(agency, key))
        self.sent.append(sent)
        headers = {"Authorization": f"Bearer {self.tokens[agency]}", "Idempotency-Key": key}
        path = f"/v1/dossiers/{dossier_id}/steps/{step_id}/complete"
        while True:
            sent.attempts += 1
            pause = RETRY_PAUSE
            try:
                reply = await self.http.post(path, json={"outcome": "approved"}, headers=headers)
            except httpx.HTTPError as err:
                self.retries[f"gateway {type(err).__name__}"] += 1
                await asyncio.sleep(pause)
                continue
            problem = reply.json() if reply.headers.get("content-type", "").startswith("application/problem") else {}
            kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
            if reply.status_code == 200:
                sent.answer = "ok"
                sent.replayed = reply.headers.get("Idempotent-Replayed") == "true"
                return
            if reply.status_code == 409 and kind in ("not-current", "dossier-finished"):
                sent.answer = f"refused:{problem.get('kind') or kind}"
                return
            if reply.status_code not in (409, 500, 503, 504) or (
                    reply.status_code == 409 and kind != "idempotency-key-in-use"):
                self.unexpected.append(f"gateway {path}: {reply.status_code} {reply.text[:300]}")
                sent.answer = f"unexpected:{reply.status_code}"
                return
            self.retries[f"gateway {reply.status_code} {kind}"] += 1
            sent.last_error = f"{reply.status_code} {problem.get('detail', '')}"[:300]
            await asyncio.sleep(float(reply.headers.get("Retry-After", pause)))

    async def _cli(self, dossier_id: str, step_id: str, agency: str, uid: str) -> None:
        sent = Sent(dossier_id, step_id, "cli", uid)
        self.sent.append(sent)
        while True:
            sent.attempts += 1
            async with self.cli_limit:
                process = await asyncio.create_subprocess_exec(
                    str(LIENTHONG), "dossiers", "complete", dossier_id, step_id, "--agency", agency,
                    "--request-id", uid, env=self.cli_env, cwd=REPO,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                _, err = await process.communicate()
            text = err.decode(errors="replace").strip()
            if process.returncode == 0:
                sent.answer = "ok"
                return
            if text.startswith("refused:") and "is not current" in text:
                sent.answer = "refused:NotCurrent"
                return
            if "is finished; it takes no more changes" in text:
                sent.answer = "refused:DossierFinished"
                return
            if not any(m in text for m in ("no worker answered", "cannot reach Temporal", "Temporal refused")):
                self.unexpected.append(f"cli {dossier_id}/{step_id}: exit {process.returncode}: {text[:300]}")
                sent.answer = f"unexpected:{process.returncode}"
                return
            self.retries["cli " + text.split(":", 1)[0][:40]] += 1
            sent.last_error = text[:300]
            await asyncio.sleep(RETRY_PAUSE)


async def start_dossiers(client: Client, task_queue: str, dossier_ids: list[str]) -> None:
    from temporalio.common import WorkflowIDReusePolicy

    from tests.workflows.harness import dossier_input

    snap = snapshot()
    limit = asyncio.Semaphore(16)

    async def start(dossier_id: str) -> None:
        async with limit:
            await client.start_workflow(
                DossierWorkflow.run, dossier_input(snap, dossier_id, {}, received_by=DESK),
                id=dossier_id, task_queue=task_queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)

    started = time.monotonic()
    await asyncio.gather(*(start(d) for d in dossier_ids))
    say(f"{len(dossier_ids)} dossiers started in {time.monotonic() - started:.1f}s")
