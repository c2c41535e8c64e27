"""Group commit (store/group_commit.py): writes that wait together share a transaction,
each caller gets its own result, and a failing write fails alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import projection
from store.group_commit import GroupWriter
from tests.store.builders import make_routing, make_state, make_write
from workflows.payloads import DossierEvent, StoreWrite


class HeldWriter:
    """A GroupWriter whose first write waits until released, so that the writes
    submitted meanwhile queue up and go together in the next transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self._first = True
        self.writer: GroupWriter[StoreWrite, list[DossierEvent]] = GroupWriter(
            sessions, self._apply, key=lambda write: write.state.dossier_id)

    def _apply(self, session: Session, write: StoreWrite) -> list[DossierEvent]:
        if self._first:
            self._first = False
            self.started.set()
            assert self.release.wait(30)
        return projection.write_changes(session, write)


def queued_behind_first(held: HeldWriter, first: StoreWrite, others: list[StoreWrite]) -> list[object]:
    """Submit `first`, then `others` while it is held; returns each one's result or error."""
    with ThreadPoolExecutor(max_workers=len(others) + 1) as pool:
        futures = [pool.submit(held.writer.submit, first)]
        assert held.started.wait(30)
        futures += [pool.submit(held.writer.submit, write) for write in others]
        while len(held.writer._queue) < len(others):  # all of them wait for the next transaction
            threading.Event().wait(0.01)
        held.release.set()
        results: list[object] = []
        for future in futures:
            try:
                results.append(future.result(30))
            except Exception as err:  # noqa: BLE001 (the point of the test)
                results.append(err)
    return results


def dossier_write(n: int) -> StoreWrite:
    dossier_id = f"HS-GC-{n:03d}"
    return make_write(make_state(dossier_id, progress=1), 2, "step_assigned", [make_routing(dossier_id)])


def test_writes_waiting_together_share_one_transaction(sessions):
    held = HeldWriter(sessions)
    writes = [dossier_write(n) for n in range(8)]
    results = queued_behind_first(held, writes[0], writes[1:])
    assert [[e.seq for e in r] for r in results] == [[2]] * 8  # type: ignore[union-attr]
    assert (held.writer.transactions, held.writer.writes, held.writer.fallbacks) == (2, 8, 0)
    with sessions() as session:
        for write in writes:
            assert projection.last_seq(session, write.state.dossier_id) == 2


def test_a_failing_write_fails_alone(sessions):
    held = HeldWriter(sessions)
    good = [dossier_write(n) for n in range(4)]
    bad = dossier_write(99)
    bad.events[0].dossier_id = "HS-SOMEONE-ELSE"  # refused by projection.write_changes
    results = queued_behind_first(held, good[0], [good[1], bad, good[2], good[3]])
    assert isinstance(results[2], ValueError)
    assert [[e.seq for e in r] for i, r in enumerate(results) if i != 2] == [[2]] * 4  # type: ignore[union-attr]
    assert held.writer.fallbacks == 1
    with sessions() as session:
        assert [projection.last_seq(session, w.state.dossier_id) for w in good] == [2] * 4
        assert projection.last_seq(session, bad.state.dossier_id) is None


def test_a_repeated_write_in_one_batch_is_new_once(sessions):
    held = HeldWriter(sessions)
    first, again = dossier_write(1), dossier_write(2)
    results = queued_behind_first(held, first, [again, again.model_copy(deep=True)])
    assert [[e.seq for e in r] for r in results] == [[2], [2], []]  # type: ignore[union-attr]
    with sessions() as session:
        assert [e.seq for e in projection.list_events(session, again.state.dossier_id)] == [2]


@pytest.mark.parametrize("threads", [16])
def test_concurrent_dossiers_all_land_in_order(sessions, threads):
    writer: GroupWriter[StoreWrite, list[DossierEvent]] = GroupWriter(
        sessions, projection.write_changes, key=lambda write: write.state.dossier_id)

    def dossier(n: int) -> None:
        dossier_id = f"HS-GC-C{n:03d}"
        writer.submit(make_write(make_state(dossier_id, progress=1), 2, "step_assigned",
                                 [make_routing(dossier_id)]))
        writer.submit(make_write(make_state(dossier_id, progress=2), 3, "step_completed",
                                 [make_routing(dossier_id, reason="withdrawn")]))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(dossier, range(40)))
    assert writer.writes == 80 and writer.fallbacks == 0
    with sessions() as session:
        for n in range(40):
            dossier_id = f"HS-GC-C{n:03d}"
            assert projection.last_seq(session, dossier_id) == 3
            assert [e.seq for e in projection.list_events(session, dossier_id)] == [2, 3]
