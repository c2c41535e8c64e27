"""Drive the shipped procedures (definitions/procedures/*.yaml) through DossierWorkflow.

Used by the catalogue journey test and by the history recorder, so both follow
the same route: dossier data that makes every `when` true where it can, and each
step completed by the agency its definition names.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from definitions.loader import load_catalog, load_procedure
from definitions.schema import Condition, Procedure, ProcedureSnapshot, resolve_agency
from tests.workflows.harness import complete, state
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierState, StepStatus

SHIPPED = Path(__file__).resolve().parents[2] / "definitions"
COMMUNE = "xa-tan-lap"

Handle = WorkflowHandle[DossierWorkflow, DossierState]


def shipped_files() -> list[Path]:
    return sorted((SHIPPED / "procedures").glob("*.yaml"))


def shipped_snapshot(path: Path) -> ProcedureSnapshot:
    return load_procedure(path, load_catalog(SHIPPED))


def satisfying(condition: Condition) -> Any:
    """A value for which `condition` holds."""
    op = condition.operator
    if op == "equals":
        return condition.equals
    if op == "in":
        return (condition.in_ or [None])[0]
    bound = getattr(condition, op)
    return {"gt": bound + 1, "gte": bound, "lt": bound - 1, "lte": bound}[op]


def journey_data(procedure: Procedure, commune: str = COMMUNE) -> dict[str, Any]:
    """Dossier data under which every conditional step runs, except where two
    conditions want different values of one field (the first one wins)."""
    data: dict[str, Any] = {"commune": commune, "applicant": "Nguyễn Văn A"}
    for step in procedure.iter_steps():
        if step.when is not None and step.when.field not in data:
            data[step.when.field] = satisfying(step.when)
    return data


def expected_agencies(procedure: Procedure, data: dict[str, Any]) -> dict[str, str | None]:
    """Each step's agency on this data; None for a step its `when` skips."""
    return {
        step.id: None if step.when is not None and not step.when.holds(data) else resolve_agency(step.agency, data)
        for step in procedure.iter_steps()
    }


async def complete_steps(handle: Handle, agencies: dict[str, str | None], *, hold: frozenset[str] = frozenset(),
                         until_assigned: str | None = None, timeout: float = 30.0) -> DossierState:
    """Complete every step that is assigned (as its expected agency), except those in
    `hold`, until the dossier finishes, or until `until_assigned` is assigned and
    nothing else is left to complete."""
    quiet = 0
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        current = await state(handle)
        if current.finished:
            return current
        todo = [s for s in current.steps if s.status == StepStatus.ASSIGNED and s.id not in hold]
        for st in todo:
            assert st.agency == agencies[st.id], f"{st.id} routed to {st.agency}, expected {agencies[st.id]}"
            await complete(handle, st.id, agencies[st.id] or "?")
        target = current.step(until_assigned) if until_assigned else None
        if target is not None and target.status == StepStatus.ASSIGNED and not todo:
            quiet += 1
            if quiet >= 3:  # nothing else came up meanwhile: only held steps are open
                return current
        else:
            quiet = 0
        if loop.time() > give_up:
            raise AssertionError(f"dossier {handle.id} did not progress: {current.model_dump_json(indent=1)}")
        if not todo:
            await asyncio.sleep(0.05)
