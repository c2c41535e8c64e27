"""The receipt book (sổ theo dõi hồ sơ): each received dossier's volume and number, for
the receipt slip (Mẫu 01, "Quyển số / Số thứ tự") and the book itself (Mẫu 07).

One sequence per receiving desk and per year of receipt (Vietnam time); the volume is
the year. A number is given the first time a slip or the book needs it and is never
changed after (migration 0009). When one is given, every dossier the same desk received
earlier that year and not yet numbered is numbered first, in the audit log's order of
receipt ("received" events of that desk ordered by (at, dossier id)): numbers follow
the order of receipt, except for a receipt back-dated before dossiers already numbered,
which takes the next free number, as a line written later into a paper book does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store.models import AgencyRow, DossierEventRow, ReceiptBookRow

RECEIVED = "received"  # the audit-log kind whose actor is the receiving desk
BOOK_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # a volume is a calendar year where the desk is
ATTEMPTS = 5  # two desks' clerks numbering at once: the loser retries on the new maximum
T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    desk: str
    volume: int
    number: int
    dossier_id: str
    received_at: datetime


def volume_of(at: datetime) -> int:
    return at.astimezone(BOOK_TZ).year


def year_bounds(volume: int) -> tuple[datetime, datetime]:
    """The UTC instants a volume runs from (inclusive) and to (exclusive)."""
    return (datetime(volume, 1, 1, tzinfo=BOOK_TZ).astimezone(UTC),
            datetime(volume + 1, 1, 1, tzinfo=BOOK_TZ).astimezone(UTC))


def _entry(row: ReceiptBookRow) -> Entry:
    return Entry(row.desk, row.volume, row.number, row.dossier_id, row.received_at)


def entry_of(session: Session, dossier_id: str) -> Entry | None:
    row = session.scalars(select(ReceiptBookRow).where(ReceiptBookRow.dossier_id == dossier_id)).first()
    return None if row is None else _entry(row)


def receipt_of(session: Session, dossier_id: str) -> tuple[str, datetime] | None:
    """The desk that received the dossier and when, from the audit log; None when the
    store has no receipt by a registered agency (not received yet, refused at the desk,
    received with no desk named, or not written yet)."""
    row = session.execute(
        select(DossierEventRow.actor, DossierEventRow.at)
        .join(AgencyRow, AgencyRow.code == DossierEventRow.actor)
        .where(DossierEventRow.dossier_id == dossier_id, DossierEventRow.kind == RECEIVED)
        .order_by(DossierEventRow.seq).limit(1)).first()
    return None if row is None else (row[0], row[1])


def assign(session: Session, desk: str, volume: int, *, through: tuple[datetime, str] | None = None,
           now: datetime | None = None) -> int:
    """Number the dossiers `desk` received in `volume` that have no number yet, in order of
    receipt, up to `through` (an (at, dossier id) pair, inclusive) or all of them. Returns
    how many were numbered."""
    start, end = year_bounds(volume)
    first = func.min(DossierEventRow.at)
    numbered = select(ReceiptBookRow.dossier_id)
    waiting = session.execute(
        select(DossierEventRow.dossier_id, first)
        .where(DossierEventRow.kind == RECEIVED, DossierEventRow.actor == desk,
               DossierEventRow.at >= start, DossierEventRow.at < end,
               DossierEventRow.dossier_id.not_in(numbered))
        .group_by(DossierEventRow.dossier_id)).all()
    order = sorted((at, dossier_id) for dossier_id, at in waiting)
    if through is not None:
        order = [pair for pair in order if pair <= through]
    if not order:
        return 0
    last = session.scalar(select(func.max(ReceiptBookRow.number))
                          .where(ReceiptBookRow.desk == desk, ReceiptBookRow.volume == volume)) or 0
    stamp = now or datetime.now(UTC)
    session.execute(insert(ReceiptBookRow), [
        {"desk": desk, "volume": volume, "number": last + index, "dossier_id": dossier_id, "received_at": at,
         "assigned_at": stamp}
        for index, (at, dossier_id) in enumerate(order, 1)])
    return len(order)


def number(sessions: sessionmaker[Session], dossier_id: str) -> Entry | None:
    """The dossier's entry, given now if it has none; None when the store shows no receipt
    by a desk (see `receipt_of`)."""

    def give(session: Session) -> Entry | None:
        found = entry_of(session, dossier_id)
        if found is not None:
            return found
        receipt = receipt_of(session, dossier_id)
        if receipt is None:
            return None
        desk, at = receipt
        assign(session, desk, volume_of(at), through=(at, dossier_id))
        return entry_of(session, dossier_id)

    return _retrying(sessions, give)


def book(sessions: sessionmaker[Session], desk: str, start: datetime, end: datetime) -> list[Entry]:
    """The desk's entries for dossiers received in [start, end), by volume and number; every
    dossier it received in those years and not numbered yet is numbered first."""

    def read(session: Session) -> list[Entry]:
        for volume in range(volume_of(start), volume_of(end - timedelta(microseconds=1)) + 1):
            assign(session, desk, volume)
        rows = session.scalars(
            select(ReceiptBookRow)
            .where(ReceiptBookRow.desk == desk, ReceiptBookRow.received_at >= start, ReceiptBookRow.received_at < end)
            .order_by(ReceiptBookRow.volume, ReceiptBookRow.number)).all()
        return [_entry(row) for row in rows]

    return _retrying(sessions, read)


def count_received(session: Session, desk: str, start: datetime, end: datetime) -> int:
    """How many dossiers `desk` received in [start, end) (a bound is checked on it first)."""
    return session.scalar(
        select(func.count(func.distinct(DossierEventRow.dossier_id)))
        .where(DossierEventRow.kind == RECEIVED, DossierEventRow.actor == desk,
               DossierEventRow.at >= start, DossierEventRow.at < end)) or 0


def _retrying(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    for attempt in range(ATTEMPTS):
        try:
            with sessions.begin() as session:
                return work(session)
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
