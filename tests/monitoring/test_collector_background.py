"""Slow store reads: a scrape serves the last read, with its age, and reads again in the
background, one read at a time; quick reads are still made during the scrape."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from monitoring.collector import StoreCollector
from store import projection
from store.db import make_engine, make_session_factory
from tests.monitoring.builders import NOW, dossier
from workflows.payloads import DossierState

OVERDUE = ("lienthong_dossiers_overdue", (("level", "xa"), ("sector", "G13-TN01")))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Sessions:
    """A session factory the test can break, slow down and count calls to."""

    def __init__(self, good: sessionmaker[Session], bad: sessionmaker[Session]) -> None:
        self.good, self.bad = good, bad
        self.broken = False
        self.opened = 0
        self.gate: threading.Event | None = None  # when set, reads wait for it

    def __call__(self) -> AbstractContextManager[Session]:
        self.opened += 1
        if self.gate is not None:
            self.gate.wait(30)
        return (self.bad if self.broken else self.good)()


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in registry.collect() for s in f.samples}


def late(dossier_id: str) -> DossierState:
    return dossier(dossier_id, due=-timedelta(hours=1))


def project(sessions: sessionmaker[Session], *states: DossierState) -> None:
    with sessions.begin() as session:
        for state in states:
            projection.apply_state(session, state, 1, now=NOW)


@contextmanager
def collector(store: sessionmaker[Session], tmp_path: Path, budget: float
              ) -> Iterator[tuple[StoreCollector, CollectorRegistry, Sessions, Clock]]:
    """A collector on its own registry, over `store` (or a file that is not a database
    while `sessions.broken`), with a clock the test moves."""
    not_a_database = tmp_path / "broken.db"
    not_a_database.write_bytes(b"this is not an SQLite file\n" * 100)
    engine = make_engine(f"sqlite:///{not_a_database}")
    sessions, clock = Sessions(store, make_session_factory(engine)), Clock()
    store_collector = StoreCollector(sessions, clock, budget=budget)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    registry.register(store_collector)
    try:
        yield store_collector, registry, sessions, clock
    finally:
        if sessions.gate is not None:
            sessions.gate.set()
        assert store_collector.settle(30)
        engine.dispose()


def test_quick_reads_are_made_during_the_scrape(store: sessionmaker[Session], tmp_path: Path) -> None:
    with collector(store, tmp_path, budget=60) as (c, registry, sessions, clock):
        project(store, late("A"))
        assert scrape(registry)[OVERDUE] == 1
        project(store, late("B"))
        clock.now += timedelta(seconds=30)
        first = scrape(registry)
        assert first[OVERDUE] == 2  # read by this scrape
        assert first[("lienthong_exporter_store_age_seconds", ())] == 0
        assert sessions.opened == 2 and c.settle(0)  # nothing in the background


def test_slow_reads_are_served_from_the_background_with_their_age(store: sessionmaker[Session],
                                                                 tmp_path: Path) -> None:
    with collector(store, tmp_path, budget=0) as (c, registry, sessions, clock):  # every read is "slow"
        project(store, late("A"))
        first = scrape(registry)  # nothing read yet: read now
        assert first[OVERDUE] == 1 and first[("lienthong_exporter_store_age_seconds", ())] == 0
        assert sessions.opened == 1

        project(store, late("B"))
        clock.now += timedelta(seconds=30)
        second = scrape(registry)  # the first read again, 30 s old; a read starts behind it
        assert second[OVERDUE] == 1
        assert second[("lienthong_exporter_store_age_seconds", ())] == 30
        assert second[("lienthong_exporter_store_up", ())] == 1
        assert c.settle(30) and sessions.opened == 2

        clock.now += timedelta(seconds=30)
        third = scrape(registry)  # the read started by the second scrape
        assert third[OVERDUE] == 2
        assert third[("lienthong_exporter_store_age_seconds", ())] == 30
        assert c.settle(30) and sessions.opened == 3


def test_one_background_read_at_a_time(store: sessionmaker[Session], tmp_path: Path) -> None:
    with collector(store, tmp_path, budget=0) as (c, registry, sessions, _):
        scrape(registry)
        sessions.gate = threading.Event()  # the next read hangs until the gate opens
        for _ in range(5):
            assert scrape(registry)[("lienthong_exporter_store_up", ())] == 1
        assert not c.settle(0.2)
        sessions.gate.set()
        assert c.settle(30)
        assert sessions.opened == 2  # the first scrape's read and a single background one


def test_a_failed_background_read_is_reported_then_the_scrape_reads_itself(store: sessionmaker[Session],
                                                                          tmp_path: Path) -> None:
    errors = ("lienthong_exporter_collect_errors_total", ())
    up = ("lienthong_exporter_store_up", ())
    with collector(store, tmp_path, budget=0) as (c, registry, sessions, _):
        project(store, late("A"))
        assert scrape(registry)[up] == 1
        sessions.broken = True
        served = scrape(registry)  # the last read; the one behind it fails
        assert served[up] == 1 and served[OVERDUE] == 1
        assert c.settle(30)
        failed = scrape(registry)  # the failure is served: no store families, and this scrape read (failed) too
        assert failed[up] == 0 and failed[errors] == 2
        assert OVERDUE not in failed and ("lienthong_exporter_store_age_seconds", ()) not in failed
        assert sessions.opened == 3 and c.settle(0)
        sessions.broken = False
        back = scrape(registry)  # read during the scrape again, until a read is slow
        assert back[up] == 1 and back[OVERDUE] == 1 and back[errors] == 2
        assert sessions.opened == 4


def test_the_exporter_reads_during_the_scrape_by_default(store: sessionmaker[Session]) -> None:
    """build_registry's collector: a small store is read by each scrape (the age is the
    read's own duration, here 0 on a stopped clock)."""
    from monitoring.exporter import build_registry

    registry = build_registry(store, clock=lambda: NOW, process=False)
    project(store, late("A"))
    assert scrape(registry)[OVERDUE] == 1
    project(store, late("B"))
    values = scrape(registry)
    assert values[OVERDUE] == 2 and values[("lienthong_exporter_store_age_seconds", ())] == 0
