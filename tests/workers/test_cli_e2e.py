"""A shipped procedure end to end, through the real CLI, on a real `lienthong dev` stack.

Land registration (1.012756): tiep-nhan → xac-nhan-hien-trang →
parallel[xac-dinh-nghia-vu-tai-chinh | tham-dinh → lay-y-kien-so (area > 500 m²) →
cap-nhat-ho-so-dia-chinh] → tra-ket-qua.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from typing import Any, Callable

import pytest

from tests.workers.conftest import DevStack, lienthong, port_in_use

COMMUNE_DESK = "bpmc-xa-xa-tan-lap"
DATA = {"commune": "xa-tan-lap", "area_m2": 320, "applicant": "Nguyễn Văn A"}
ROUTE = [  # (step, agency); the parallel branches may be completed in any order
    ("tiep-nhan", COMMUNE_DESK),
    ("xac-nhan-hien-trang", "ubnd-xa-xa-tan-lap"),
    ("xac-dinh-nghia-vu-tai-chinh", "thue-co-so"),
    ("tham-dinh", "vpdk-tinh"),
    ("cap-nhat-ho-so-dia-chinh", "vpdk-tinh"),
    ("tra-ket-qua", COMMUNE_DESK),
]


class Cli:
    def __init__(self, stack: DevStack) -> None:
        self.stack = stack

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return lienthong(*args, address=self.stack.address)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, f"lienthong {' '.join(args)}: {result.stderr}\n{self.stack.output()}"
        return result.stdout

    def refused(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 1, f"lienthong {' '.join(args)} was not refused: {result.stdout}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        return lines[0]

    def state(self, dossier_id: str) -> dict[str, Any]:
        return json.loads(self.ok("dossiers", "show", dossier_id, "--json"))

    def until(self, dossier_id: str, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Poll `show --json` (bounded): the worker moves the dossier on its own time."""
        state = self.state(dossier_id)
        for _ in range(100):
            if predicate(state):
                return state
            time.sleep(0.1)
            state = self.state(dossier_id)
        pytest.fail(f"dossier {dossier_id}: {what} never held: {json.dumps(state, indent=1, ensure_ascii=False)}")


def step(state: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in state["steps"] if s["id"] == step_id)


def assigned(step_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda state: step(state, step_id)["status"] == "assigned"


def test_land_registration_end_to_end(dev_stack: DevStack) -> None:
    cli = Cli(dev_stack)
    dossier = f"HS-E2E-{uuid.uuid4().hex[:8]}"
    submit = ("dossiers", "submit", "--procedure", "1.012756", "--id", dossier, "--data",
              json.dumps(DATA, ensure_ascii=False), "--channel", "online", "--received-by", COMMUNE_DESK)

    out = cli.ok(*submit)
    assert dossier in out and "1.012756@1" in out and "due:" in out
    assert cli.refused(*submit) == f"dossier {dossier} already exists (status processing)"

    # Steps not routed yet, or held by another agency, are refused and change nothing.
    cli.until(dossier, assigned("tiep-nhan"), "tiep-nhan assigned")
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

    late = cli.refused("dossiers", "complete", dossier, "tra-ket-qua", "--agency", COMMUNE_DESK)
    assert late in (f"dossier {dossier} is finished; it takes no more changes",
                    f"refused: dossier {dossier} is completed; it takes no more changes")
    assert cli.refused("dossiers", "show", "HS-KHONG-CO") == "unknown dossier HS-KHONG-CO"
    assert cli.refused("dossiers", "resubmit", "HS-KHONG-CO") == "unknown dossier HS-KHONG-CO"


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
