"""`make run` (`lienthong dev`) and dossier identity, on real dev stacks sharing one
folder: the dev server's state is kept beside the projection (a restart knows its
dossiers), an id is refused after the server forgot it (`--in-memory`), by the CLI and
the gateway, with nothing changed, and `dev` refuses to start over open dossiers its
server does not know, saying how to reset both."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from store import identity, projection
from store.models import DossierRow, InboxItemRow
from tests.support.dev_stack import DevStack, start_dev_stack

DESK = "bpmc-xa-xa-tan-lap"
DATA = {"commune": "xa-tan-lap", "area_m2": 320, "applicant": "Nguyễn Văn A"}


def _submit(stack: DevStack, dossier_id: str, data: dict[str, Any] = DATA) -> Any:
    return stack.lienthong("dossiers", "submit", "--procedure", "1.012756", "--id", dossier_id,
                           "--data", json.dumps(data), "--received-by", DESK)


def _ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def _snapshot(stack: DevStack, dossier_id: str) -> tuple[Any, ...]:
    with stack.sessions()() as session:
        events = [(e.seq, e.kind, e.at, e.note) for e in projection.list_events(session, dossier_id)]
        row = session.get(DossierRow, dossier_id)
        inbox = session.execute(select(InboxItemRow.agency, InboxItemRow.step_id)
                                .where(InboxItemRow.dossier_id == dossier_id)).all()
        reserved = identity.get(session, dossier_id)
        return (events, row and (row.run_id, row.last_seq, row.status, row.state), inbox,
                reserved and (reserved.request, reserved.run_id))


def test_dev_keeps_its_server_beside_the_projection_and_ids_are_never_reused(tmp_path: Path) -> None:
    server_file = tmp_path / "lienthong.temporal.db"
    stack = start_dev_stack(tmp_path)
    try:
        assert f"stored in {server_file}" in stack.output()
        _ok(_submit(stack, "HS-DEV-1"))
    finally:
        stack.stop()
    assert server_file.is_file()

    stack = start_dev_stack(tmp_path)  # the same folder: the server still knows the dossier
    try:
        shown = json.loads(_ok(stack.lienthong("dossiers", "show", "HS-DEV-1", "--json")))
        assert shown["dossier_id"] == "HS-DEV-1" and shown["status"] == "processing"
        refused = _submit(stack, "HS-DEV-1")
        assert refused.returncode == 1 and "dossier HS-DEV-1 already exists (status processing)" in refused.stderr
        _ok(stack.lienthong("dossiers", "complete", "HS-DEV-1", "tiep-nhan", "--agency", DESK,
                            "--outcome", "rejected", "--note", "Hồ sơ không thuộc thẩm quyền"))
        assert "up to date HS-DEV-1" in _ok(stack.lienthong("dossiers", "resync", "HS-DEV-1"))
    finally:
        stack.stop()

    # A server that forgot everything (in memory; in production: retention). The
    # projection holds no open dossier, so dev starts; the id stays taken.
    stack = start_dev_stack(tmp_path, args=["--in-memory"])
    try:
        assert "in memory: gone when it stops" in stack.output()
        before = _snapshot(stack, "HS-DEV-1")
        assert before[0] and before[1][2] == "rejected"
        refused = _submit(stack, "HS-DEV-1", {**DATA, "applicant": "Trần Thị B"})
        assert refused.returncode == 1
        assert "dossier HS-DEV-1 already exists (status rejected)" in refused.stderr
        answer = httpx.post(f"{stack.url}/v1/dossiers", timeout=60,
                            headers={"Authorization": f"Bearer {stack.token(DESK)}",
                                     "Idempotency-Key": uuid.uuid4().hex},
                            json={"procedure": "1.012756", "dossier_id": "HS-DEV-1", "data": DATA})
        assert answer.status_code == 409 and answer.json()["type"].endswith("dossier-exists"), answer.text
        assert _snapshot(stack, "HS-DEV-1") == before
        unknown = stack.lienthong("dossiers", "resync", "HS-DEV-1")
        assert unknown.returncode == 1 and "unknown dossier HS-DEV-1" in unknown.stderr
        _ok(_submit(stack, "HS-DEV-2"))  # open, and known only to this in-memory server
    finally:
        stack.stop()

    with pytest.raises(RuntimeError) as refused_start:  # the kept server file never saw HS-DEV-2
        start_dev_stack(tmp_path)
    lines = [line for line in str(refused_start.value).splitlines() if "open dossier" in line]
    assert len(lines) == 1, str(refused_start.value)
    assert "holds 1 open dossier" in lines[0] and "(e.g. HS-DEV-2)" in lines[0]
    assert f"rm {tmp_path / 'lienthong.db'} {server_file}" in lines[0]
