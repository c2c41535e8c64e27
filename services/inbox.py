"""An agency's inbox as both front ends answer it: one page of open steps, most urgent
first. `lienthong inbox AGENCY --json` prints an `InboxPage`; `GET /v1/inbox` answers
with one (instants in UTC, services/instants.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from services.instants import UtcInstant
from store import inbox


class InboxEntry(BaseModel):
    dossier_id: str
    procedure: str = Field(description="code@version")
    procedure_code: str
    sector: str
    step_id: str
    step_name: str
    assigned_at: UtcInstant
    due_at: UtcInstant
    overdue: bool = Field(description="the due had passed when the page was read")
    received_by: str | None = Field(default=None, description="the one-stop desk that received the dossier "
                                    "(anywhere in the province for some procedures: Decree 118/2025 Art. 14)")


class AwaitingReceiptEntry(BaseModel):
    """A dossier submitted online to your desk, waiting for you to receive or refuse it."""

    dossier_id: str
    procedure: str = Field(description="code@version")
    procedure_name: str
    sector: str
    channel: str
    submitted_at: UtcInstant


class InboxPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "agency": "vpdk-tinh", "at": "2026-05-27T02:00:00Z", "limit": 50, "offset": 0, "next_offset": None,
        "items": [{"dossier_id": "HS-2026-000123", "procedure": "1.012756@1", "procedure_code": "1.012756",
                   "sector": "G13-TN01", "step_id": "tham-dinh", "step_name": "Thẩm định hồ sơ",
                   "assigned_at": "2026-05-26T02:00:00Z", "due_at": "2026-06-02T02:00:00Z", "overdue": False,
                   "received_by": "bpmc-xa-xa-tan-lap"}],
        "awaiting_receipt": [],
    }]})

    agency: str
    at: UtcInstant = Field(description="when the page was read (what `overdue` is judged against)")
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last page")
    items: list[InboxEntry] = Field(description="open steps, most urgent (earliest due) first")
    awaiting_receipt: list[AwaitingReceiptEntry] = Field(
        default_factory=list, description="for a one-stop desk: dossiers submitted online to it and not received "
        "or refused yet (portal status 1), longest waiting first, at most `limit`; the same on every page")


def read_page(session: Session, agency: str, limit: int, offset: int, now: datetime) -> InboxPage:
    """One page of `agency`'s inbox as read at `now` (the agency is not checked here)."""
    # One more than asked: whether a next page exists without counting the whole inbox.
    items = inbox.list_items(session, agency, limit + 1, offset, now=now)
    entries = [InboxEntry(dossier_id=i.dossier_id, procedure=f"{i.procedure_code}@{i.procedure_version}",
                          procedure_code=i.procedure_code, sector=i.sector, step_id=i.step_id,
                          step_name=i.step_name, assigned_at=i.assigned_at, due_at=i.due_at, overdue=i.overdue,
                          received_by=i.received_by)
               for i in items[:limit]]
    waiting = [AwaitingReceiptEntry(dossier_id=w.dossier_id, procedure=f"{w.procedure_code}@{w.procedure_version}",
                                    procedure_name=w.procedure_name, sector=w.sector, channel=w.channel,
                                    submitted_at=w.submitted_at)
               for w in inbox.list_awaiting_receipt(session, agency, limit)]
    return InboxPage(agency=agency, at=now, limit=limit, offset=offset,
                     next_offset=offset + limit if len(items) > limit else None, items=entries,
                     awaiting_receipt=waiting)
