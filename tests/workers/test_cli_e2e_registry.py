"""The registry and calendar changes end to end, on a `lienthong dev` stack whose
definitions folder is a copy the tests edit (LIENTHONG_DEFINITIONS points at it for
both `dev` and the CLI).

* In flight: a dossier keeps the `code@version` it was received under after a new
  version is deployed, while new dossiers get the new version.
* `calendars apply`: a day off added to the calendar file moves an open dossier's
  due through the workflow (and the audit log says so); a finished one is untouched.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from definitions.calendar import load_calendar
from services.submission import LOCAL_TZ, local_today
from store import projection
from store.models import DossierRow
from tests.workers.conftest import DevStack, StackCli, copy_definitions, start_dev_stack, stop_process

SMALL = "9.000001"
LAND = "1.012756"
LAND_DATA = {"commune": "xa-tan-lap", "area_m2": 320}
DESK = "bpmc-xa-xa-tan-lap"


def small_procedure(version: int, effective: date, steps: list[tuple[str, str]]) -> str:
    lines = [
        f'code: "{SMALL}"',
        "name: Thủ tục thử nghiệm liên thông",
        "sector: G13-TN01",
        "level: tinh",
        f"version: {version}",
        f"effective_from: {effective.isoformat()}",
        "calendar: continuous",
        f"deadline: {len(steps)}d",
        "steps:",
    ]
    lines += [f"  - {{id: {step_id}, agency: {agency}, deadline: 1d}}" for step_id, agency in steps]
    return "\n".join(lines) + "\n"


V1_STEPS = [("nhan-ho-so", "bpmc-tinh"), ("xu-ly", "vpdk-tinh")]
V2_STEPS = [("tiep-nhan-moi", "bpmc-tinh"), ("tham-dinh-moi", "so-tu-phap"), ("tra-ket-qua", "bpmc-tinh")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    folder = tmp_path_factory.mktemp("dev-registry")
    stack = start_dev_stack(folder, copy_definitions(folder / "definitions"))
    try:
        yield stack
    finally:
        stop_process(stack.process)


class Run(StackCli):
    def submit(self, dossier_id: str, procedure: str, data: dict[str, Any]) -> str:
        out = self.ok("dossiers", "submit", "--procedure", procedure, "--id", dossier_id,
                      "--data", json.dumps(data, ensure_ascii=False))
        self.until(dossier_id, lambda s: s["due_at"] is not None and any(st["status"] == "assigned"
                                                                          for st in s["steps"]), "first step routed")
        return out

    def complete(self, dossier_id: str, step_id: str, agency: str, *extra: str) -> str:
        self.until(dossier_id, lambda s: step(s, step_id)["status"] == "assigned", f"{step_id} assigned")
        return self.ok("dossiers", "complete", dossier_id, step_id, "--agency", agency, *extra)


def step(state: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in state["steps"] if s["id"] == step_id)


def until_projection(stack: DevStack, dossier_id: str, predicate: Any, what: str) -> Any:
    sessions = stack.sessions()
    try:
        for _ in range(150):
            with sessions() as session:
                state = projection.get_dossier(session, dossier_id)
                events = list(projection.list_events(session, dossier_id))
            if state is not None and predicate(state, events):
                return state, events
            time.sleep(0.1)
        pytest.fail(f"the projection of {dossier_id}: {what} never held")
    finally:
        sessions.kw["bind"].dispose()


def test_a_dossier_in_flight_keeps_its_version(stack: DevStack) -> None:
    run = Run(stack)
    procedures = stack.definitions / "procedures"
    v1 = procedures / "thu-nghiem-v1.yaml"
    v1.write_text(small_procedure(1, date(2025, 7, 1), V1_STEPS), encoding="utf-8")
    assert run.ok("definitions", "deploy", str(v1)).splitlines()[0].startswith(f"deployed {SMALL}@1 (sha256 ")

    first, second = (f"HS-VER-{uuid.uuid4().hex[:6]}" for _ in range(2))
    assert f"{SMALL}@1" in run.submit(first, SMALL, {})

    # v2 (other steps) in effect from today, deployed while the v1 dossier waits.
    v2 = procedures / "thu-nghiem-v2.yaml"
    v2.write_text(small_procedure(2, local_today(), V2_STEPS), encoding="utf-8")
    assert run.ok("definitions", "deploy", str(v2)).splitlines()[0].startswith(f"deployed {SMALL}@2 (sha256 ")
    assert run.ok("definitions", "deploy", str(v1), str(v2)).splitlines()[:2] == [
        f"unchanged {SMALL}@1", f"unchanged {SMALL}@2"]
    diff = run.ok("definitions", "diff", SMALL, "1", "2")
    assert "-  - {id: xu-ly, agency: vpdk-tinh, deadline: 1d}" in diff

    assert f"{SMALL}@2" in run.submit(second, SMALL, {})
    new = run.state(second)
    assert new["procedure_version"] == 2 and [s["id"] for s in new["steps"]] == [s for s, _ in V2_STEPS]

    # The v1 dossier is still v1: v2's step ids mean nothing to it, v1's complete it.
    assert "has no step 'tiep-nhan-moi'" in run.refused("dossiers", "complete", first, "tiep-nhan-moi",
                                                        "--agency", "bpmc-tinh")
    for step_id, agency in V1_STEPS:
        assert f"step {step_id} completed" in run.complete(first, step_id, agency)
    done = run.until(first, lambda s: s["status"] == "completed", "v1 dossier completed")
    assert done["procedure_version"] == 1
    assert [(s["id"], s["agency"], s["status"]) for s in done["steps"]] == [
        (step_id, agency, "completed") for step_id, agency in V1_STEPS]
    sheet = json.loads(run.ok("dossiers", "sheet", first, "--json"))
    assert sheet["procedure"] == f"{SMALL}@1"
    assert [(h["from"], h["to"]) for h in sheet["handovers"]] == [("applicant", "bpmc-tinh"),
                                                                   ("bpmc-tinh", "vpdk-tinh")]

    # A version that is not deployed is refused, and so is an unknown code.
    assert run.refused("dossiers", "submit", "--procedure", f"{SMALL}@3", "--id", "HS-X", "--data", "{}") == \
        f"procedure {SMALL} has no deployed version 3: deployed versions are 1, 2"
    assert run.refused("dossiers", "submit", "--procedure", "9.999999", "--id", "HS-X", "--data", "{}") == \
        "procedure 9.999999 is not deployed: run `lienthong definitions deploy`"


def next_working_day(calendar_root: Path, after: date) -> date:
    cal = load_calendar("vn-gov", calendar_root)
    day = after + timedelta(days=1)
    while not cal.is_working_day(day):
        day += timedelta(days=1)
    return day


def local(at: str) -> datetime:
    return datetime.fromisoformat(at).astimezone(LOCAL_TZ)


def test_calendars_apply_moves_an_open_dossier(stack: DevStack) -> None:
    run = Run(stack)
    open_id, finished_id = (f"HS-CAL-{uuid.uuid4().hex[:6]}" for _ in range(2))
    run.submit(open_id, LAND, LAND_DATA)
    run.submit(finished_id, LAND, LAND_DATA)
    run.complete(finished_id, "tiep-nhan", DESK, "--outcome", "rejected", "--note", "Hồ sơ không hợp lệ")
    finished = run.until(finished_id, lambda s: s["status"] == "rejected", "rejected")
    until_projection(stack, finished_id, lambda s, _: s.last_event_seq == finished["last_event_seq"],
                     "the rejection recorded")
    before = run.state(open_id)
    old_due = local(before["due_at"])

    # The province announces a day off: the next working day after today.
    root = stack.definitions
    day_off = next_working_day(root, datetime.now(LOCAL_TZ).date())
    calendar_file = root / "calendars" / "vn-gov.yaml"
    text = calendar_file.read_text(encoding="utf-8")
    assert f"date: {day_off}" not in text
    calendar_file.write_text(text.replace("days_off:\n", f"days_off:\n  - date: {day_off}\n"
                                          '    reason: "Nghỉ đột xuất (thử nghiệm)"\n', 1), encoding="utf-8")

    # A projection that lags behind the workflow still lists the rejected dossier as open:
    # the Update is refused by the finished workflow and the dossier is skipped, untouched.
    sessions = stack.sessions()
    with sessions.begin() as session:
        session.execute(update(DossierRow).where(DossierRow.id == finished_id)
                        .values(status="processing", last_seq=DossierRow.last_seq - 1))
    sessions.kw["bind"].dispose()

    out = run.ok("calendars", "apply", "--calendar", "vn-gov", "--reason", "Nghỉ đột xuất").splitlines()
    moved = next(line for line in out if line.startswith(f"moved {open_id}: "))
    assert re.search(r"due \d{4}-\d\d-\d\d \d\d:\d\d → \d{4}-\d\d-\d\d \d\d:\d\d", moved), moved
    assert f"skipped {finished_id}: finished" in out
    assert re.fullmatch(r"\d+ dossiers checked, \d+ moved, 1 skipped \(finished meanwhile\) \(calendar vn-gov\)",
                        out[-1]), out

    after = run.state(open_id)
    new_due = local(after["due_at"])
    edited = load_calendar("vn-gov", root)
    basis = after["due_basis"]
    assert new_due == edited.add(datetime.fromisoformat(basis["start"]),
                                 timedelta(seconds=_seconds(basis["working"])))
    # One working day later: the same time of day, on the next working day of the new calendar.
    assert new_due.time() == old_due.time()
    assert new_due.date() == next_working_day(root, old_due.date())
    assert local(after["original_due_at"]) == new_due  # the legal due moved too (no extension)

    _, events = until_projection(stack, open_id, lambda _, ev: any(e.kind == "calendar_applied" for e in ev),
                                 "a calendar_applied event")
    applied = next(e for e in events if e.kind == "calendar_applied")
    assert applied.actor == "operator" and applied.note.startswith("Nghỉ đột xuất: ")

    # The finished dossier: untouched, and resync repairs its projection.
    assert run.state(finished_id) == finished
    seq = finished["last_event_seq"]
    assert run.ok("dossiers", "resync", finished_id).splitlines()[0] == f"resynced {finished_id} (seq {seq - 1} → {seq})"
    state, events = until_projection(stack, finished_id, lambda s, _: s.status.value == "rejected", "rejected again")
    assert not any(e.kind == "calendar_applied" for e in events)

    # Applying again changes nothing more.
    again = run.ok("calendars", "apply", "--calendar", "vn-gov").splitlines()
    assert f"unchanged {open_id}" in again


def _seconds(duration: Any) -> float:
    """pydantic writes a timedelta as an ISO 8601 duration (e.g. PT136H) in JSON."""
    if isinstance(duration, (int, float)):
        return float(duration)
    found = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", duration)
    assert found, duration
    days, hours, minutes, seconds = (float(part or 0) for part in found.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
