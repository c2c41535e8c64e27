"""Scrape latency of the exporter against a store with many open dossiers (a benchmark,
not a test).

    .venv/bin/python -m monitoring.bench_scrape [--backends postgresql,sqlite]
        [--sizes 10000,100000,1000000] [--scrapes 5] [--reads 5] [--budget 900] [--pg-url URL] [--plans]
        [--no-analyze]

For each backend: a fresh database (PostgreSQL: a new database on ``--pg-url``, default
``$LIENTHONG_TEST_POSTGRES_URL`` or the server ``scripts/ensure-postgres.sh`` starts;
SQLite: a file in a temporary folder), migrated, with the shipped definitions deployed.
Open dossiers are bulk-inserted (PostgreSQL: COPY; SQLite: executemany in one
transaction) up to each size in turn, each with a realistic ~2 KB ``state`` document,
one step held by an agency and two others (done / pending); then statistics are
refreshed (PostgreSQL ``VACUUM ANALYZE``, SQLite ``ANALYZE`` unless ``--no-analyze``).

At each size: ``--reads`` store reads (``read_gauges`` as a scrape makes it, timed
directly: what a read costs the database); then a new exporter, whose first scrape
reads the store during the request (timed: "first scrape"), and ``--scrapes`` timed
HTTP scrapes of ``/metrics``, each after any background read the previous one started
has finished (as when Prometheus scrapes every 30 s). Once a read takes over the
exporter's budget (0.25 s) a scrape serves the previous read; the table shows how old
the numbers served were. The load average is printed at each size: the machine may
be shared.

Distribution: 13 sectors × 3 levels, 60 procedure codes, 28 agencies; 85% processing,
15% awaiting a supplement; due instants uniform in now ± 10 days (about half passed);
5% flagged overdue. A size is skipped once ``--budget`` seconds have gone by.
Prints a Markdown table (and the query plans) for monitoring/BENCHMARK.md. Imports
only the store, definitions and payload models (no test or worker code).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from definitions.loader import load_catalog, load_procedure
from monitoring.collector import StoreCollector, consistent_read, read_gauges
from monitoring.exporter import serve
from store import registry
from store.db import database_url, make_engine, make_session_factory
from store.migrate import upgrade
from workflows.payloads import DossierState, StepState, StepStatus

REPO = Path(__file__).resolve().parents[1]
SECTORS = ["G15-TP07", "G15-TP05", "G15-TP10", "G13-TN01", "G13-TN03", "G05-KD10", "G05-KD11", "G09-XD05",
           "G07-CA02", "G12-BH01", "G06-TC03", "G10-LD04", "G11-CT02"]
LEVELS = ["tinh", "xa", "trung-uong"]
PROCEDURES = [f"1.{n:06d}" for n in range(60)]
AGENCIES = [f"agency-{n:02d}" for n in range(28)]
DOSSIER_COLUMNS = ["id", "procedure_code", "procedure_version", "procedure_name", "sector", "level", "calendar",
                   "channel", "status", "portal_status", "received_at", "clock_started_at", "due_at",
                   "original_due_at", "completed_at", "verdict", "overdue", "supplement_count",
                   "current_agencies", "last_seq", "state", "updated_at"]
STEP_COLUMNS = ["dossier_id", "step_id", "position", "name", "agency", "status", "assigned_at", "due_at",
                "original_due_at", "completed_at", "verdict", "overdue", "escalations", "extensions"]


def state_document() -> str:
    """A real DossierState of three steps, the first done and the second held (about
    2 KB), the same text for every row."""
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    steps = [
        StepState(id="tiep-nhan", name="Tiếp nhận hồ sơ", deadline="0.5d", agency="bpmc-xa-xa-tan-lap",
                  status=StepStatus.COMPLETED, assigned_at=t0, due_at=t0 + timedelta(hours=4),
                  original_due_at=t0 + timedelta(hours=4), completed_at=t0 + timedelta(hours=3), verdict="on_time"),
        StepState(id="tham-dinh", name="Thẩm định hồ sơ", deadline="0.5d", agency="vpdk-tinh",
                  status=StepStatus.ASSIGNED, assigned_at=t0 + timedelta(hours=4), due_at=t0 + timedelta(hours=8),
                  original_due_at=t0 + timedelta(hours=8), overdue=True, escalations=1),
        StepState(id="tra-ket-qua", name="Trả kết quả", deadline="0.5d"),
    ]
    return DossierState(
        dossier_id="HS-2026-000001", procedure_code="1.012756", procedure_version=1,
        procedure_name="Đăng ký đất đai, tài sản gắn liền với đất lần đầu", content_hash="0" * 64,
        sector="G13-TN01", level="xa", calendar="vn-gov", channel="in_person", received_at=t0,
        clock_started_at=t0, due_at=t0 + timedelta(days=20), original_due_at=t0 + timedelta(days=20),
        overdue=True, steps=steps,
    ).model_dump_json()


def deploy_shipped(sessions: sessionmaker[Session], root: Path) -> None:
    """The shipped registries and procedures, as `lienthong deploy definitions` writes them."""
    now = datetime.now(UTC)
    catalog = load_catalog(root)
    with sessions.begin() as session:
        registry.sync_registries(session, catalog, now)
        for path in sorted((root / "procedures").glob("*.yaml")):
            body = path.read_bytes().decode("utf-8")
            registry.deploy(session, load_procedure(path, catalog), body, "bench", now)


def rows(start: int, stop: int, now: datetime, state: str, rng: random.Random):  # type: ignore[no-untyped-def]
    for n in range(start, stop):
        index = n % len(PROCEDURES)  # a procedure belongs to one sector and level
        procedure, sector, level = PROCEDURES[index], SECTORS[index % len(SECTORS)], LEVELS[index % len(LEVELS)]
        status = "awaiting_supplement" if rng.random() < 0.15 else "processing"
        received = now - timedelta(days=rng.uniform(1, 30))
        due = now + timedelta(seconds=rng.uniform(-10, 10) * 86400)
        overdue = rng.random() < 0.05
        dossier_id = f"HS-BENCH-{n:08d}"
        agency = AGENCIES[n % len(AGENCIES)]
        dossier = (dossier_id, procedure, 1, "Thủ tục", sector, level, "vn-gov", "online", status,
                   5 if status == "awaiting_supplement" else 4, received, received, due, due, None, None, overdue,
                   int(status == "awaiting_supplement"), json.dumps([agency]), 3, state, now)
        steps = [
            (dossier_id, "tiep-nhan", 0, "Tiếp nhận", AGENCIES[(n + 1) % len(AGENCIES)], "completed", received,
             received + timedelta(hours=4), received + timedelta(hours=4), received + timedelta(hours=2),
             "on_time", False, 0, 0),
            (dossier_id, "tham-dinh", 1, "Thẩm định", agency, "assigned", received, due - timedelta(days=1),
             due - timedelta(days=1), None, None, overdue, 0, 0),
            (dossier_id, "tra-ket-qua", 2, "Trả kết quả", None, "pending", None, None, None, None, None, False, 0, 0),
        ]
        yield dossier, steps


# ----------------------------------------------------------------------------- loading


def load_postgresql(engine: Engine, start: int, stop: int, now: datetime, state: str, rng: random.Random) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        batch = 50_000
        for low in range(start, stop, batch):
            dossiers: list[tuple[Any, ...]] = []
            steps: list[tuple[Any, ...]] = []
            for dossier, dossier_steps in rows(low, min(stop, low + batch), now, state, rng):
                dossiers.append(dossier)
                steps.extend(dossier_steps)
            with cursor.copy(f"COPY dossiers ({', '.join(DOSSIER_COLUMNS)}) FROM STDIN") as copy:
                for row in dossiers:
                    copy.write_row(row)
            with cursor.copy(f"COPY dossier_steps ({', '.join(STEP_COLUMNS)}) FROM STDIN") as copy:
                for row in steps:
                    copy.write_row(row)
            raw.commit()
    finally:
        raw.close()


def load_sqlite(engine: Engine, start: int, stop: int, now: datetime, state: str, rng: random.Random) -> None:
    def iso(value: Any) -> Any:  # store.types.UTCDateTime on SQLite: naive UTC text
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        return value

    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        batch = 50_000
        for low in range(start, stop, batch):
            dossiers: list[tuple[Any, ...]] = []
            steps: list[tuple[Any, ...]] = []
            for dossier, dossier_steps in rows(low, min(stop, low + batch), now, state, rng):
                dossiers.append(tuple(iso(v) for v in dossier))
                steps.extend(tuple(iso(v) for v in s) for s in dossier_steps)
            cursor.executemany(f"INSERT INTO dossiers ({', '.join(DOSSIER_COLUMNS)}) VALUES "
                               f"({', '.join('?' * len(DOSSIER_COLUMNS))})", dossiers)
            cursor.executemany(f"INSERT INTO dossier_steps ({', '.join(STEP_COLUMNS)}) VALUES "
                               f"({', '.join('?' * len(STEP_COLUMNS))})", steps)
            raw.commit()
    finally:
        raw.close()


def refresh_statistics(engine: Engine, sqlite_analyze: bool = True) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE dossiers"))
            conn.execute(text("VACUUM ANALYZE dossier_steps"))
    elif sqlite_analyze:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


# ----------------------------------------------------------------------------- measuring


def store_reads(sessions: sessionmaker[Session], reads: int) -> list[float]:
    """Seconds of ``reads`` store reads, each in its own session as a scrape makes it."""
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        with sessions() as session:
            consistent_read(session)
            read_gauges(session)
        times.append(time.perf_counter() - started)
    return times


@dataclass
class Scrapes:
    first: float  # seconds: a new exporter's first scrape (it reads the store during the request)
    times: list[float]  # seconds of the timed scrapes
    ages: list[float]  # lienthong_exporter_store_age_seconds they served
    series: int  # lienthong_ samples (not the exporter's own)


def scrape_times(sessions: sessionmaker[Session], scrapes: int) -> Scrapes:
    collector = StoreCollector(sessions)
    registry = CollectorRegistry()
    registry.register(collector)
    server = serve(registry, "127.0.0.1", 0)
    try:
        started = time.perf_counter()
        urllib.request.urlopen(server.url, timeout=600).read()
        first = time.perf_counter() - started
        times, ages, body = [], [], b""
        for _ in range(scrapes):
            if not collector.settle(600):
                raise RuntimeError("a background read took over 600 s")
            started = time.perf_counter()
            body = urllib.request.urlopen(server.url, timeout=600).read()
            times.append(time.perf_counter() - started)
            lines = body.decode().splitlines()
            ages.append(next(float(line.split()[-1]) for line in lines
                             if line.startswith("lienthong_exporter_store_age_seconds ")))
        collector.settle(600)
    finally:
        server.stop()
    series = sum(1 for line in body.decode().splitlines() if line.startswith("lienthong_") and "exporter" not in line)
    return Scrapes(first, times, ages, series)


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def query_plans(engine: Engine, now: datetime) -> list[str]:
    """The plan of each scrape query, as the database chose it at this size."""
    from sqlalchemy import event

    from monitoring import collector

    captured: list[tuple[str, dict]] = []  # type: ignore[type-arg]

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with make_session_factory(engine)() as session:
            collector.read_gauges(session, now)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET jit = off")  # as consistent_read sets it
        for statement, parameters in captured[2:]:  # the two registry look-ups are tiny
            if engine.dialect.name == "postgresql":
                lines = conn.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + statement, parameters)
            else:
                lines = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.append("\n".join(" ".join(str(c) for c in row if c is not None) for row in lines))
    return plans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--reads", type=int, default=5, help="store reads timed directly at each size")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds; later sizes are skipped after it")
    parser.add_argument("--pg-url", help="a PostgreSQL server URL (default: the one scripts/ensure-postgres.sh starts)")
    parser.add_argument("--plans", action="store_true", help="print the query plans at each size")
    parser.add_argument("--no-analyze", action="store_true",
                        help="SQLite without statistics, as a store migrated empty stays unless ANALYZE is run")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    began = time.monotonic()
    state = state_document()
    rng = random.Random(766)
    results: list[str] = []
    plans: dict[str, list[str]] = {}
    print(f"# bench_scrape: sizes {sizes}, {args.scrapes} scrapes and {args.reads} reads each, "
          f"budget {args.budget:.0f}s, load {load()}", flush=True)
    for backend in args.backends.split(","):
        folder = Path(tempfile.mkdtemp(prefix="lienthong-bench-"))
        admin = None
        if backend == "postgresql":
            server = args.pg_url or subprocess.run(["bash", str(REPO / "scripts" / "ensure-postgres.sh")],
                                                   capture_output=True, text=True, check=True).stdout.split()[-1]
            server = database_url(server)
            name = f"lt_bench_{secrets.token_hex(4)}"
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(server).set(database=name).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{folder / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url, pool_size=2)
        sessions = make_session_factory(engine)
        deploy_shipped(sessions, REPO / "definitions")
        loaded = 0
        now = datetime.now(UTC)
        try:
            for size in sizes:
                if time.monotonic() - began > args.budget:
                    results.append(f"| {backend} | {size:,} | skipped: budget of {args.budget:.0f}s spent "
                                   "| | | | | | | | |")
                    print(results[-1], flush=True)
                    continue
                started = time.perf_counter()
                (load_postgresql if backend == "postgresql" else load_sqlite)(engine, loaded, size, now, state, rng)
                refresh_statistics(engine, sqlite_analyze=not args.no_analyze)
                load_seconds = time.perf_counter() - started
                loaded = size
                load_before = load()
                reads = store_reads(sessions, args.reads)
                measured = scrape_times(sessions, args.scrapes)
                ms = [t * 1000 for t in measured.times]
                row = (f"| {backend} | {size:,} | {statistics.median(ms):,.0f} | {min(ms):,.0f} | {max(ms):,.0f} | "
                       f"{measured.first * 1000:,.0f} | {statistics.median(reads) * 1000:,.0f} "
                       f"({min(reads) * 1000:,.0f}–{max(reads) * 1000:,.0f}) | "
                       f"{statistics.median(measured.ages):,.2f} | {measured.series} | {load_seconds:,.0f} | "
                       f"{load_before} → {load()} |")
                results.append(row)
                print(row, flush=True)
                if args.plans:
                    plans[f"{backend} at {size:,}"] = query_plans(engine, now)
        finally:
            engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)  # the SQLite file: 4.7 GB at 1 M
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    print()
    print("| backend | open dossiers | scrape median ms | min ms | max ms | first scrape ms | "
          "store read median ms (min–max) | age served s (median) | lienthong_ series | insert + analyze s | "
          "load 1/5/15 min |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in results:
        print(row)
    for where, found in plans.items():
        print(f"\n## plans, {where}\n")
        for plan in found:
            print("```\n" + plan + "\n```")
    print(f"\ntotal {time.monotonic() - began:,.0f}s, load {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
