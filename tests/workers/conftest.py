"""Running the real `lienthong` console script, and a real `lienthong dev` stack.

Every run gets a database of its own (`LIENTHONG_DATABASE_URL`): the repository's
default SQLite file is never touched by the tests. In-process tests use `Cli`
(`run()` with the environment of a migrated database); the PostgreSQL variants come
from the `db_url` fixture of tests/conftest.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from tests.processes import free_port, stop_process  # noqa: F401 (used by the tests here)
from tests.support.dev_stack import DevStack, start_dev_stack  # noqa: F401 (used by the tests here)
from tests.support.environment import lienthong_env
from workers.cli import run

LIENTHONG = Path(sys.executable).parent / "lienthong"
REPO = Path(__file__).resolve().parents[2]
DEFINITIONS = REPO / "definitions"


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def cli_env(address: str | None = None, database_url: str | None = None,
            definitions: Path | None = None) -> dict[str, str]:
    return lienthong_env(database_url, definitions, address)


def lienthong(*args: str, address: str | None = None, timeout: float = 60, database_url: str | None = None,
              definitions: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LIENTHONG), *args], capture_output=True, text=True,
                          env=cli_env(address, database_url, definitions), timeout=timeout, cwd=REPO)


def copy_definitions(target: Path, *, procedures: bool = True) -> Path:
    """A definitions folder of one's own: the shipped registries and calendars (and
    procedures unless told not to), to edit in a test."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("agencies.yaml", "sectors.yaml"):
        shutil.copy(DEFINITIONS / name, target / name)
    shutil.copytree(DEFINITIONS / "calendars", target / "calendars")
    if procedures:
        shutil.copytree(DEFINITIONS / "procedures", target / "procedures")
    else:
        (target / "procedures").mkdir()
    return target


# ----------------------------------------------------------------------------- in-process CLI


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    def line(self) -> str:
        """The one-line refusal on stderr."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in self.err, self.err
        return lines[0]


@dataclass
class Cli:
    """`lienthong` in this process, on one migrated database and one definitions folder."""

    url: str
    definitions: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    _sessions: list[sessionmaker[Session]] = field(default_factory=list)

    def __call__(self, *args: str) -> CliRun:
        self.monkeypatch.setenv("LIENTHONG_DATABASE_URL", self.url)
        self.monkeypatch.setenv("LIENTHONG_DEFINITIONS", str(self.definitions))
        self.capsys.readouterr()
        code = run(list(args))
        captured = self.capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.code == 0, f"lienthong {' '.join(args)} -> {result.code}: {result.err}"
        return result.out

    def refused(self, *args: str) -> str:
        result = self(*args)
        assert result.code == 1, f"lienthong {' '.join(args)} was not refused: {result.out}"
        return result.line()

    def sessions(self) -> sessionmaker[Session]:
        if not self._sessions:
            self._sessions.append(make_session_factory(make_engine(self.url)))
        return self._sessions[0]

    def close(self) -> None:
        for factory in self._sessions:
            factory.kw["bind"].dispose()


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """A migrated, empty database (SQLite and PostgreSQL) and a copy of the shipped definitions."""
    upgrade(db_url)
    runner = Cli(db_url, copy_definitions(tmp_path / "definitions"), monkeypatch, capsys)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def sqlite_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """The same on SQLite only, for tests that are about the CLI rather than the database."""
    url = f"sqlite:///{tmp_path / 'lienthong.db'}"
    upgrade(url)
    runner = Cli(url, copy_definitions(tmp_path / "definitions"), monkeypatch, capsys)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    stack = start_dev_stack(tmp_path_factory.mktemp("dev"))
    try:
        yield stack
    finally:
        stack.stop()


class StackCli:
    """`lienthong` subprocesses against a running dev stack: `ok`/`refused` check
    the exit code, and that a refusal is one line without a traceback."""


    def __init__(self, stack: DevStack) -> None:
        self.stack = stack

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.stack.lienthong(*args)

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
