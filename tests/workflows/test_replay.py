"""Recorded dossier histories still replay on today's workflow code.

Every `tests/histories/*.json` file is one case (found by glob: an added file is
replayed without touching this test). They are real Temporal histories
(`fetch_history().to_json()`, what `temporal workflow show -o json` prints),
recorded by `python -m tests.workflows.record_histories TAG`: a small test
procedure's full journey and supplement expiry, and for every shipped procedure
its happy path and each deadline path (overdue + escalation, extension,
supplement expiry — or resubmission where the procedure has no supplement
deadline).

A failure here means a change would break dossiers in flight: guard it with
`workflow.patched(...)` instead of changing the old path. The guard tests below
show the histories catch exactly that for the webhook change.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import temporalio.workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from tests.workflows.catalogue import shipped_files
from workflows.dossier import NOTIFICATIONS_PATCH, DossierWorkflow

HERE = Path(__file__).resolve().parents[1] / "histories"
HISTORIES = sorted(HERE.glob("*.json"))
# Each shipped procedure has these recorded (the recorder's scenario names).
PROCEDURE_SCENARIOS = ("happy", "overdue", "extended", "supplement-*")
# TAG: the newest workflow.patched id (the code generation recording now).
RECORD = "python -m tests.workflows.record_histories TAG"


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def patches(path: Path) -> set[str]:
    """The `workflow.patched` ids the history's run went through."""
    found = set()
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker.get("markerName") == "core_patch":
            for payload in marker["details"]["patch-data"]["payloads"]:
                found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


# Every hand-over asked `workflow.patched(NOTIFICATIONS_PATCH)` once webhooks shipped, so a
# history without any patch marker was recorded by the code from before them. (Later
# generations may not ask it at all, e.g. past `record-with-route` for an agency without
# a webhook, so "no webhook marker" alone does not date a history.)
BEFORE_WEBHOOKS = [p for p in HISTORIES if not patches(p)]
WITH_WEBHOOKS = [p for p in HISTORIES if NOTIFICATIONS_PATCH in patches(p)]


def test_there_are_recorded_histories_from_before_and_after_the_webhook_patch():
    assert len(BEFORE_WEBHOOKS) >= 2  # dossiers in flight when webhooks shipped
    assert len(WITH_WEBHOOKS) >= 2


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: p.stem)
def test_every_shipped_procedure_has_recorded_histories(path: Path):
    for scenario in PROCEDURE_SCENARIOS:
        assert list(HERE.glob(f"{path.stem}.{scenario}-*.json")), (
            f"no {scenario} history for {path.name}: record it with {RECORD} '{path.stem}.*'"
        )


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path):
    replayer = Replayer(workflows=[DossierWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=True)
    assert result.replay_failure is None


async def replay_failures(paths: list[Path], patched: Callable[[str], bool],
                          monkeypatch: pytest.MonkeyPatch) -> dict[str, Exception | None]:
    """Replay `paths` with `workflow.patched` answering `patched(id)`: what the
    workflow code would do if the webhook change had been made without its guard."""
    monkeypatch.setattr(temporalio.workflow, "patched", patched)
    replayer = Replayer(workflows=[DossierWorkflow], data_converter=pydantic_data_converter,
                        workflow_runner=UnsandboxedWorkflowRunner())
    results = {}
    for path in paths:
        result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
        results[path.stem] = result.replay_failure
    return results


def nondeterministic(failures: dict[str, Exception | None]) -> bool:
    return bool(failures) and all(f is not None and "Nondeterminism" in str(f) for f in failures.values())


async def test_the_guard_replays_cleanly_with_the_real_patched(monkeypatch):
    """Control: the unsandboxed replays below fail only because of what they change."""
    failures = await replay_failures(BEFORE_WEBHOOKS[:1] + WITH_WEBHOOKS[:2], temporalio.workflow.patched,
                                     monkeypatch)
    assert failures and not any(failures.values()), failures


async def test_webhooks_without_their_patch_break_dossiers_from_before_them(monkeypatch):
    """The webhook code run unconditionally (no `workflow.patched`): every history
    recorded before it fails to replay, so the replay test would catch the change."""
    real = temporalio.workflow.patched
    failures = await replay_failures(
        BEFORE_WEBHOOKS, lambda patch_id: patch_id == NOTIFICATIONS_PATCH or real(patch_id), monkeypatch)
    assert nondeterministic(failures), failures


async def test_removing_the_webhook_path_breaks_dossiers_that_took_it(monkeypatch):
    """The old path only (the patched branch dropped): histories that went through
    the webhook patch fail to replay."""
    real = temporalio.workflow.patched
    failures = await replay_failures(
        WITH_WEBHOOKS, lambda patch_id: patch_id != NOTIFICATIONS_PATCH and real(patch_id), monkeypatch)
    assert nondeterministic(failures), {k: v for k, v in failures.items() if v is None}
