"""The one dev-stack harness: `lienthong dev` (Temporal dev server from its wheel, the
worker, the gateway and the metrics in one process) on free ports, with a database
and a definitions folder of its own, as `make run` starts it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from services import tokens
from store.db import make_engine, make_session_factory
from tests.processes import free_port
from tests.support.environment import DEFINITIONS, REPO, lienthong_env

LIENTHONG = Path(sys.executable).parent / "lienthong"
READY_WAIT = 120.0  # seconds; the stack is usually up within a few


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    port: int
    ui_port: int
    log: Path
    database_url: str
    definitions: Path
    url: str = ""  # the gateway's, as `lienthong dev` printed it
    _sessions: list[sessionmaker[Session]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a `lienthong` command needs to talk to this stack."""
        return lienthong_env(self.database_url, self.definitions, self.address, log_json="false",
                             log_level="WARNING")

    def lienthong(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The CLI against this stack: its Temporal, its database, its definitions."""
        return subprocess.run([str(LIENTHONG), *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                              env=self.env(), check=False)

    def sessions(self) -> sessionmaker[Session]:
        if not self._sessions:
            self._sessions.append(make_session_factory(make_engine(self.database_url)))
        return self._sessions[0]

    def token(self, agency: str, role: str = tokens.AGENCY) -> str:
        with self.sessions().begin() as session:
            return tokens.issue(session, agency, "tests", datetime.now(UTC), role).token

    def output(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        for factory in self._sessions:
            factory.kw["bind"].dispose()
        self._sessions.clear()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_dev_stack(folder: Path, definitions: Path = DEFINITIONS, database_url: str | None = None,
                    args: Sequence[str] = (), **settings: str) -> DevStack:
    """`lienthong dev` with a database of its own (default a SQLite file in `folder`, the
    dev server's state beside it); it migrates it and deploys `definitions` before it
    starts. Returns once the gateway it printed answers /healthz (store and Temporal
    reachable). `args`: more `lienthong dev` options; `settings`: LIENTHONG_<NAME>
    values, e.g. `public_burst="3"`."""
    port, ui_port = free_port(), free_port()
    log = folder / "dev.log"
    database_url = database_url or f"sqlite:///{folder / 'lienthong.db'}"
    env = lienthong_env(database_url, definitions, **({"log_json": "false"} | settings))
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(LIENTHONG), "dev", "--port", str(port), "--ui-port", str(ui_port), "--gateway-port", "0", *args],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    stack = DevStack(process, port, ui_port, log, database_url, definitions)
    try:
        give_up = time.monotonic() + READY_WAIT
        while time.monotonic() < give_up:
            if process.poll() is not None:
                raise RuntimeError(f"lienthong dev exited with {process.returncode}:\n{stack.output()}")
            found = re.search(r"^gateway: +(http://\S+) ", log.read_text(errors="replace"), re.MULTILINE)
            if found:
                stack.url = found.group(1)
                try:
                    if httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200:
                        return stack
                except httpx.HTTPError:
                    pass
            time.sleep(0.25)
        raise RuntimeError(f"lienthong dev never answered:\n{stack.output()}")
    except BaseException:
        stack.stop()
        raise
