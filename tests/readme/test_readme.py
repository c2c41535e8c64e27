"""README.md as a newcomer runs it: every shell block marked `<!-- readme-test: pasted
in order -->` is pasted, command by command, into one bash session (so `source
.venv/bin/activate`, `TOKEN=$(…)` and `NEW=$(…)` carry over) after `lienthong dev` is
up, as `make run` starts it. Each command must exit 0, print every fragment the README
quotes after `→ "…"`, and pass the check written for it below.

What is changed in a command before it runs, as a newcomer would: only the gateway's
and the exporter's addresses, to the free ports this test's stack printed (the README
says "if it printed another port, use that one"). The stack and the session share a
database of their own through `LIENTHONG_DATABASE_URL` and `TEMPORAL_ADDRESS`, the
configuration `make run` and the second terminal share by default.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import Client

from services.inbox import InboxPage
from services.sheet import Sheet
from store import projection
from store.db import make_engine, make_session_factory
from store.models import DefinitionRow
from tests.processes import free_port, stop_process
from tests.support.codec import TEST_CONVERTER, TEST_KEYS
from tests.support.pictures import SVG, parse_mermaid
from workers.cli import run
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierState

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
LIENTHONG = Path(sys.executable).parent / "lienthong"
MARKER = "<!-- readme-test: pasted in order -->"
GATEWAY = "http://127.0.0.1:8080"  # what the README says `make run` serves
EXPORTER = "http://127.0.0.1:9464"
CHANGES = ("dossiers submit", "dossiers complete", "dossiers resubmit", "dossiers pay", "dossiers extend",
           "dossiers receive", "dossiers refuse", "dossiers withdraw", "dossiers return", "-X POST")
DOSSIER_ID = re.compile(r"\bHS-\d{4}-\d{6}\b")
QUOTED = re.compile(r'→ "([^"]*)"')
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


# ----------------------------------------------------------------------------- the README's commands


def readme_commands(text: str) -> list[str]:
    """The commands of the marked ```sh blocks, in order: continuation lines joined
    (kept as written, with their newlines), blank and comment-only lines dropped."""
    commands: list[str] = []
    for block in re.findall(re.escape(MARKER) + r"\n```sh\n(.*?)\n```", text, flags=re.S):
        pending: list[str] = []
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending.append(line)
            if not line.endswith("\\"):
                commands.append("\n".join(pending))
                pending = []
        assert not pending, f"a README command ends with a continuation: {pending}"
    return commands


def bare(command: str) -> str:
    """The command without its comments (no README command has a `#` inside quotes)."""
    return "\n".join(re.sub(r"(^|\s+)#.*$", "", line) for line in command.splitlines()).strip()


def quoted(command: str) -> list[str]:
    """What the README says the command prints: each `→ "…"` in its comment."""
    return QUOTED.findall(command)


