"""Printable documents of the one-stop mechanism (Circular 03/2025/TT-VPCP, Appendix I):
the forms of one dossier (receipt slip, supplement request, refusal, apology, stop
notice, process-control sheet) and a desk's tracking book, as HTML that prints on A4
and as PDF. Both front ends call `dossier_form` and `tracking_book`; what each form
reads is in services/documents/fields.py and content.py, the templates in templates/.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import Settings
from definitions.limits import MAX_BOOK_ENTRIES
from definitions.schema import Procedure
from services.documents import content
from services.documents.content import BookLine, Known, NotApplicable, Printing
from services.documents.editions import EDITIONS, Edition, FormKind, UnknownForm, resolve
from services.documents.fields import read_fields
from services.documents.render import LOCAL_TZ, FormTemplateError, environment, render_html, to_pdf
from services.dossiers import DossierClient, Found
from store import projection, receipt_book, registry
from store.models import AgencyRow

__all__ = ["BookError", "Document", "FormKind", "FormTemplateError", "NotApplicable", "Options", "UnknownForm",
           "dossier_form", "form_kind", "tracking_book"]

DATA_READS = 8  # dossiers' data read from Temporal at once for a book


class BookError(ValueError):
    """A book that cannot be printed as asked (an unknown desk, a period too long)."""


@dataclass(frozen=True)
class Options:
    """The settings documents are printed with."""

    edition: Edition
    templates: Path | None = None
    authority: str | None = None
    place: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Options:
        return cls(EDITIONS[settings.forms_edition], settings.forms_templates, settings.forms_authority or None,
                   settings.forms_place or None)

    @property
    def printing(self) -> Printing:
        return Printing(self.edition, self.authority, self.place)


@dataclass
class Document:
    kind: FormKind
    number: str | None  # in the edition in use; None for a kind it does not number
    html: str
    name: str  # a file name without its extension, e.g. mau-01-HS-2026-000123
    warnings: list[str] = field(default_factory=list)

    def pdf(self) -> bytes:
        return to_pdf(self.html)


def form_kind(options: Options, form: str) -> FormKind:
    """`--form` / the route's `{form}`: a number of the edition in use, or a kind's name."""
    return resolve(options.edition, form)


def _file_name(kind: FormKind, number: str | None, what: str) -> str:
    return f"mau-{number}-{what}" if number else f"{kind.value}-{what}"


# ----------------------------------------------------------------------------- one dossier


async def dossier_form(dossiers: DossierClient, found: Found, kind: FormKind, options: Options,
                       now: datetime | None = None) -> Document:
    """The form `kind` of the dossier `found` (already checked visible to the caller).
    NotApplicable when the form does not apply to it; FormTemplateError for a template
    that cannot be rendered."""
    state = found.state
    reason = content.not_applicable(kind, state, options.edition)
    if reason is not None:
        raise NotApplicable(reason)
    data, missing = await dossiers.data(state.dossier_id)
    numbered = kind in (FormKind.RECEIPT, FormKind.APOLOGY, FormKind.STOP_NOTICE, FormKind.CONTROL_SHEET)

    def from_store() -> tuple[Procedure | None, dict[str, str], receipt_book.Entry | None]:
        entry = receipt_book.number(dossiers.sessions, state.dossier_id) if numbered else None
        with dossiers.sessions() as session:
            return _procedure(session, state.procedure_code, state.procedure_version), _agencies(session), entry

    procedure, agencies, entry = await asyncio.to_thread(from_store)
    known = Known(state=state, source=found.source, desk=state.received_by or found.received_by, data=data,
                  procedure=procedure, agencies=agencies, entry=entry, data_missing=missing)
    context = content.build(kind, known, options.printing, now or datetime.now(UTC))
    html = render_html(environment(options.edition, options.templates), kind.template, context.variables())
    warnings = list(context.applicant.warnings)
    if numbered and entry is None:
        warnings.append("the store shows no receipt of this dossier by a desk yet: the receipt book's volume and "
                        "number are left blank")
    return Document(kind, context.number, html, _file_name(kind, context.number, state.dossier_id), warnings)


def _procedure(session: Session, code: str, version: int) -> Procedure | None:
    row = registry.get_definition(session, code, version)
    return registry.snapshot_of(row).procedure if row is not None else None


def _agencies(session: Session) -> dict[str, str]:
    return {code: name for code, name in session.execute(select(AgencyRow.code, AgencyRow.name))}


# ----------------------------------------------------------------------------- a desk's book


def day_bounds(first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """[first day 00:00, the day after the last 00:00) in Vietnam time, as UTC instants."""
    start = datetime.combine(first_day, time(), LOCAL_TZ)
    end = datetime.combine(last_day + timedelta(days=1), time(), LOCAL_TZ)
    return start.astimezone(UTC), end.astimezone(UTC)


async def tracking_book(dossiers: DossierClient, desk: str, first_day: date, last_day: date, options: Options,
                        now: datetime | None = None) -> Document:
    """The desk's tracking book for the dossiers it received from `first_day` to `last_day`
    (Vietnam dates, both included), numbered as store/receipt_book.py says."""
    if last_day < first_day:
        raise BookError(f"--to {last_day.isoformat()} is before --from {first_day.isoformat()}")
    start, end = day_bounds(first_day, last_day)
    sessions = dossiers.sessions

    def from_store() -> tuple[str | None, dict[str, str], list[receipt_book.Entry], dict[str, Any]]:
        with sessions() as session:
            agencies = _agencies(session)
            if desk not in agencies:
                raise BookError(f"unknown agency {desk!r}: not in the deployed registry (agencies.yaml)")
            received = receipt_book.count_received(session, desk, start, end)
        if received > MAX_BOOK_ENTRIES:
            raise BookError(f"{desk} received {received} dossiers from {first_day.isoformat()} to "
                            f"{last_day.isoformat()}; a book holds at most {MAX_BOOK_ENTRIES} (MAX_BOOK_ENTRIES): "
                            "print a shorter period")
        entries = receipt_book.book(sessions, desk, start, end)
        with sessions() as session:
            states = {e.dossier_id: projection.get_dossier(session, e.dossier_id) for e in entries}
        return agencies.get(desk), agencies, entries, states

    desk_name, agencies, entries, states = await asyncio.to_thread(from_store)
    limit = asyncio.Semaphore(DATA_READS)

    async def applicant(dossier_id: str) -> str | None:
        async with limit:
            data, _ = await dossiers.data(dossier_id)
        return read_fields(data).name

    names = await asyncio.gather(*(applicant(e.dossier_id) for e in entries))
    lines = [BookLine(e, states.get(e.dossier_id), name) for e, name in zip(entries, names)]
    variables = content.build_book(desk, desk_name, first_day, last_day, lines, agencies, options.printing,
                                   now or datetime.now(UTC))
    kind = FormKind.TRACKING_BOOK
    html = render_html(environment(options.edition, options.templates), kind.template, variables)
    number = options.edition.number_of(kind)
    what = f"{desk}-{first_day.isoformat()}-{last_day.isoformat()}"
    return Document(kind, number, html, _file_name(kind, number, what))
