"""Group commit: concurrent store writes of one worker share one transaction.

Each of a worker's `write_changes` local activities ran its own transaction: on
SQLite one commit (a WAL sync) per write and, with the activity threads queueing
for SQLite's single write lock, waits in SQLite's busy handler, which sleeps
(1, 2, 5 … 100 ms) rather than queues. A `GroupWriter` is one thread per worker
that takes every write queued at the moment it is free, applies them in order in
one transaction and commits once; each caller blocks until the transaction holding
its write has committed (or failed), then gets its own result.

What a caller sees does not change:

* its write is durable when `submit` returns, and not before;
* a write is applied by the same function, in the same order relative to the other
  writes of its dossier (they are queued in arrival order, and a dossier's writes
  arrive one after the other: the workflow waits for one before the next);
* a write that fails fails alone: when the batch's transaction fails, every write
  of the batch is applied again in a transaction of its own, and each caller gets
  its own result or error (the failing one is retried by Temporal as before). The
  writes are idempotent (store/projection.py), so nothing applied twice counts twice.

Within a batch the writes are ordered by dossier id (stable: one dossier's writes keep
their order), so that two workers' batches take PostgreSQL's dossier row locks in
the same order and cannot deadlock each other.

The thread starts with the first write and stops after `idle_s` without one.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

import structlog
from sqlalchemy.orm import Session, sessionmaker

log = structlog.get_logger("lienthong.store")

W = TypeVar("W")
R = TypeVar("R")

MAX_BATCH = 64  # writes per transaction at most
IDLE_S = 5.0  # the writer thread stops after this long without a write


class GroupWriter(Generic[W, R]):
    """Applies `apply(session, write)` for writes submitted from any thread, batching
    the ones that wait at the same time into one transaction."""

    def __init__(self, sessions: sessionmaker[Session], apply: Callable[[Session, W], R],
                 key: Callable[[W], str], *, max_batch: int = MAX_BATCH, idle_s: float = IDLE_S,
                 name: str = "store-writer") -> None:
        self._sessions = sessions
        self._apply = apply
        self._key = key
        self._max_batch = max_batch
        self._idle_s = idle_s
        self._name = name
        self._queue: deque[tuple[W, Future[R]]] = deque()
        self._ready = threading.Condition()
        self._running = False
        # Figures for tests and diagnostics: transactions committed, writes in them,
        # batches that failed and were applied again one write at a time.
        self.transactions = 0
        self.writes = 0
        self.fallbacks = 0

    def submit(self, write: W) -> R:
        """Apply `write` in the next transaction; returns once it has committed."""
        future: Future[R] = Future()
        with self._ready:
            self._queue.append((write, future))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name=self._name, daemon=True).start()
            else:
                self._ready.notify()
        return future.result()

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._queue:
                    self._ready.wait(self._idle_s)
                if not self._queue:
                    self._running = False  # submit() starts another thread for the next write
                    return
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            try:
                self._commit(batch)
            except BaseException as err:  # never leave a caller waiting
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)

    def _commit(self, batch: list[tuple[W, Future[R]]]) -> None:
        if len(batch) > 1:
            batch.sort(key=lambda item: self._key(item[0]))  # stable: a dossier's writes keep their order
            try:
                with self._sessions.begin() as session:
                    results = [self._apply(session, write) for write, _ in batch]
            except Exception as err:
                # One write may be the cause: each goes again on its own, and fails alone.
                self.fallbacks += 1
                log.warning("group_commit_failed", writes=len(batch), error=f"{type(err).__name__}: {err}"[:300])
            else:
                self.transactions += 1
                self.writes += len(batch)
                for (_, future), result in zip(batch, results):
                    future.set_result(result)
                return
        for write, future in batch:
            try:
                with self._sessions.begin() as session:
                    result = self._apply(session, write)
            except Exception as err:
                future.set_exception(err)
            else:
                self.transactions += 1
                self.writes += 1
                future.set_result(result)
