"""Recorded dossier histories replay on today's workflow code.

Every `tests/histories/*.json` file is one case (found by glob: an added file is
replayed without touching this test), replayed twice: in Temporal's sandbox (what
tests and the default worker run) and unsandboxed (what production runs). They are
real Temporal histories (`fetch_history().to_json()`, what `temporal workflow show
-o json` prints), recorded by `python -m tests.workflows.record_histories`: a small
test procedure's full journey, and for every shipped procedure its happy path, each
deadline path (overdue + escalation, extension, supplement expiry, or resubmission
where the procedure has no supplement deadline) and a rejection.

Until the first release there is one workflow generation: a failure here after a
workflow change means "re-record" (README, "Changing workflow code safely"). After
it, a failure means the change would break dossiers in flight: guard it with
`workflow.patched(...)`. The last test shows the histories catch such a change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from tests.support.codec import TEST_CONVERTER
from tests.workflows.catalogue import shipped_files
from workflows.dossier import DossierWorkflow
from workflows.payloads import StepState

HERE = Path(__file__).resolve().parents[1] / "histories"
HISTORIES = sorted(HERE.glob("*.json"))
# Each shipped procedure has these recorded (the recorder's scenario names).
PROCEDURE_SCENARIOS = ("happy", "overdue", "extended", "supplement-*", "rejected")
RECORD = "python -m tests.workflows.record_histories"


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def replayer(sandboxed: bool) -> Replayer:
    if sandboxed:  # the default runner
        return Replayer(workflows=[DossierWorkflow], data_converter=TEST_CONVERTER)
    return Replayer(workflows=[DossierWorkflow], data_converter=TEST_CONVERTER,
                    workflow_runner=UnsandboxedWorkflowRunner())


def test_the_small_procedures_journey_is_recorded():
    assert list(HERE.glob("full_journey-*.json")), f"no full_journey history: record it with {RECORD} full_journey"


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: p.stem)
def test_every_shipped_procedure_has_recorded_histories(path: Path):
    for scenario in PROCEDURE_SCENARIOS:
        assert list(HERE.glob(f"{path.stem}.{scenario}-*.json")), (
            f"no {scenario} history for {path.name}: record it with {RECORD} '{path.stem}.*'"
        )


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "unsandboxed"])
@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path, sandboxed: bool):
    result = await replayer(sandboxed).replay_workflow(load(path), raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_a_changed_command_sequence_fails_to_replay(monkeypatch):
    """The replay test has teeth: the workflow changed without a patch, here to tell
    every agency of its new step by webhook (the registry check dropped), issues an
    activity the recorded runs never scheduled, and every history fails to replay
    with a nondeterminism error."""
    route = DossierWorkflow._route

    def route_and_always_notify(self: DossierWorkflow, st: StepState, reason: str) -> None:
        route(self, st, reason)
        if reason == "assigned":
            self._notify(self._notification("step_assigned", st, recipient=st.agency))

    # Unsandboxed: the sandbox would load its own copy of the module, without the change.
    monkeypatch.setattr(DossierWorkflow, "_route", route_and_always_notify)
    changed = replayer(sandboxed=False)
    failures = {}
    for path in HISTORIES:
        result = await changed.replay_workflow(load(path), raise_on_replay_failure=False)
        failures[path.stem] = result.replay_failure
    assert failures
    replayed = sorted(name for name, failure in failures.items() if failure is None)
    # A dossier refused at the desk is never routed to a step: the change cannot touch it.
    assert replayed == ["refused_at_desk-v1"], f"replayed despite the change: {replayed}"
    other = {name: f for name, f in failures.items() if name not in replayed and not isinstance(f, NondeterminismError)}
    assert not other, other
