"""A real stack for gateway tests: `lienthong dev` (Temporal dev server from its wheel,
the worker and the gateway in one process) on free ports, with a database and a
definitions folder of its own: the shipped files plus three test procedures on the
`continuous` calendar (so no test depends on the hour it runs; the life cycle's is
not on the province-wide list) and LOAD_AGENCIES agencies for the load test."""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from temporalio.client import Client

from store import projection
from store.models import DossierEventRow
from tests.support.dev_stack import DevStack, start_dev_stack
from tests.support.environment import lienthong_env
from tests.support.procedures import life_cycle_procedure
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierState

REPO = Path(__file__).resolve().parents[2]
LIENTHONG = Path(sys.executable).parent / "lienthong"
LOAD_AGENCIES = 200
DESK = "bpmc-xa-xa-tan-lap"  # a one-stop desk (receives_dossiers)
COMMUNE = "ubnd-xa-xa-tan-lap"  # not a desk
LAND_OFFICE = "vpdk-tinh"
TEST_PROCEDURE = "T.GW01"
LOAD_PROCEDURE = "T.GW02"
LIFE_CYCLE_PROCEDURE = "T.GW03"  # issue 14: a return to an earlier step, the result returned at the desk
DEPARTMENT = "so-nong-nghiep-moi-truong"

PROCEDURES = {
    "cong-thu.yaml": f"""\
code: "{TEST_PROCEDURE}"
name: Thủ tục thử cổng giao tiếp
sector: G13-TN01
level: xa
version: 1
calendar: continuous
deadline: 10d
supplement_deadline: 5d
steps:
  - {{id: tiep-nhan, name: Tiếp nhận, agency: "bpmc-xa-{{commune}}", deadline: 1d}}
  - {{id: tham-dinh, name: Thẩm định, agency: {LAND_OFFICE}, deadline: 5d}}
  - {{id: tra-ket-qua, name: Trả kết quả, agency: "bpmc-xa-{{commune}}", deadline: 1d}}
""",
    "cong-vong-doi.yaml": life_cycle_procedure(LIFE_CYCLE_PROCEDURE, LAND_OFFICE, DEPARTMENT),
    "cong-tai.yaml": f"""\
code: "{LOAD_PROCEDURE}"
name: Thủ tục thử tải
sector: G13-TN01
level: tinh
version: 1
calendar: continuous
deadline: 5d
steps:
  - {{id: xu-ly, name: Xử lý, agency: "{{agency}}", deadline: 5d}}
""",
}


def load_agency(n: int) -> str:
    return f"tai-{n:03d}"


def definitions_folder(target: Path) -> Path:
    shutil.copytree(REPO / "definitions", target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    agencies_yaml = target / "agencies.yaml"
    # The load procedure (level tinh) is received at the commune desk, the test procedure (level xa)
    # at the provincial desk too: both on the province-wide list (Decree 118/2025 Art. 14).
    text = agencies_yaml.read_text(encoding="utf-8")
    listed = f'province_wide_procedures:\n  - "{LOAD_PROCEDURE}"\n  - "{TEST_PROCEDURE}"\n'
    agencies_yaml.write_text(text.replace("province_wide_procedures:\n", listed, 1), encoding="utf-8")
    with (target / "agencies.yaml").open("a", encoding="utf-8") as agencies:
        for n in range(1, LOAD_AGENCIES + 1):
            agencies.write(f"  - code: {load_agency(n)}\n    name: Cơ quan thử tải {n}\n    level: tinh\n")
    for name, text in PROCEDURES.items():
        (target / "procedures" / name).write_text(text, encoding="utf-8")
    return target


def cli_env(database_url: str, definitions: Path, address: str | None = None) -> dict[str, str]:
    return lienthong_env(database_url, definitions, address, log_json="false", log_level="WARNING")


Stack = DevStack  # the gateway's tests use the one dev-stack harness


def start_stack(folder: Path, database_url: str, **settings: str) -> Stack:
    """The dev stack with this module's definitions folder (test and load procedures);
    `settings` are LIENTHONG_<NAME> values for it."""
    return start_dev_stack(folder, definitions_folder(folder / "definitions"), database_url, **settings)


# ----------------------------------------------------------------------------- async helpers


@dataclass
class Api:
    """The gateway over HTTP and, beside it, Temporal and the store to check what changed."""

    stack: Stack
    http: httpx.AsyncClient
    temporal: Client

    async def post(self, path: str, token: str | None, body: Any, key: str | None = "new") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if key is not None:
            headers["Idempotency-Key"] = uuid.uuid4().hex if key == "new" else key
        return await self.http.post(path, json=body, headers=headers)

    async def get(self, path: str, token: str | None = None) -> httpx.Response:
        return await self.http.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})

    async def submit(self, desk_token: str, data: dict[str, Any], procedure: str = TEST_PROCEDURE) -> str:
        dossier_id = f"HS-GW-{uuid.uuid4().hex[:10]}"
        reply = await self.post("/v1/dossiers", desk_token,
                                {"procedure": procedure, "dossier_id": dossier_id, "data": data})
        assert reply.status_code == 201, reply.text
        return dossier_id

    async def state(self, dossier_id: str) -> DossierState:
        return await self.temporal.get_workflow_handle(dossier_id).query(DossierWorkflow.state)

    async def until(self, dossier_id: str, predicate: Any, what: str) -> DossierState:
        state = await self.state(dossier_id)
        for _ in range(200):
            if predicate(state):
                return state
            await asyncio.sleep(0.05)
            state = await self.state(dossier_id)
        raise AssertionError(f"{dossier_id}: {what} never held: {state.model_dump_json(indent=1)}")

    async def assigned(self, dossier_id: str, step_id: str) -> DossierState:
        return await self.until(dossier_id, lambda s: (st := s.step(step_id)) is not None
                                and st.status == "assigned", f"{step_id} assigned")

    async def settled(self, dossier_id: str) -> tuple[str, int, int | None, int]:
        """Everything a change would touch, once the dossier is quiet: its state, its
        history length, the projection's seq and the audit-log row count."""
        handle = self.temporal.get_workflow_handle(dossier_id)
        last = None
        for _ in range(200):
            description = await handle.describe()
            busy = bool(description.raw_description.pending_activities)
            state = await self.state(dossier_id)
            with self.stack.sessions()() as session:
                seq = projection.last_seq(session, dossier_id)
                events = session.scalar(select(func.count()).select_from(DossierEventRow)
                                        .where(DossierEventRow.dossier_id == dossier_id)) or 0
            now = (state.model_dump_json(), description.history_length, seq, events)
            if not busy and now == last and seq == state.last_event_seq:
                return now
            last = now
            await asyncio.sleep(0.1)
        raise AssertionError(f"{dossier_id} never settled: {last}")
