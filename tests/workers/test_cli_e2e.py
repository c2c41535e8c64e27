"""A shipped procedure end to end, through the real CLI, on a real `lienthong dev` stack.

Land registration (1.012756): tiep-nhan → xac-nhan-hien-trang →
parallel[xac-dinh-nghia-vu-tai-chinh | tham-dinh → lay-y-kien-so (area > 500 m²) →
cap-nhat-ho-so-dia-chinh] → tra-ket-qua.

`lienthong dev` migrates its own database and deploys the shipped definitions
before it starts; afterwards the projection, the inboxes and the process-control
sheet are checked against the workflow's own state.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete

from definitions.calendar import load_calendar
from services.instants import in_utc
from store import projection
from store.migrate import head
from store.models import DossierRow
from tests.workers.conftest import DevStack, lienthong, port_in_use
from tests.workers.conftest import StackCli as Cli
from workflows.payloads import DossierState

COMMUNE_DESK = "bpmc-xa-xa-tan-lap"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
SVG = "{http://www.w3.org/2000/svg}"
DATA = {"commune": "xa-tan-lap", "area_m2": 320, "applicant": "Nguyễn Văn A"}
ROUTE = [  # (step, agency); the parallel branches may be completed in any order
    ("tiep-nhan", COMMUNE_DESK),
    ("xac-nhan-hien-trang", "ubnd-xa-xa-tan-lap"),
    ("xac-dinh-nghia-vu-tai-chinh", "thue-co-so"),
    ("tham-dinh", "vpdk-tinh"),
    ("cap-nhat-ho-so-dia-chinh", "vpdk-tinh"),
    ("tra-ket-qua", COMMUNE_DESK),
]


def projected(stack: DevStack, dossier_id: str) -> tuple[int | None, DossierState | None]:
    sessions = stack.sessions()
    try:
        with sessions() as session:
            return projection.last_seq(session, dossier_id), projection.get_dossier(session, dossier_id)
    finally:
        sessions.kw["bind"].dispose()


def until_projected(stack: DevStack, dossier_id: str, seq: int) -> DossierState:
    """The record_event activities run after the workflow moved on: wait (bounded)."""
    for _ in range(100):
        at, state = projected(stack, dossier_id)
        if at is not None and at >= seq and state is not None:
            return state
        time.sleep(0.1)
    pytest.fail(f"the projection of {dossier_id} never reached seq {seq}: {projected(stack, dossier_id)}")


def step(state: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in state["steps"] if s["id"] == step_id)


def assigned(step_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda state: step(state, step_id)["status"] == "assigned"


def test_land_registration_end_to_end(dev_stack: DevStack) -> None:
    cli = Cli(dev_stack)
    shipped = len(list((dev_stack.definitions / "procedures").glob("*.yaml")))
    assert f"definitions: {shipped} deployed, 0 unchanged" in dev_stack.output()  # dev deployed the folder
    dossier = f"HS-E2E-{uuid.uuid4().hex[:8]}"
    submit = ("dossiers", "submit", "--procedure", "1.012756", "--id", dossier, "--data",
              json.dumps(DATA, ensure_ascii=False), "--channel", "online", "--received-by", COMMUNE_DESK)

    out = cli.ok(*submit)
    assert dossier in out and "1.012756@1" in out and f"waiting:  for {COMMUNE_DESK} to receive it" in out
    assert cli.refused(*submit) == f"dossier {dossier} already exists (status submitted)"

    # Online: nothing is routed until the desk it is addressed to receives it (portal status 1 → 2 → 4).
    waiting = cli.until(dossier, lambda s: s["status"] == "submitted", "submitted")
    assert waiting["portal_status"] == 1 and waiting["due_at"] is None
    assert "addressed to: bpmc-xa-xa-tan-lap (waiting for it" in cli.ok("dossiers", "show", dossier)
    received = cli.ok("dossiers", "receive", dossier, "--agency", COMMUNE_DESK, "--note", "đủ thành phần")
    assert received.startswith(f"dossier {dossier}: received by {COMMUNE_DESK} at ") and "due " in received

    # Steps not routed yet, or held by another agency, are refused and change nothing.
    cli.until(dossier, assigned("tiep-nhan"), "tiep-nhan assigned")
    for _ in range(100):  # the inbox row is written by the routing activity, just after
        desk = cli.ok("inbox", COMMUNE_DESK)
        if dossier in desk:
            break
        time.sleep(0.1)
    row = next(line for line in desk.splitlines() if line.startswith(dossier))
    assert row.split()[1:3] == ["1.012756@1", "tiep-nhan"]
    before = cli.state(dossier)
    assert "not current" in cli.refused("dossiers", "complete", dossier, "tra-ket-qua", "--agency", COMMUNE_DESK)
    wrong = cli.refused("dossiers", "complete", dossier, "tiep-nhan", "--agency", "vpdk-tinh")
    assert wrong.startswith("refused: ") and f"belongs to {COMMUNE_DESK}" in wrong
    assert cli.state(dossier) == before

    # A retried completion (same request id) is applied once.
    key = f"{dossier}-tiep-nhan"
    for _ in range(2):
        cli.ok("dossiers", "complete", dossier, "tiep-nhan", "--agency", COMMUNE_DESK, "--request-id", key)
    after = cli.until(dossier, assigned("xac-nhan-hien-trang"), "xac-nhan-hien-trang assigned")
    assert step(after, "tiep-nhan")["status"] == "completed"  # (a second application would be refused)

    for step_id, agency in ROUTE[1:]:
        cli.until(dossier, assigned(step_id), f"{step_id} assigned")
        out = cli.ok("dossiers", "complete", dossier, step_id, "--agency", agency, "--note", "đã xử lý")
        assert f"step {step_id} completed" in out

    final = cli.until(dossier, lambda s: s["status"] == "completed", "dossier completed")
    assert final["portal_status"] == 10
    assert final["verdict"] in ("early", "on_time")
    assert step(final, "lay-y-kien-so")["status"] == "skipped"  # 320 m² ≤ 500 m²
    assert all(step(final, s)["status"] == "completed" for s, _ in ROUTE)
    assert all(step(final, s)["agency"] == a for s, a in ROUTE)

    view = cli.ok("dossiers", "show", dossier)
    assert "status:       completed (portal status 10)" in view
    assert any(line.split()[:3] == ["lay-y-kien-so", "-", "skipped"] for line in view.splitlines())

    # The projection converges to the workflow's final state, the inboxes are empty again.
    stored = until_projected(dev_stack, dossier, final["last_event_seq"])
    # `show --json` answers with instants in UTC (services/instants.py): the store's copy, read the same way.
    assert in_utc(stored).model_dump(mode="json") == DossierState.model_validate(final).model_dump(mode="json")
    for agency in {a for _, a in ROUTE}:
        assert dossier not in cli.ok("inbox", agency)
    assert dossier not in cli.ok("inbox", "vpdk-tinh", "--json")

    # The process-control sheet: one handover per routed step, each judged.
    sheet = json.loads(cli.ok("dossiers", "sheet", dossier, "--json"))
    assert sheet["source"] == "projection" and sheet["procedure"] == "1.012756@1"
    assert sorted((h["step_id"], h["to"]) for h in sheet["handovers"]) == sorted(ROUTE)
    assert sheet["handovers"][0]["from"] == "applicant" and sheet["handovers"][0]["to"] == COMMUNE_DESK
    done_before: set[str] = set()
    for handover in sheet["handovers"]:
        assert handover["status"] == "completed" and handover["verdict"] in ("early", "on_time", "late")
        if handover is not sheet["handovers"][0]:
            assert handover["from"] in done_before  # handed over by an agency that had finished
        done_before.add(handover["to"])
    assert sheet["result"]["status"] == "completed" and sheet["result"]["verdict"] == final["verdict"]
    assert "PHIẾU KIỂM SOÁT" in cli.ok("dossiers", "sheet", dossier)

    # resync: nothing to do; after losing the projection row, it is rebuilt from the workflow.
    assert cli.ok("dossiers", "resync", dossier).splitlines() == [
        f"up to date {dossier} (seq {final['last_event_seq']})", "1 dossier: 0 resynced, 1 up to date"]
    sessions = dev_stack.sessions()
    with sessions.begin() as session:
        session.execute(delete(DossierRow).where(DossierRow.id == dossier))
    sessions.kw["bind"].dispose()
    fallback = json.loads(cli.ok("dossiers", "sheet", dossier, "--json"))  # from the workflow meanwhile
    assert fallback["source"] == "workflow" and fallback["handovers"] == sheet["handovers"]
    everything = cli.ok("dossiers", "resync", "--all").splitlines()
    assert f"resynced {dossier} (seq none → {final['last_event_seq']})" in everything
    assert everything[-1].endswith(" up to date") and "1 resynced" in everything[-1]
    assert projected(dev_stack, dossier) == (final["last_event_seq"], DossierState.model_validate(final))

    late = cli.refused("dossiers", "complete", dossier, "tra-ket-qua", "--agency", COMMUNE_DESK)
    assert late in (f"dossier {dossier} is finished; it takes no more changes",
                    f"refused: dossier {dossier} is completed; it takes no more changes")
    assert cli.refused("dossiers", "show", "HS-KHONG-CO") == "unknown dossier HS-KHONG-CO"
    assert cli.refused("dossiers", "resubmit", "HS-KHONG-CO", "--agency", COMMUNE_DESK) == "unknown dossier HS-KHONG-CO"


def test_timeline_of_a_late_dossier_with_a_supplement(dev_stack: DevStack, tmp_path: Path) -> None:
    """`dossiers timeline`: a dossier received on paper ten days ago (its first step late,
    too late to extend), asked for a supplement and resubmitted, drawn on vn-gov working time."""
    cli = Cli(dev_stack)
    dossier = f"HS-E2E-TL-{uuid.uuid4().hex[:6]}"
    received = (datetime.now(VN) - timedelta(days=10)).replace(microsecond=0)
    cli.ok("dossiers", "submit", "--procedure", "1.012756", "--id", dossier, "--data",
           json.dumps(DATA, ensure_ascii=False), "--received-by", COMMUNE_DESK, "--received-at", received.isoformat())
    cli.until(dossier, lambda s: step(s, "tiep-nhan")["overdue"], "tiep-nhan overdue")
    # Too late for a new appointment (Mẫu 04: at least a working day before the due).
    assert "can no longer be extended" in cli.refused(
        "dossiers", "extend", dossier, "--agency", COMMUNE_DESK, "--until", "+1d", "--step", "tiep-nhan",
        "--reason", "Hồ sơ giấy nhập muộn")
    cli.ok("dossiers", "complete", dossier, "tiep-nhan", "--agency", COMMUNE_DESK)
    cli.until(dossier, assigned("xac-nhan-hien-trang"), "xac-nhan-hien-trang assigned")
    cli.ok("dossiers", "complete", dossier, "xac-nhan-hien-trang", "--agency", "ubnd-xa-xa-tan-lap",
           "--outcome", "supplement", "--note", "Thiếu sơ đồ thửa đất")
    cli.ok("dossiers", "resubmit", dossier, "--agency", COMMUNE_DESK)
    state = DossierState.model_validate(cli.until(dossier, lambda s: s["status"] == "processing", "resumed"))

    svg = cli.ok("dossiers", "timeline", dossier, "--format", "svg")
    root = ET.fromstring(svg.encode("utf-8"))
    calendar = load_calendar("vn-gov", dev_stack.definitions)
    left, per_hour = float(root.get("data-plot-left")), float(root.get("data-px-per-working-hour"))
    assert datetime.fromisoformat(root.get("data-origin")) == state.received_at == received

    def x(at: datetime) -> float:
        return left + calendar.elapsed(state.received_at, at).total_seconds() * per_hour / 3600

    rows = [g for g in root.iter(f"{SVG}g") if "row" in (g.get("class") or "").split()]
    assert [g.get("data-step") for g in rows] == ["tiep-nhan", "xac-nhan-hien-trang"]

    def shapes(row: ET.Element, tag: str, cls: str) -> list[ET.Element]:
        return [e for e in row.iter(f"{SVG}{tag}") if cls in (e.get("class") or "").split()]

    first, second = rows
    tiep_nhan = state.step("tiep-nhan")
    assert tiep_nhan is not None and tiep_nhan.verdict == "late" and tiep_nhan.original_due_at is not None
    (bar,) = shapes(first, "rect", "bar")
    assert abs(float(bar.get("x")) - left) < 0.02
    assert abs(float(bar.get("x")) + float(bar.get("width")) - x(tiep_nhan.completed_at)) < 0.02
    (late,) = shapes(first, "rect", "late")
    assert abs(float(late.get("x")) - x(tiep_nhan.original_due_at)) < 0.02
    assert not shapes(second, "rect", "late")
    assert shapes(second, "rect", "open")  # still with the commune: drawn to now
    (pause,) = [r for r in root.iter(f"{SVG}rect") if r.get("data-kind") == "supplement"]
    asked, back = (n.at for n in state.notes if n.kind in ("supplement_requested", "resubmitted"))
    width = calendar.elapsed(asked, back).total_seconds() * per_hour / 3600
    assert abs(float(pause.get("width")) - width) < 0.02  # seconds of working time, or none at night
    assert "Tiếp nhận hồ sơ · bpmc-xa-xa-tan-lap" in svg and "Tiếp nhận (2)" in svg

    out = tmp_path / "dong-thoi-gian.svg"
    assert cli.ok("dossiers", "timeline", dossier, "--out", str(out)).strip() == (
        f"timeline of dossier {dossier} (workflow) written to {out}")
    written = ET.fromstring(out.read_bytes())
    assert [g.get("data-step") for g in written.iter(f"{SVG}g") if g.get("data-step")] == [
        "tiep-nhan", "xac-nhan-hien-trang"]

    assert cli.refused("dossiers", "timeline", "HS-KHONG-CO") == "unknown dossier HS-KHONG-CO"
    missing = tmp_path / "khong-co" / "t.svg"
    assert cli.refused("dossiers", "timeline", dossier, "--out", str(missing)) == (
        f"--out {missing}: cannot write the picture: No such file or directory")
    wrong = cli("dossiers", "timeline", dossier, "--format", "png")
    assert wrong.returncode == 2 and "invalid choice: 'png'" in wrong.stderr


def test_worker_refuses_an_unmigrated_database(dev_stack: DevStack) -> None:
    result = lienthong("worker", address=dev_stack.address, database_url="sqlite://", timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"database sqlite:// is at revision none, not {head()}: run `lienthong db upgrade`"
    assert "Traceback" not in result.stderr


def test_dev_stops_on_sigint(dev_stack: DevStack) -> None:
    # Runs last in this module: it stops the shared stack.
    process = dev_stack.process
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"lienthong dev did not stop on SIGINT:\n{dev_stack.output()}")
    assert code == 0, dev_stack.output()
    for _ in range(50):  # the server child is reaped before we exit; the port follows
        if not port_in_use(dev_stack.port) and not port_in_use(dev_stack.ui_port):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"port {dev_stack.port} or {dev_stack.ui_port} still in use after lienthong dev stopped")
