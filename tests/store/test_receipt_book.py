"""The receipt book's numbers (store/receipt_book.py, migration 0009): per desk and per
year, in the audit log's order of receipt, given once and never changed, on both
databases."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store import receipt_book
from store.models import ReceiptBookRow
from store.projection import write_changes
from tests.store.builders import HCM, T0, make_state
from workflows.payloads import DossierEvent, StoreWrite

DESK = "bpmc-xa-xa-tan-lap"
OTHER_DESK = "bpmc-tinh"


def receive(sessions: sessionmaker[Session], dossier_id: str, at: datetime, desk: str | None = DESK) -> None:
    """The store write of a dossier's receipt, as the workflow makes it."""
    state = make_state(dossier_id).model_copy(update={"received_at": at, "last_event_seq": 1})
    event = DossierEvent(dossier_id=dossier_id, seq=1, kind="received", at=at, actor=desk or "applicant",
                         note="channel in_person")
    with sessions.begin() as session:
        write_changes(session, StoreWrite(events=[event], state=state))


def numbers(sessions: sessionmaker[Session]) -> dict[str, tuple[str, int, int]]:
    with sessions() as session:
        return {row.dossier_id: (row.desk, row.volume, row.number) for row in session.scalars(select(ReceiptBookRow))}


def test_numbers_follow_receipt_per_desk_and_year_and_never_change(deployed_sessions: sessionmaker[Session]) -> None:
    sessions = deployed_sessions
    receive(sessions, "HS-C", T0 + timedelta(hours=2))
    receive(sessions, "HS-A", T0)
    receive(sessions, "HS-B", T0)  # the same instant as HS-A: the dossier id decides
    receive(sessions, "HS-P", T0 + timedelta(hours=1), desk=OTHER_DESK)
    # 31 December 23:30 in Vietnam is still the year before (16:30 UTC), 1 January 00:30 is not.
    receive(sessions, "HS-OLD", datetime(2025, 12, 31, 23, 30, tzinfo=HCM))
    receive(sessions, "HS-NEW", datetime(2026, 1, 1, 0, 30, tzinfo=HCM))
    receive(sessions, "HS-ONLINE", T0, desk=None)  # no desk named: no book

    # The slip of HS-C numbers those received before it at its desk, in order, first.
    entry = receipt_book.number(sessions, "HS-C")
    assert entry is not None and (entry.desk, entry.volume, entry.number) == (DESK, 2026, 4)
    assert numbers(sessions) == {"HS-NEW": (DESK, 2026, 1), "HS-A": (DESK, 2026, 2), "HS-B": (DESK, 2026, 3),
                                 "HS-C": (DESK, 2026, 4)}
    assert receipt_book.number(sessions, "HS-OLD").number == 1  # type: ignore[union-attr]
    assert receipt_book.number(sessions, "HS-P").number == 1  # type: ignore[union-attr]
    assert receipt_book.number(sessions, "HS-ONLINE") is None
    assert receipt_book.number(sessions, "HS-UNKNOWN") is None

    # A receipt back-dated before numbered ones takes the next free number; nothing moves.
    before = numbers(sessions)
    receive(sessions, "HS-LATE-ENTRY", T0 - timedelta(days=1))
    assert receipt_book.number(sessions, "HS-LATE-ENTRY").number == 5  # type: ignore[union-attr]
    assert receipt_book.number(sessions, "HS-C").number == 4  # type: ignore[union-attr]
    assert {k: v for k, v in numbers(sessions).items() if k in before} == before


def test_the_book_numbers_everything_received_and_lists_a_period(deployed_sessions: sessionmaker[Session]) -> None:
    sessions = deployed_sessions
    for day in range(5):
        receive(sessions, f"HS-{day}", T0 + timedelta(days=day))
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=3)
    listed = receipt_book.book(sessions, DESK, start, end)
    assert [(e.dossier_id, e.number) for e in listed] == [("HS-1", 2), ("HS-2", 3)]
    assert len(numbers(sessions)) == 5  # the whole year so far is numbered, in order
    assert receipt_book.book(sessions, DESK, start, end) == listed  # again: the same
    with sessions() as session:
        assert receipt_book.count_received(session, DESK, start, end) == 2
    assert receipt_book.book(sessions, OTHER_DESK, start, end) == []