# ----------------------------------------------------------------------------- the stack and the session


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    address: str
    gateway: str
    exporter: str
    database_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def base_env(database_url: str, address: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LIENTHONG_", "TEMPORAL_", "VIRTUAL_ENV"))}
    env["LIENTHONG_DATABASE_URL"] = database_url  # never the repository's own .lienthong/lienthong.db
    env["LIENTHONG_CODEC_KEYS"] = TEST_KEYS  # with a database URL, dev does not make a key of its own
    if address:
        env["TEMPORAL_ADDRESS"] = address
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`lienthong dev` (what `make run` runs) on free ports, with the shipped definitions."""
    folder = tmp_path_factory.mktemp("readme")
    port, ui, gateway, exporter = free_port(), free_port(), free_port(), free_port()
    database_url = f"sqlite:///{folder / 'lienthong.db'}"
    env = base_env(database_url) | {
        "LIENTHONG_LOG_JSON": "false", "LIENTHONG_EXPORTER_PORT": str(exporter),
        "LIENTHONG_WORKER_METRICS_PORT": str(free_port()), "LIENTHONG_SDK_METRICS_PORT": str(free_port()),
    }
    log = folder / "dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(LIENTHONG), "dev", "--port", str(port), "--ui-port", str(ui), "--gateway-port", str(gateway)],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    up = Stack(process, f"127.0.0.1:{port}", f"http://127.0.0.1:{gateway}", f"http://127.0.0.1:{exporter}",
               database_url, log)
    try:
        for _ in range(240):  # bounded: the stack is usually up within a few seconds
            if process.poll() is not None:
                pytest.fail(f"lienthong dev exited with {process.returncode}:\n{up.output()}")
            text = up.output()
            if "worker running" in text and f"gateway:          {up.gateway}" in text \
                    and f"metrics (exporter): {up.exporter}/metrics" in text:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"lienthong dev never came up:\n{up.output()}")
        yield up
    finally:
        stop_process(process)


@dataclass
class Ran:
    command: str
    code: int
    out: str
    err: str

    def json(self) -> Any:
        try:
            return json.loads(self.out)
        except json.JSONDecodeError:
            pytest.fail(f"not one JSON document: {self.command}\n{self.out}")


class Terminal:
    """One `bash` session in the repository (the newcomer's second terminal). Each
    command runs as typed, its stdout and stderr captured into files; stdin is
    /dev/null so a command cannot eat the ones after it."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.count = 0
        self.bash = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=REPO)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.bash.stdout is not None
        for line in self.bash.stdout:
            self.lines.put(line)

    def run(self, command: str, timeout: float = 120) -> Ran:
        self.count += 1
        out, err = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        done = f"__readme_done_{self.count}__"
        assert self.bash.stdin is not None
        self.bash.stdin.write(f"{{\n{command}\n}} >{shlex.quote(str(out))} 2>{shlex.quote(str(err))} </dev/null\n"
                              f"echo {done} $?\n")
        self.bash.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no answer within {timeout:.0f}s: {command}")
            if line.startswith(done):
                code = int(line.split()[1])
                break
        return Ran(command, code, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self) -> None:
        if self.bash.poll() is None:
            assert self.bash.stdin is not None
            self.bash.stdin.close()
            try:
                self.bash.wait(10)
            except subprocess.TimeoutExpired:
                self.bash.kill()
                self.bash.wait(10)


# ----------------------------------------------------------------------------- checks


def utc_everywhere(document: Any, where: str = "$") -> int:
    """Every instant in a JSON answer is UTC with a Z (the README's rule); how many."""
    if isinstance(document, dict):
        return sum(utc_everywhere(value, f"{where}.{key}") for key, value in document.items())
    if isinstance(document, list):
        return sum(utc_everywhere(value, f"{where}[{i}]") for i, value in enumerate(document))
    if isinstance(document, str) and INSTANT.match(document):
        assert document.endswith("Z"), f"{where} = {document!r}: instants in JSON answers are UTC with a Z"
        return 1
    return 0


class Walkthrough:
    """What the checks below share: the stack, and documents seen earlier."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.cli_inbox: dict[str, Any] = {}
        self.sessions = make_session_factory(make_engine(stack.database_url))

    def settle(self, command: str) -> None:
        """After a change, wait (bounded) until the store has recorded what the
        workflow did: the inbox and the sheet read the store."""
        if not any(change in command for change in CHANGES):
            return
        for dossier_id in set(DOSSIER_ID.findall(command)):
            target = asyncio.run(self._workflow_seq(dossier_id))
            for _ in range(200):
                with self.sessions() as session:
                    seq = projection.last_seq(session, dossier_id)
                if seq is not None and seq >= target:
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"the store never caught up with dossier {dossier_id} (seq {target})")

    def state(self, dossier_id: str) -> DossierState:
        """The workflow's `state` query (through the test codec)."""

        async def query() -> DossierState:
            client = await Client.connect(self.stack.address, data_converter=TEST_CONVERTER)
            return await client.get_workflow_handle_for(DossierWorkflow.run, dossier_id).query(DossierWorkflow.state)

        return asyncio.run(query())

    async def _workflow_seq(self, dossier_id: str) -> int:
        client = await Client.connect(self.stack.address, data_converter=TEST_CONVERTER)
        handle = client.get_workflow_handle_for(DossierWorkflow.run, dossier_id)
        return (await handle.query(DossierWorkflow.state)).last_event_seq


Check = Callable[[Walkthrough, Ran], None]


def nothing(_: Walkthrough, ran: Ran) -> None:
    assert ran.out == "" and ran.err == "", ran


def lines_of(*fragments: str) -> Check:
    def check(_: Walkthrough, ran: Ran) -> None:
        for fragment in fragments:
            assert fragment in ran.out, f"{fragment!r} not in the output of {ran.command}:\n{ran.out}"
    return check


def deployed_v2_by_name(walk: Walkthrough, ran: Ran) -> None:
    assert "unchanged 1.012756@1" not in ran.out  # the copy holds version 2 of it
    with walk.sessions() as session:
        by = session.scalar(select(DefinitionRow.deployed_by)
                            .where(DefinitionRow.code == "1.012756", DefinitionRow.version == 2))
    assert by == "Nguyễn Văn B"


def graph_of_land(_: Walkthrough, ran: Ran) -> None:
    picture = parse_mermaid(ran.out)
    assert picture.title.startswith("1.012756@1 ")  # the shipped folder holds version 1 only
    assert {"tiep-nhan", "tham-dinh", "lay-y-kien-so", "tra-ket-qua"} <= {lines[0] for lines in picture.lines.values()}


def submitted_with_a_due(_: Walkthrough, ran: Ran) -> None:
    assert re.search(r"^due: +\d{4}-\d{2}-\d{2} \d{2}:\d{2}$", ran.out, flags=re.M), ran.out  # Vietnam time


def state_in_utc(_: Walkthrough, ran: Ran) -> None:
    state = ran.json()
    assert state["dossier_id"] == "HS-2026-000123" and state["procedure_version"] == 2
    assert utc_everywhere(state) > 5


def awaiting_supplement(_: Walkthrough, ran: Ran) -> None:
    assert "assigned" not in ran.out, ran.out  # it says what happened, not the step's status
    assert "every clock stops until the applicant resubmits" in ran.out


def cli_inbox(walk: Walkthrough, ran: Ran) -> None:
    page = ran.json()
    InboxPage.model_validate(page)
    assert list(page) == list(InboxPage.model_fields)
    assert [(i["dossier_id"], i["step_id"]) for i in page["items"]] == [("HS-2026-000123", "tham-dinh")]
    assert utc_everywhere(page) == 3  # at, assigned_at, due_at
    walk.cli_inbox = page


def sheet_text(_: Walkthrough, ran: Ran) -> None:
    lines = ran.out.splitlines()
    header = next(line for line in lines if line.strip().startswith("#  STEP"))
    assert header.split() == ["#", "STEP", "FROM", "TO", "HANDED", "OVER", "DUE", "COMPLETED", "STATUS", "VERDICT"]
    open_row = next(line for line in lines if " tham-dinh " in line)
    assert open_row.split()[-3:] == ["-", "assigned", "-"], open_row  # COMPLETED "-", STATUS, VERDICT
    done_row = next(line for line in lines if " tiep-nhan " in line)
    assert done_row.split()[-2] == "completed", done_row


def sheet_json(_: Walkthrough, ran: Ran) -> None:
    sheet = ran.json()
    Sheet.model_validate(sheet)
    assert [(h["step_id"], h["from"], h["to"]) for h in sheet["handovers"]][:2] == [
        ("tiep-nhan", "applicant", "bpmc-xa-xa-tan-lap"), ("xac-nhan-hien-trang", "bpmc-xa-xa-tan-lap",
                                                           "ubnd-xa-xa-tan-lap")]
    assert [n["kind"] for n in sheet["notes"]] == ["supplement_requested", "resubmitted"]
    assert utc_everywhere(sheet) > 5


def timeline_picture(_: Walkthrough, ran: Ran) -> None:
    written = re.search(r"written to (\S+\.svg)$", ran.out.strip())
    assert written, ran.out
    root = ET.fromstring(Path(written.group(1)).read_bytes())
    rows = [g.get("data-step") for g in root.iter(f"{SVG}g") if "row" in (g.get("class") or "").split()]
    # The parallel branches, handed over at one instant, in the procedure's order.
    assert rows == ["tiep-nhan", "xac-nhan-hien-trang", "xac-dinh-nghia-vu-tai-chinh", "tham-dinh"], rows
    assert [r.get("data-kind") for r in root.iter(f"{SVG}rect") if r.get("data-kind")] == ["supplement"]


def extended(_: Walkthrough, ran: Ran) -> None:
    assert "dossier HS-2026-000123: extended until" in ran.out


def waiting_for_receipt(walk: Walkthrough, ran: Ran) -> None:
    assert "due:" not in ran.out, ran.out  # no clock before receipt
    state = walk.state("HS-2026-000125")
    assert (state.status, state.portal_status, state.received_by) == ("submitted", 1, "bpmc-xa-xa-tan-lap")


def awaiting_the_desk(_: Walkthrough, ran: Ran) -> None:
    lines = ran.out.splitlines()
    waiting = lines[:lines.index("1 waiting for receipt") + 1]
    assert [line.split()[0] for line in waiting[2:-1]] == ["HS-2026-000125"], ran.out
    assert "HS-2026-000124" in ran.out.split("1 waiting for receipt")[1]  # its open step, below


def received_online(walk: Walkthrough, ran: Ran) -> None:
    state = walk.state("HS-2026-000125")
    assert state.status == "processing" and state.received_by == "bpmc-xa-xa-tan-lap" and state.due_at is not None
    assert state.submitted_at is not None and state.received_at >= state.submitted_at


def withdrawn(walk: Walkthrough, ran: Ran) -> None:
    state = walk.state("HS-2026-000125")
    assert (state.status, state.portal_status) == ("withdrawn", 8)
    assert all(st.status != "assigned" for st in state.steps)  # out of every inbox


def withdrawn_sheet(_: Walkthrough, ran: Ran) -> None:
    lines = ran.out.splitlines()
    history = lines[lines.index("portal status:") + 1:lines.index("result:")]
    assert [int(line.split()[2]) for line in history] == [1, 2, 4, 7, 8], ran.out
    assert "  received by bpmc-xa-xa-tan-lap; result returned at bpmc-xa-xa-tan-lap" in lines


def token_printed(_: Walkthrough, ran: Ran) -> None:
    assert ran.out == "" and "shown once" in ran.err  # the token went into $TOKEN


def gateway_inbox(walk: Walkthrough, ran: Ran) -> None:
    page = ran.json()
    # One inbox document on both paths: the same keys, the same items.
    assert list(page) == list(walk.cli_inbox)
    assert page["items"] == walk.cli_inbox["items"]
    assert utc_everywhere(page) == 3


def completed_through_the_gateway(_: Walkthrough, ran: Ran) -> None:
    state = ran.json()
    step = next(st for st in state["steps"] if st["id"] == "tham-dinh")
    assert step["status"] == "completed", state
    assert utc_everywhere(state) > 5


def public_status(_: Walkthrough, ran: Ran) -> None:
    status = ran.json()
    assert status["dossier_id"] == "HS-2026-000123" and "data" not in status
    assert utc_everywhere(status) >= 2


def refused_token(_: Walkthrough, ran: Ran) -> None:
    assert ran.json()["status"] == 401


# The walk-through's three land-registration dossiers (level xa, sector G13-TN01): two in
# progress (received this month, or HS-2026-000124, received 2026-11-23, carried over) and
# HS-2026-000125, received online this month and withdrawn: resolved (its end time, 8).
LAND_ROW = {"received_total": 3, "resolved_total": 1, "in_progress_total": 2}


def report_table(_: Walkthrough, ran: Ran) -> None:
    lines = ran.out.splitlines()
    assert lines[0].startswith("Biểu 06/VPCP/KSTT: ") and lines[1].startswith("Kỳ báo cáo: từ ngày 01/")
    total = next(line for line in lines if line.strip().startswith("Tổng cộng")).split()
    assert (total[2], total[6], total[10]) == ("3", "1", "2"), total  # columns 3, 7 and 11
    assert "Cấp xã" in ran.out and "Đất đai" in ran.out


def report_csv(_: Walkthrough, ran: Ran) -> None:
    rows = {row["code"]: row for row in csv.DictReader(io.StringIO(ran.out))}
    land = rows["1.012756"]
    assert land["kind"] == "procedure" and land["name"].startswith("Đăng ký đất đai")
    assert {key: int(land[key]) for key in LAND_ROW} == LAND_ROW


def report_workbook(_: Walkthrough, ran: Ran) -> None:
    from openpyxl import load_workbook

    assert ran.out == "" and "written to" in ran.err
    target = Path(ran.err.strip().rsplit(" written to ", 1)[1])
    sheet = load_workbook(target).active
    assert sheet is not None and sheet["A1"].value == "Biểu 06/VPCP/KSTT" and sheet["M9"].value == "(13)"


def monitoring_token_printed(_: Walkthrough, ran: Ran) -> None:
    assert ran.out == "" and "(monitoring: reads reports only)" in ran.err


def report_through_the_gateway(_: Walkthrough, ran: Ran) -> None:
    report = ran.json()
    assert report["by"] == "sector" and report["complete"] is False and utc_everywhere(report) == 2
    land = next(row for row in report["rows"] if row["code"] == "G13-TN01")
    assert {key: land[key] for key in LAND_ROW} == LAND_ROW


# Every command of the marked blocks, in order: how it starts, and its check (on top
# of exit 0 and the README's quoted fragments). A command added to the README
# without a line here fails the test.
EXPECTED: list[tuple[str, Check]] = [
    ("source .venv/bin/activate", nothing),
    ("lienthong definitions validate definitions", lines_of("10 files valid")),
    ("lienthong db upgrade", lines_of("database ")),
    ("lienthong definitions deploy definitions", lines_of("unchanged 1.012756@1")),
    ("lienthong definitions list", lines_of("1.012756@1", "3.000722@1")),
    ("lienthong definitions show 1.012756@1", lines_of("procedure:      1.012756@1", 'code: "1.012756"')),
    ("lienthong definitions graph 1.012756", graph_of_land),
    ("NEW=$(mktemp -d) && cp -R", nothing),
    ("sed -e", nothing),
    ('lienthong definitions deploy "$NEW" --by', deployed_v2_by_name),
    ("lienthong definitions diff 1.012756 1 2", lines_of("-supplement_deadline: 10d")),
    ("lienthong dossiers submit --procedure 1.012756 --id HS-2026-000123", submitted_with_a_due),
    ("lienthong dossiers show HS-2026-000123", lines_of("STEP", "tiep-nhan")),
    ("lienthong dossiers show HS-2026-000123 --json", state_in_utc),
    ("lienthong dossiers complete HS-2026-000123 tiep-nhan", lines_of("(on_time)")),
    ("lienthong dossiers complete HS-2026-000123 xac-nhan-hien-trang --agency ubnd-xa-xa-tan-lap \\\n"
     "    --outcome supplement", awaiting_supplement),
    ("lienthong dossiers resubmit HS-2026-000123", lines_of("due ")),
    ("lienthong dossiers complete HS-2026-000123 xac-nhan-hien-trang --agency ubnd-xa-xa-tan-lap \\\n"
     "    --request-id", lines_of("dossier processing")),
    ("lienthong inbox vpdk-tinh", lines_of("1 item, 0 overdue")),
    ("lienthong inbox vpdk-tinh --limit 50 --offset 0 --json", cli_inbox),
    ("lienthong dossiers sheet HS-2026-000123", sheet_text),
    ("lienthong dossiers sheet HS-2026-000123 --json", sheet_json),
    ("lienthong dossiers timeline HS-2026-000123", timeline_picture),
    ("lienthong dossiers submit --procedure 1.012756 --id HS-2026-000124 --received-at", submitted_with_a_due),
    ("lienthong dossiers extend HS-2026-000123", extended),
    ("lienthong dossiers submit --procedure 1.012756 --id HS-2026-000125 --channel online", waiting_for_receipt),
    ("lienthong inbox bpmc-xa-xa-tan-lap", awaiting_the_desk),
    ("lienthong dossiers receive HS-2026-000125", received_online),
    ("lienthong dossiers withdraw HS-2026-000125", withdrawn),
    ("lienthong dossiers sheet HS-2026-000125", withdrawn_sheet),
    ("lienthong dossiers resync HS-2026-000123", lines_of("up to date HS-2026-000123")),
    ("lienthong calendars apply --calendar vn-gov", lines_of("0 moved")),
    ("TOKEN=$(lienthong agencies issue-token vpdk-tinh)", token_printed),
    ("lienthong agencies tokens vpdk-tinh", lines_of("ID ")),
    ('curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/inbox', gateway_inbox),
    ('curl -s -X POST -H "Authorization: Bearer $TOKEN"', completed_through_the_gateway),
    ("curl -s http://127.0.0.1:8080/public/dossiers/HS-2026-000123", public_status),
    ('lienthong agencies revoke-token "$TOKEN"', lines_of("of vpdk-tinh revoked")),
    ('curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/inbox', refused_token),
    ("curl -s http://127.0.0.1:9464/metrics | grep lienthong_dossiers_overdue", lines_of("sector=")),
    ("FROM=$(TZ=Asia/Ho_Chi_Minh date +%Y-%m-01) TO=", nothing),
    ('lienthong report --from "$FROM" --to "$TO"', report_table),
    ('lienthong report --from "$FROM" --to "$TO" --by procedure --format csv', report_csv),
    ('lienthong report --from "$FROM" --to "$TO" --format xlsx --out', report_workbook),
    ("MONITOR=$(lienthong agencies issue-token ubnd-tinh --role monitoring)", monitoring_token_printed),
    ('curl -s -H "Authorization: Bearer $MONITOR"', report_through_the_gateway),
]


def matched(commands: list[str]) -> list[tuple[str, Check]]:
    assert len(commands) == len(EXPECTED), (
        f"the README's marked blocks hold {len(commands)} commands, this test checks {len(EXPECTED)}:\n"
        + "\n".join(commands))
    checks = []
    for command, (start, check) in zip(commands, EXPECTED):
        assert bare(command).startswith(start), f"README command {command!r} is not the expected {start!r}"
        checks.append((command, check))
    return checks


def test_the_readme_marks_its_walkthrough_and_every_command_has_a_check() -> None:
    text = README.read_text(encoding="utf-8")
    commands = readme_commands(text)
    matched(commands)
    using_it = text[text.index("## Using it"):text.index("`--procedure CODE` uses")]
    assert using_it.count("```sh") == using_it.count(MARKER) == 1  # the whole "Using it" block is pasted
    assert "uuidgen" not in text  # absent on many machines
    assert all(placeholder not in command for command in commands for placeholder in ("<ID>", "[--", "…]"))
    # Pasted commands name only the addresses `make run` serves by default.
    assert {m for c in commands for m in re.findall(r"https?://[^/\s]+", c)} == {GATEWAY, EXPORTER}
    assert sum(bool(quoted(c)) for c in commands) >= 15


def test_the_readme_graph_is_what_the_command_prints(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The ```mermaid block under "Drawing a procedure" is pasted output, kept current."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Drawing a procedure"):]
    blocks = re.findall(r"\n```mermaid\n(.*?)```\n", section, flags=re.S)
    command = re.search(r"as `(lienthong definitions graph [^`]+)` prints it", section)
    assert blocks and command, "the README's graph section has no mermaid block or no command"
    monkeypatch.setenv("LIENTHONG_DEFINITIONS", str(REPO / "definitions"))
    monkeypatch.setenv("LIENTHONG_DATABASE_URL", "sqlite://")
    assert run(shlex.split(command.group(1))[1:]) == 0
    assert capsys.readouterr().out == blocks[0], "regenerate the README's graph: " + command.group(1)


def test_the_readme_walkthrough_runs_as_pasted(stack: Stack, tmp_path: Path) -> None:
    checks = matched(readme_commands(README.read_text(encoding="utf-8")))
    walk = Walkthrough(stack)
    terminal = Terminal(tmp_path, base_env(stack.database_url, stack.address))
    try:
        for command, check in checks:
            typed = command.replace(GATEWAY, stack.gateway).replace(EXPORTER, stack.exporter)
            ran = terminal.run(typed)
            assert ran.code == 0, (f"exit {ran.code}: {command}\nstdout:\n{ran.out}\nstderr:\n{ran.err}\n"
                                   f"lienthong dev:\n{stack.output()}")
            for fragment in quoted(command):
                assert fragment in ran.out, f"the README says {command!r} prints {fragment!r}; it printed:\n{ran.out}"
            check(walk, ran)
            walk.settle(command)
    finally:
        terminal.close()
        walk.sessions.kw["bind"].dispose()
