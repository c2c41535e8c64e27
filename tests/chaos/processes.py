"""The real parts the chaos test breaks, each a process of its own that it can stop,
kill and start again: a PostgreSQL cluster, the Temporal dev server with its history
in a file, `lienthong worker` and `lienthong gateway`.

Every start, stop and kill is logged (logger `chaos`, also printed with `-s`), and
every process writes to a log file that the test dumps when it fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from tests.processes import free_port, stop_process
from tests.support.codec import TEST_CONVERTER
from tests.support.environment import lienthong_env
from workers.dev import DevOptions, _die_with_parent, server_command

REPO = Path(__file__).resolve().parents[2]
LIENTHONG = Path(sys.executable).parent / "lienthong"
log = logging.getLogger("chaos")


def say(message: str) -> None:
    """A line in the test's output (with -s) and in the log: faults are found by `CHAOS`."""
    line = f"CHAOS {time.strftime('%H:%M:%S')} {message}"
    print(line, flush=True)
    log.warning(line)


def tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as err:
        return f"(no log {path}: {err})"


# ----------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """initdb/pg_ctl as scripts/ensure-postgres.sh finds them (Debian keeps them off PATH,
    one folder per major version: the newest), else from PATH."""
    folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                     if p.parent.name.isdigit() else 0)
    for folder in reversed(folders):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    raise RuntimeError("the chaos test needs PostgreSQL's initdb and pg_ctl: run scripts/ensure-postgres.sh "
                       "(as root it installs them) or apt-get install postgresql")


@dataclass
class PostgresCluster:
    """A cluster of the test's own in a /tmp folder, on a free port. As root (CI) it runs
    as the `postgres` user, like scripts/ensure-postgres.sh: the server refuses root."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lienthong-chaos-pg-")))
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.bin = postgres_bin()
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            if subprocess.run(["id", "postgres"], capture_output=True, check=False).returncode != 0:
                subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                                "/usr/sbin/nologin", "postgres"], check=True)
            shutil.chown(self.folder, "postgres", "postgres")
        self.folder.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = list(command)
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
                               f"\n{tail(self.log, 3000)}")
        return result

    def create(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-locale")
        # Only TCP from this machine; sockets in our own folder (not /var/run/postgresql).
        self._run("sh", "-c", f"printf 'host all all 127.0.0.1/32 trust\\n' > {self.data}/pg_hba.conf")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
                        "-c max_connections=200", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                log.warning("could not stop PostgreSQL in %s: %s", self.folder, err)
        shutil.rmtree(self.folder, ignore_errors=True)


# ----------------------------------------------------------------------------- Temporal


@dataclass
class TemporalServer:
    """`temporal server start-dev --db-filename FILE`: a restart on the same file and
    port finds every workflow where it was."""

    db_file: Path
    log: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = server_command(DevOptions(port=self.port, ui_port=self.ui_port, db_file=self.db_file),
                                 "default") + ["--headless"]
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=_die_with_parent)  # noqa: PLW1509 (no orphan if the test is killed)

    async def ready(self, seconds: float = 120) -> Client:
        """A client once the frontend answers and the namespace exists (bounded)."""
        assert self.process is not None
        give_up = time.monotonic() + seconds
        last = "no answer yet"
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited with {self.process.returncode}:\n"
                                   f"{tail(self.log)}")
            try:
                client = await Client.connect(self.address, data_converter=TEST_CONVERTER)
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
                return client
            except Exception as err:  # noqa: BLE001 (not up yet)
                last = str(err).splitlines()[0] if str(err) else type(err).__name__
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the Temporal dev server did not answer at {self.address} in {seconds:.0f}s: {last}")

    def stop(self) -> int | None:
        if self.process is None:
            return None
        stop_process(self.process, sig=signal.SIGTERM)
        return self.process.returncode


# ----------------------------------------------------------------------------- lienthong


@dataclass
class Lienthong:
    """A `lienthong` subprocess (worker or gateway), appending to one log file across restarts."""

    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as sink:
            sink.write(f"\n===== start #{self.starts}: lienthong {' '.join(self.args)} =====\n".encode())
            sink.flush()
            self.process = subprocess.Popen([str(LIENTHONG), *self.args], env=self.env, stdout=sink,
                                            stderr=subprocess.STDOUT, cwd=REPO,
                                            preexec_fn=_die_with_parent)  # noqa: PLW1509 (no orphan if the test is killed)
        say(f"started lienthong {self.args[0]} (pid {self.process.pid})")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> int:
        assert self.process is not None
        pid = self.process.pid
        self.process.send_signal(signal.SIGKILL)
        code = self.process.wait(30)
        say(f"SIGKILLed lienthong {self.args[0]} (pid {pid}, exit {code})")
        return code

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, sig=signal.SIGTERM)

    def output(self) -> str:
        return tail(self.log)


def chaos_env(address: str, database_url: str, task_queue: str) -> dict[str, str]:
    return lienthong_env(database_url, address=address, task_queue=task_queue, log_json="false",
                         worker_metrics_port="off", sdk_metrics_port="off")


async def gateway_ready(gateway: Lienthong, seconds: float = 120) -> str:
    """The URL the gateway printed once it answers /healthz (bounded)."""
    give_up = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < give_up:
            if not gateway.alive():
                raise RuntimeError(f"lienthong gateway exited:\n{gateway.output()}")
            printed = re.findall(r"gateway listening on (http://\S+) ", tail(gateway.log, 100_000))
            if printed:
                try:
                    if (await http.get(f"{printed[-1]}/healthz")).status_code == 200:
                        return printed[-1]
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"the gateway never answered:\n{gateway.output()}")
