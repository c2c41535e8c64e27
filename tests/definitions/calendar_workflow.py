"""A tiny workflow doing working-time arithmetic from a calendar snapshot, for the
sandbox test in ``test_calendar_snapshot.py``.

Its own module, importing nothing but Temporal, pydantic and the calendar: the
sandbox re-imports a workflow's module for every run, and a test module would
drag pytest and hypothesis in.  ``definitions.calendar`` is passed through, as
workflow code must import it (the module docstring says why); the arithmetic
still runs inside the sandbox, under its restrictions (no clock, no file I/O
through restricted calls).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import AwareDatetime, BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from definitions.calendar import CalendarSnapshot, calendar_from_snapshot


class Probe(BaseModel):
    snapshot: CalendarSnapshot
    received_at: list[AwareDatetime]
    budgets: list[str]  # "3d", "0.5d", ...
    spans: list[timedelta]  # apart: in a `str | timedelta` union pydantic reads "PT2H" back as a str


class Answer(BaseModel):
    sandboxed: bool
    clocks: list[AwareDatetime]  # start_of_clock(received_at[i])
    dues: list[list[AwareDatetime]]  # add(clocks[i], (budgets + spans)[j])
    worked: list[list[timedelta]]  # elapsed(received_at[i], dues[i][j])


@workflow.defn(sandboxed=True)
class CalendarProbeWorkflow:
    @workflow.run
    async def run(self, probe: Probe) -> Answer:
        cal = calendar_from_snapshot(probe.snapshot)
        clocks = [cal.start_of_clock(at) for at in probe.received_at]
        budgets = [*probe.budgets, *probe.spans]
        dues = [[cal.add(clock, budget) for budget in budgets] for clock in clocks]
        worked = [
            [cal.elapsed(at, due) for due in row] for at, row in zip(probe.received_at, dues, strict=True)
        ]
        return Answer(sandboxed=workflow.unsafe.in_sandbox(), clocks=clocks, dues=dues, worked=worked)
