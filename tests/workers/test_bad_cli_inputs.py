"""Malformed `lienthong` command lines: each is refused with a non-zero exit and one
clear line on stderr (no traceback), and nothing changes: not the registry, not the
projection, not a dossier.

Most refusals happen before Temporal is contacted (they run the CLI in this
process against a migrated SQLite registry, with TEMPORAL_ADDRESS pointing at a
closed port so a case that wrongly reached Temporal would say so); the ones that
need a dossier run against a real `lienthong dev` stack. Both use the bad-input
corpus's small definitions folder (tests/definitions/bad_corpus/catalog), which
no other change to definitions/ can break.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from definitions.limits import MAX_DATA_BYTES, MAX_DATA_DEPTH, MAX_NOTE_CHARS
from store.db import make_engine
from store.migrate import upgrade
from store.models import Base
from tests.definitions.bad_corpus.generate import CATALOG
from tests.definitions.bad_corpus.generate import HERE as CORPUS
from tests.support.codec import TEST_KEYS
from tests.workers.conftest import (
    LIENTHONG,
    REPO,
    DevStack,
    StackCli,
    cli_env,
    start_dev_stack,
)
from workers.cli import run

PROCEDURE = "9.900001"  # the corpus's base procedure
DATA = '{"commune": "xa-mot", "area_m2": 120}'
CLOSED = "127.0.0.1:1"  # no Temporal here
BROKEN_DRAFT = next(CORPUS.glob("*-unknown-agency.yaml"))
# Dossier data just past the bounds of definitions/limits.py.
BIG_DATA = json.dumps({"commune": "xa-mot", "ghi_chu": "x" * MAX_DATA_BYTES})
BIG_DATA_BYTES = len(json.dumps(json.loads(BIG_DATA), separators=(",", ":")).encode())
DEEP_FIELD: object = "day"
for _ in range(MAX_DATA_DEPTH):  # 16 objects under the data object: level 17
    DEEP_FIELD = {"cap": DEEP_FIELD}
LONG_TEXT = "n" * (MAX_NOTE_CHARS + 1)


def table_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return {t.name: session.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


def table_rows(url: str) -> dict[str, list[tuple]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {t.name: sorted(map(tuple, connection.execute(select(t))), key=repr)
                    for t in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(CATALOG, tmp_path_factory.mktemp("cli-bad") / "definitions"))


@pytest.fixture(scope="module")
def registry_url(definitions: Path) -> str:
    """A migrated SQLite database with the corpus catalog deployed."""
    url = f"sqlite:///{definitions.parent / 'lienthong.db'}"
    upgrade(url)
    env = cli_env(CLOSED, url, definitions)
    deployed = subprocess.run([str(LIENTHONG), "definitions", "deploy", "--by", "tests"], capture_output=True,
                              text=True, env=env, cwd=REPO, timeout=120, check=False)
    assert deployed.returncode == 0, deployed.stderr
    return url


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str],
            env: dict[str, str]) -> Outcome:
    for name in [k for k in os.environ if k.startswith(("LIENTHONG_", "TEMPORAL_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LIENTHONG_CODEC_KEYS", TEST_KEYS)  # a case may still drop it (env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = run(args)
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


@dataclass(frozen=True)
class Bad:
    id: str
    args: list[str]
    words: tuple[str, ...]  # all on the one stderr line
    code: int = 1
    env: dict[str, str] = field(default_factory=dict)  # {url}, {definitions}, {tmp} are filled in
    stdout: tuple[str, ...] = ()  # lines on stdout (PATH:LINE: problems), each a fragment


def submit(*extra: str, procedure: str = PROCEDURE, data: str = DATA, dossier: str = "HS-CLI-1") -> list[str]:
    return ["dossiers", "submit", "--procedure", procedure, "--id", dossier, "--data", data, *extra]


CASES = [
    # ---- submission, refused before Temporal
    Bad("submit-unknown-procedure", submit(procedure="9.999999"),
        ("procedure 9.999999 is not deployed", "run `lienthong definitions deploy`")),
    Bad("submit-close-procedure-code", submit(procedure="9.900002"),
        ("procedure 9.900002 is not deployed", "close codes: 9.900001")),
    Bad("submit-unknown-version", submit(procedure="9.900001@7"),
        ("procedure 9.900001 has no deployed version 7", "deployed versions are 1")),
    Bad("submit-bad-version", submit(procedure="9.900001@v2"),
        ("procedure '9.900001@v2'", "the version after @ must be a whole number >= 1")),
    Bad("submit-data-not-json", submit(data="{commune: xa-mot}"), ("--data is not valid JSON", "line 1 column 2")),
    Bad("submit-data-with-nul", submit(data='{"commune": "xa-mot", "applicant": {"name": "A\\u0000B"}}'),
        ("--data field 'applicant.name' contains a NUL character",)),
    Bad("submit-data-not-an-object", submit(data='["xa-mot"]'), ("--data must be a JSON object", "got list")),
    Bad("submit-unknown-commune", submit(data='{"commune": "xa-ba"}'),
        ("step 'tiep-nhan'", "resolves to 'bpmc-xa-xa-ba', which is not a registered agency",
         "known commune values: xa-hai, xa-mot")),
    Bad("submit-missing-commune", submit(data='{"area_m2": 120}'),
        ("step 'tiep-nhan'", "needs field 'commune' in the dossier's data", "known commune values: xa-hai, xa-mot")),
    Bad("submit-bad-dossier-id", submit(dossier="HS/2026 1"), ("dossier id 'HS/2026 1'", "letters, digits")),
    Bad("submit-received-at-not-a-date", submit("--received-at", "hôm qua"),
        ("--received-at 'hôm qua' is not an ISO date-time",)),
    Bad("submit-received-at-without-offset", submit("--received-at", "2026-01-05T09:00"),
        ("--received-at 2026-01-05T09:00:00 has no UTC offset", "+07:00")),
    Bad("submit-received-at-in-the-future", submit("--received-at", "2999-01-01T09:00+07:00"), ("is in the future",)),
    Bad("submit-received-by-not-a-desk", submit("--received-by", "vpdk-tinh"),
        ("--received-by 'vpdk-tinh' does not receive dossiers", "bpmc-xa-xa-hai, bpmc-xa-xa-mot")),
    Bad("submit-received-by-unknown", submit("--received-by", "bpmc-xa-xa-bon"),
        ("--received-by 'bpmc-xa-xa-bon' is not a registered agency",)),
    Bad("submit-broken-draft", submit(procedure=str(BROKEN_DRAFT)),
        ("1 problem(s), first:", f"{BROKEN_DRAFT}:23: steps[1].parallel[0].agency: unknown agency 'thue-coso'",
         f"run `lienthong definitions validate {BROKEN_DRAFT}`")),
    Bad("submit-missing-draft", submit(procedure="{tmp}/khong-co.yaml"), ("no procedure file", "khong-co.yaml")),
    Bad("submit-data-too-big", submit(data=BIG_DATA),
        (f"dossier data is {BIG_DATA_BYTES} bytes as JSON; at most {MAX_DATA_BYTES} bytes (MAX_DATA_BYTES)",)),
    Bad("submit-data-too-deep", submit(data=json.dumps({"commune": "xa-mot", "ho_so": DEEP_FIELD})),
        (f"dossier data nests {MAX_DATA_DEPTH + 1} levels of objects/arrays deep",
         f"(field 'ho_so{'.cap' * (MAX_DATA_DEPTH - 1)}' is level {MAX_DATA_DEPTH + 1})",
         f"at most {MAX_DATA_DEPTH} (MAX_DATA_DEPTH)")),
    Bad("submit-data-thousands-deep", submit(data='{"commune": "xa-mot", "a": ' + "[" * 5000 + "]" * 5000 + "}"),
        (f"dossier data nests too deep to read; at most {MAX_DATA_DEPTH} levels of objects/arrays (MAX_DATA_DEPTH)",)),
    Bad("submit-data-nan", submit(data='{"commune": "xa-mot", "area_m2": NaN}'),
        ("dossier data field 'area_m2' is NaN; expected a finite number (JSON has no NaN or Infinity)",)),
    Bad("submit-data-infinity", submit(data='{"commune": "xa-mot", "thua": [{"dien_tich": -Infinity}]}'),
        ("dossier data field 'thua.0.dien_tich' is -Infinity",)),
    Bad("submit-unknown-channel", submit("--channel", "fax"),
        ("lienthong dossiers submit: argument --channel: invalid choice: 'fax'", "see lienthong dossiers submit --help"),
        code=2),
    # ---- changes, refused before Temporal
    Bad("complete-unknown-outcome", ["dossiers", "complete", "HS-CLI-1", "tiep-nhan", "--agency", "bpmc-xa-xa-mot",
                                     "--outcome", "maybe"], ("argument --outcome: invalid choice: 'maybe'",), code=2),
    Bad("complete-without-agency", ["dossiers", "complete", "HS-CLI-1", "tiep-nhan"],
        ("the following arguments are required: --agency",), code=2),
    Bad("extend-bad-until", ["dossiers", "extend", "HS-CLI-1", "--agency", "vpdk-tinh", "--until", "thứ hai",
                             "--reason", "chờ"], ("--until 'thứ hai' is not an ISO date-time",)),
    Bad("resync-nothing-named", ["dossiers", "resync"], ("give dossier IDs or --all",)),
    Bad("complete-note-too-long", ["dossiers", "complete", "HS-CLI-1", "tiep-nhan", "--agency", "bpmc-xa-xa-mot",
                                   "--outcome", "rejected", "--note", LONG_TEXT],
        (f"argument --note: {MAX_NOTE_CHARS + 1} characters; at most {MAX_NOTE_CHARS} (MAX_NOTE_CHARS)",), code=2),
    Bad("resubmit-note-too-long", ["dossiers", "resubmit", "HS-CLI-1", "--agency", "bpmc-xa-xa-mot",
                                   "--note", LONG_TEXT],
        (f"argument --note: {MAX_NOTE_CHARS + 1} characters; at most {MAX_NOTE_CHARS} (MAX_NOTE_CHARS)",), code=2),
    Bad("extend-reason-too-long", ["dossiers", "extend", "HS-CLI-1", "--agency", "vpdk-tinh", "--until",
                                   "2030-01-02T17:00", "--reason", LONG_TEXT],
        (f"argument --reason: {MAX_NOTE_CHARS + 1} characters; at most {MAX_NOTE_CHARS} (MAX_NOTE_CHARS)",), code=2),
    Bad("calendars-apply-reason-too-long", ["calendars", "apply", "--calendar", "vn-gov", "--reason", LONG_TEXT],
        (f"argument --reason: {MAX_NOTE_CHARS + 1} characters; at most {MAX_NOTE_CHARS} (MAX_NOTE_CHARS)",), code=2),
    # ---- definitions and calendars
    Bad("deploy-missing-path", ["definitions", "deploy", "{tmp}/khong-co"], ("1 problem(s) in 0 file(s); nothing deployed",),
        stdout=("{tmp}/khong-co:1: no such file or folder",)),
    Bad("deploy-broken-file", ["definitions", "deploy", str(BROKEN_DRAFT)], ("1 problem(s) in 1 file(s); nothing deployed",),
        stdout=(f"{BROKEN_DRAFT}:23: steps[1].parallel[0].agency: unknown agency 'thue-coso'",)),
    Bad("definitions-show-unknown", ["definitions", "show", "9.8"], ("procedure 9.8 is not deployed",)),
    Bad("definitions-show-bad-ref", ["definitions", "show", "9.900001@"],
        ("procedure '9.900001@': the version after @ must be a whole number >= 1",)),
    Bad("definitions-diff-bad-version", ["definitions", "diff", PROCEDURE, "1", "hai"],
        ("argument V2: expected a whole number, got 'hai'",), code=2),
    Bad("calendars-apply-unknown", ["calendars", "apply", "--calendar", "lich-am"],
        ("unknown calendar 'lich-am'; known calendars: continuous, hong, vn-gov",)),
    Bad("calendars-apply-broken-file", ["calendars", "apply", "--calendar", "hong"],
        ("2 problem(s) in the calendar files; nothing applied",),
        stdout=("calendars/hong.yaml:3: timezone: unknown time zone 'Mars/Olympus'", "calendars/hong.yaml:4: working_periods")),
    Bad("inbox-unknown-agency", ["inbox", "vpdk-tinhh"], ("unknown agency vpdk-tinhh", "close codes: vpdk-tinh")),
    Bad("inbox-bad-limit", ["inbox", "vpdk-tinh", "--limit", "0"], ("argument --limit: expected a whole number >= 1",),
        code=2),
    # ---- settings
    Bad("db-url-unsupported", ["inbox", "vpdk-tinh"],
        ("bad LIENTHONG_DATABASE_URL: unsupported database 'mysql://lt:***@db/lt'", "sqlite:///FILE or postgresql://"),
        env={"LIENTHONG_DATABASE_URL": "mysql://lt:mat-khau@db/lt"}),
    Bad("db-url-missing-folder", ["db", "upgrade"],
        ("bad LIENTHONG_DATABASE_URL: database sqlite:///{tmp}/khong-co/lt.db: the folder {tmp}/khong-co does not exist",),
        env={"LIENTHONG_DATABASE_URL": "sqlite:///{tmp}/khong-co/lt.db"}),
    Bad("db-url-unparseable", ["definitions", "list"], ("database error: Could not parse SQLAlchemy URL",),
        env={"LIENTHONG_DATABASE_URL": "khong phai url"}),
    Bad("db-not-migrated", submit(), ("is at revision none, not", "run `lienthong db upgrade`"),
        env={"LIENTHONG_DATABASE_URL": "sqlite:///{tmp}/trong.db"}),
    Bad("bad-boolean-setting", ["definitions", "list"], ("bad setting log_json", "valid boolean"),
        env={"LIENTHONG_LOG_JSON": "co le"}),
    Bad("temporal-unreachable", ["dossiers", "show", "HS-CLI-1"], (f"cannot reach Temporal at {CLOSED}",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_with_one_clear_line_and_nothing_changed(case: Bad, registry_url: str, definitions: Path,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    def fill(text: str) -> str:
        return text.replace("{tmp}", str(tmp_path))

    env = {"LIENTHONG_DATABASE_URL": registry_url, "LIENTHONG_DEFINITIONS": str(definitions),
           "TEMPORAL_ADDRESS": CLOSED, "LIENTHONG_LOG_JSON": "false"} | {k: fill(v) for k, v in case.env.items()}
    before = table_rows(registry_url)
    files_before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli(monkeypatch, capsys, [fill(a) for a in case.args], env)
    assert result.code == case.code, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err + result.out, result.err
    for words in case.words:
        assert fill(words) in lines[0], lines[0]
    assert "internal error" not in lines[0]
    assert "mat-khau" not in result.err + result.out  # a password is never shown
    for expected in case.stdout:
        assert any(fill(expected) in line for line in result.out.splitlines()), result.out
    assert table_rows(registry_url) == before
    if case.id != "db-not-migrated":  # SQLite creates the (empty) file it was pointed at
        assert sorted(p.name for p in tmp_path.iterdir()) == files_before


def test_the_console_script_gives_the_same_lines(registry_url: str, definitions: Path, tmp_path: Path) -> None:
    """The real entry point (`main()`, which leaves through os._exit) for a few cases."""
    env = cli_env(CLOSED, registry_url, definitions) | {"LIENTHONG_LOG_JSON": "false"}
    for args, code, words in (
        (submit(data='{"commune": "xa-ba"}'), 1, "which is not a registered agency"),
        (submit("--channel", "fax"), 2, "invalid choice: 'fax'"),
        (["calendars", "apply", "--calendar", "lich-am"], 1, "unknown calendar 'lich-am'"),
        (["dossiers", "resubmit", "HS-CLI-1", "--agency", "bpmc-xa-xa-mot", "--note", LONG_TEXT], 2, f"at most {MAX_NOTE_CHARS} (MAX_NOTE_CHARS)"),
    ):
        result = subprocess.run([str(LIENTHONG), *args], capture_output=True, text=True, env=env, cwd=REPO,
                                timeout=120, check=False)
        assert result.returncode == code, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in result.stderr, result.stderr
    unsupported = subprocess.run([str(LIENTHONG), "db", "upgrade"], capture_output=True, text=True, cwd=REPO,
                                 env=env | {"LIENTHONG_DATABASE_URL": "mysql://lt:mat-khau@db/lt"}, timeout=120,
                                 check=False)
    assert unsupported.returncode == 1
    assert unsupported.stderr.startswith("bad LIENTHONG_DATABASE_URL: unsupported database 'mysql://lt:***@db/lt'")


# --------------------------------------------------------------------------- with a real dev stack


@pytest.fixture(scope="module")
def stack(definitions: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """`lienthong dev` on the corpus catalog, its metrics ports off (other stacks may hold them)."""
    running = start_dev_stack(tmp_path_factory.mktemp("cli-bad-dev"), definitions, exporter_port="off",
                              worker_metrics_port="off", sdk_metrics_port="off")
    try:
        yield running
    finally:
        running.stop()


def test_changes_to_a_dossier_refused_by_the_workflow_change_nothing(stack: DevStack) -> None:
    cli = StackCli(stack)
    dossier = "HS-CLI-BAD-1"
    cli.ok(*submit(dossier=dossier))
    state = cli.until(dossier, lambda s: s["steps"][0]["status"] == "assigned", "tiep-nhan assigned")
    before = (json.dumps(state, sort_keys=True), table_counts(stack.database_url))
    refusals = [
        (["dossiers", "complete", dossier, "tiep-nhan", "--agency", "vpdk-tinh"],
         ("refused:", "tiep-nhan", "bpmc-xa-xa-mot", "vpdk-tinh")),
        (["dossiers", "complete", dossier, "khong-co", "--agency", "bpmc-xa-xa-mot"], ("refused:", "khong-co")),
        (["dossiers", "complete", dossier, "tra-ket-qua", "--agency", "bpmc-xa-xa-mot"],
         ("refused:", "tra-ket-qua", "not current")),
        (["dossiers", "complete", dossier, "tiep-nhan", "--agency", "bpmc-xa-xa-mot", "--outcome", "supplement"],
         ("refused:", "note")),
        (["dossiers", "resubmit", dossier, "--agency", "bpmc-xa-xa-mot"], ("refused:", "not waiting")),
        (["dossiers", "resubmit", dossier, "--agency", "vpdk-tinh"], ("refused:", "vpdk-tinh has no part in")),
        (["dossiers", "complete", "HS-CLI-KHONG-CO", "tiep-nhan", "--agency", "bpmc-xa-xa-mot"],
         ("unknown dossier HS-CLI-KHONG-CO",)),
        (["dossiers", "show", "HS-CLI-KHONG-CO"], ("unknown dossier HS-CLI-KHONG-CO",)),
        (submit(dossier=dossier), (f"dossier {dossier} already exists",)),
    ]
    for args, words in refusals:
        line = cli.refused(*args)
        for word in words:
            assert word in line, f"lienthong {' '.join(args)}: {line}"
        assert "internal error" not in line
    after = (json.dumps(cli.state(dossier), sort_keys=True), table_counts(stack.database_url))
    assert after == before
