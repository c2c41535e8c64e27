"""The CLI without a Temporal server: definitions, submission checks, error lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.submission import StoreRegistry, SubmissionError, prepare_dossier
from store.db import make_engine, make_session_factory
from store.migrate import head, upgrade
from store.models import DefinitionRow
from tests.workers.conftest import DEFINITIONS, copy_definitions, free_port, lienthong
from workers.cli import run
from workers.commands_dossiers import render_state
from workers.commands_registry import deploy_paths
from workers.dev import DevOptions, server_command
from workflows.payloads import DossierState, StepState

TODAY = date(2026, 3, 2)
LAND = "1.012756"
DATA = {"commune": "xa-tan-lap", "area_m2": 320, "applicant": "Nguyễn Văn A"}


@pytest.fixture(scope="module")
def deployed_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database with the shipped definitions deployed (agencies, sectors, procedures)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'lienthong.db'}"
    upgrade(url)
    engine = make_engine(url)
    deploy_paths(make_session_factory(engine), [DEFINITIONS], DEFINITIONS, "tests")
    engine.dispose()
    return url


@pytest.fixture
def catalog(deployed_url: str) -> Iterator[StoreRegistry]:
    """What submission looks things up in: the registry the shipped definitions were deployed to."""
    engine = make_engine(deployed_url)
    with Session(engine) as session:
        yield StoreRegistry(session, DEFINITIONS)
    engine.dispose()


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    assert "Traceback" not in text
    return lines[0]


# --------------------------------------------------------------------------- definitions


def test_validate_shipped_definitions() -> None:
    result = lienthong("definitions", "validate", str(DEFINITIONS))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+ files valid", one_line(result.stdout))
    assert result.stderr == ""


def test_validate_broken_file_reports_path_and_line(tmp_path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        'code: "9.000001"\nname: Thử\nsector: G99-KHONG-CO\nlevel: xa\nversion: 1\ndeadline: 3 ngay\n'
        "steps:\n  - id: tiep-nhan\n    agency: bpmc-tinh\n    deadline: 1d\n",
        encoding="utf-8",
    )
    result = lienthong("definitions", "validate", str(broken))
    assert result.returncode == 1
    problems = result.stdout.strip().splitlines()
    assert problems and all(line.startswith(f"{broken}:") for line in problems)
    assert any(line.startswith(f"{broken}:3:") and "sector" in line for line in problems)
    assert any(line.startswith(f"{broken}:6:") and "deadline" in line for line in problems)
    assert "problem" in one_line(result.stderr)


def test_list_files_shows_shipped_procedures() -> None:
    result = lienthong("definitions", "list", "--files")
    assert result.returncode == 0, result.stderr
    land = next(line for line in result.stdout.splitlines() if line.startswith(f"{LAND}@1"))
    assert "G13-TN01" in land and "17d" in land and "Đăng ký đất đai" in land


# --------------------------------------------------------------------------- submission


def test_prepare_dossier_accepts_shipped_procedure(catalog: StoreRegistry) -> None:
    received = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    dossier = prepare_dossier(LAND, "HS-1", DATA, catalog, TODAY, "online", received, "bpmc-xa-xa-tan-lap")
    assert dossier.snapshot.ref == f"{LAND}@1"
    assert dossier.data == DATA and dossier.channel == "online" and dossier.received_at == received


def test_prepare_dossier_takes_json_text(catalog: StoreRegistry) -> None:
    dossier = prepare_dossier(f"{LAND}@1", "HS-1", '{"commune": "xa-an-phu"}', catalog, TODAY)
    assert dossier.data == {"commune": "xa-an-phu"}


def test_not_deployed_procedure(catalog: StoreRegistry) -> None:
    with pytest.raises(SubmissionError) as err:
        prepare_dossier("9.999999", "HS-1", DATA, catalog, TODAY)
    assert str(err.value) == "procedure 9.999999 is not deployed: run `lienthong definitions deploy`"


def test_unknown_version(catalog: StoreRegistry) -> None:
    with pytest.raises(SubmissionError, match="has no deployed version 7: deployed versions are 1$"):
        prepare_dossier(f"{LAND}@7", "HS-1", DATA, catalog, TODAY)


@pytest.mark.parametrize("ref", [f"{LAND}@", f"{LAND}@v2", f"{LAND}@0", "@1"])
def test_malformed_reference(catalog: StoreRegistry, ref: str) -> None:
    with pytest.raises(SubmissionError, match=re.escape(repr(ref))):
        prepare_dossier(ref, "HS-1", DATA, catalog, TODAY)


def test_draft_file_is_validated(catalog: StoreRegistry, tmp_path: Path) -> None:
    shipped = DEFINITIONS / "procedures" / "dang-ky-dat-dai-lan-dau.yaml"
    draft = tmp_path / "draft.yaml"
    draft.write_text(shipped.read_text(encoding="utf-8").replace("version: 1", "version: 9"), encoding="utf-8")
    assert prepare_dossier(str(draft), "HS-1", DATA, catalog, TODAY).snapshot.ref == f"{LAND}@9"
    draft.write_text(shipped.read_text(encoding="utf-8").replace("sector: G13-TN01", "sector: G99"), encoding="utf-8")
    with pytest.raises(SubmissionError, match=rf"problem\(s\), first: {re.escape(str(draft))}:\d+: .*sector"):
        prepare_dossier(str(draft), "HS-1", DATA, catalog, TODAY)
    with pytest.raises(SubmissionError, match="no procedure file"):
        prepare_dossier(str(tmp_path / "missing.yaml"), "HS-1", DATA, catalog, TODAY)


def test_unknown_agency_from_template_data(catalog: StoreRegistry) -> None:
    with pytest.raises(SubmissionError) as err:
        prepare_dossier(LAND, "HS-1", {**DATA, "commune": "xa-tan-lapp"}, catalog, TODAY)
    message = str(err.value)
    assert "step 'tiep-nhan'" in message
    assert "'bpmc-xa-{commune}'" in message and "'bpmc-xa-xa-tan-lapp'" in message
    assert "bpmc-xa-xa-tan-lap" in message.split("close codes:")[1]  # the suggestion
    assert "xa-an-phu" in message  # the known communes


def test_missing_template_field(catalog: StoreRegistry) -> None:
    with pytest.raises(SubmissionError, match=r"step 'tiep-nhan': agency 'bpmc-xa-\{commune\}' needs field 'commune'"):
        prepare_dossier(LAND, "HS-1", {"area_m2": 320}, catalog, TODAY)


@pytest.mark.parametrize("data", ["[1, 2]", '"xa-tan-lap"', "42", "{not json"])
def test_data_must_be_a_json_object(catalog: StoreRegistry, data: str) -> None:
    with pytest.raises(SubmissionError, match="--data"):
        prepare_dossier(LAND, "HS-1", data, catalog, TODAY)


def test_received_at_in_the_future(catalog: StoreRegistry) -> None:
    future = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(SubmissionError, match="in the future"):
        prepare_dossier(LAND, "HS-1", DATA, catalog, TODAY, received_at=future)


def test_received_at_without_offset(catalog: StoreRegistry) -> None:
    with pytest.raises(SubmissionError, match="no UTC offset"):
        prepare_dossier(LAND, "HS-1", DATA, catalog, TODAY, received_at="2026-03-02T09:00:00")


def test_received_by_must_be_a_one_stop_desk(catalog: StoreRegistry) -> None:
    with pytest.raises(SubmissionError, match="does not receive dossiers; one-stop desks are: .*bpmc-tinh"):
        prepare_dossier(LAND, "HS-1", DATA, catalog, TODAY, received_by="vpdk-tinh")
    with pytest.raises(SubmissionError, match="not a registered agency"):
        prepare_dossier(LAND, "HS-1", DATA, catalog, TODAY, received_by="bpmc-mars")


def test_agency_of_a_skipped_step_is_not_needed(catalog: StoreRegistry) -> None:
    # lay-y-kien-so only runs for parcels over 500 m²; the check follows `when`.
    small = prepare_dossier(LAND, "HS-1", {"commune": "xa-tan-lap", "area_m2": 100}, catalog, TODAY)
    assert small.data["area_m2"] == 100


def test_submit_refusal_is_one_line_without_a_server(deployed_url: str) -> None:
    result = lienthong("dossiers", "submit", "--procedure", LAND, "--id", "HS-1",
                       "--data", '{"commune": "xa-khong-co"}', address=f"127.0.0.1:{free_port()}",
                       database_url=deployed_url)
    assert result.returncode == 1
    assert "bpmc-xa-xa-khong-co" in one_line(result.stderr)


def test_submit_on_an_unmigrated_database_says_what_to_do() -> None:
    result = lienthong("dossiers", "submit", "--procedure", LAND, "--id", "HS-1", "--data", "{}",
                       address=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert one_line(result.stderr) == f"database sqlite:// is at revision none, not {head()}: run `lienthong db upgrade`"


# --------------------------------------------------------------------------- errors


def test_show_against_unreachable_server() -> None:
    address = f"127.0.0.1:{free_port()}"
    result = lienthong("dossiers", "show", "HS-1", address=address)
    assert result.returncode == 1
    assert one_line(result.stderr).startswith(f"cannot reach Temporal at {address}: ")
    assert result.stdout == ""


def test_usage_error_is_one_line() -> None:
    result = lienthong("dossiers", "complete", "HS-1")
    assert result.returncode == 2
    assert "required" in one_line(result.stderr)


def test_extend_needs_an_iso_date(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["dossiers", "extend", "HS-1", "--agency", "vpdk-tinh", "--until", "next week", "--reason", "x"])
    assert code == 1
    assert "not an ISO date-time" in one_line(capsys.readouterr().err)


def test_dev_stops_on_a_broken_definition_before_starting_anything(tmp_path: Path) -> None:
    definitions = copy_definitions(tmp_path / "definitions")
    broken = definitions / "procedures" / "dang-ky-dat-dai-lan-dau.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace("sector: G13-TN01", "sector: G99"), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'lienthong.db'}"
    port = free_port()
    result = lienthong("dev", "--port", str(port), "--ui-port", str(free_port()), database_url=url,
                       definitions=definitions)
    assert result.returncode == 1
    assert any(line.startswith(f"{broken}:") and "sector" in line for line in result.stdout.splitlines())
    assert re.fullmatch(r"\d+ problem\(s\) in \d+ file\(s\); nothing deployed", one_line(result.stderr))
    engine = make_engine(url)
    with Session(engine) as session:  # migrated, but nothing deployed
        assert list(session.scalars(select(DefinitionRow))) == []
    engine.dispose()


# --------------------------------------------------------------------------- pieces


def test_dev_server_command_registers_search_attributes(tmp_path) -> None:
    command = server_command(DevOptions(port=7300, ui_port=8300, db_file=tmp_path / "dev.db"), "default")
    joined = " ".join(command)
    assert command[1:3] == ["server", "start-dev"]
    for expected in ("--port 7300", "--ui-port 8300", "--ip 127.0.0.1", "--log-level warn", "--namespace default",
                     f"--db-filename {tmp_path / 'dev.db'}", "LienthongProcedure=Keyword",
                     "LienthongDueAt=Datetime", "LienthongStatus=Keyword"):
        assert expected in joined
    assert "--db-filename" not in server_command(DevOptions(), "default")


def test_human_view_uses_vietnam_time() -> None:
    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 09:00 in Hà Nội
    state = DossierState(
        dossier_id="HS-1", procedure_code=LAND, procedure_version=1, procedure_name="Đăng ký đất đai",
        content_hash="x", sector="G13-TN01", level="xa", calendar="vn-gov", channel="in_person",
        received_at=at, due_at=at + timedelta(days=3), original_due_at=at + timedelta(days=3),
        steps=[StepState(id="tiep-nhan", name="Tiếp nhận", agency="bpmc-xa-xa-tan-lap", deadline="0.5d",
                         status="assigned", assigned_at=at, due_at=at, overdue=True, note="thiếu bản sao")],
    )
    view = render_state(state)
    assert "received:     2026-03-02 09:00" in view
    step_line = next(line for line in view.splitlines() if line.strip().startswith("tiep-nhan"))
    assert "bpmc-xa-xa-tan-lap" in step_line and "assigned" in step_line and step_line.endswith("OVERDUE")
    assert "note: thiếu bản sao" in view


def test_every_command_runs_a_function() -> None:
    """Each command module adds its own parsers: every leaf command's `run` is a
    command function taking (args, settings), never a parser or anything else."""
    import argparse
    import inspect

    from workers.cli import _parser

    def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], object]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += leaves(sub, (*path, name))
        return found or [(path, parser.get_default("run"))]

    commands = leaves(_parser(), ())
    assert len(commands) >= 24
    for path, command in commands:
        assert inspect.isfunction(command), (path, command)
        assert list(inspect.signature(command).parameters)[:2] == ["args", "settings"], path
