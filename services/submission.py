"""Turning an operator's submission into a `DossierInput`, or refusing it with a reason.

Everything that can be checked before a dossier exists is checked here, so the
workflow never starts with a procedure, agency, sector or calendar it cannot use
(DESIGN: "an unknown procedure, agency, sector or calendar is refused at submission").

Procedures and agencies are looked up in a :class:`Registry`. In production that is
:class:`StoreRegistry`: the definition registry and the agencies/sectors tables that
`lienthong definitions deploy` fills, so a dossier is only ever started on a
deployed ``code@version`` and routed to agencies the running system knows. A file
path is accepted too (an operator trying a draft): it is validated against the
definitions folder first. No Temporal here.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from definitions.calendar import WorkingCalendar, available_calendars, load_calendar
from definitions.limits import (
    MAX_DATA_BYTES,
    MAX_DATA_DEPTH,
    MAX_JSON_INTEGER,
    MAX_PROCEDURE_JSON_BYTES,
)
from definitions.loader import DefinitionError, load_catalog, load_procedure, looks_like_path
from definitions.schema import COMMUNE_FIELD, ProcedureSnapshot, Step, UnknownAgencyError, resolve_agency
from store import deliveries, registry
from store.models import AgencyRow, SectorRow
from workflows.payloads import DOSSIER_ID_PATTERN, DOSSIER_ID_RULE, Channel, DossierInput

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
CHANNELS: tuple[Channel, ...] = ("in_person", "online", "postal")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DOSSIER_ID = re.compile(DOSSIER_ID_PATTERN)  # workflows.payloads.DossierId: URLs and workflow ids


class SubmissionError(ValueError):
    """A submission that cannot become a dossier; the message says why, on one line."""


def local_today() -> date:
    """Which procedure version is in effect is decided by the date in Vietnam."""
    return datetime.now(LOCAL_TZ).date()


# ----------------------------------------------------------------------------- where things are looked up


class Desks(Protocol):
    """What the registry says of agencies and one-stop desks (submission, and a desk's
    receipt or refusal of a dossier)."""

    def is_agency(self, code: str) -> bool:
        """A registered agency that is not retired."""
        ...

    def is_retired(self, code: str) -> bool: ...

    def receiving_scope(self, code: str) -> Mapping[str, Any] | None:
        """A desk's scope: `levels`, `communes` (None: any) and `procedures` it receives
        anywhere (the province-wide list); None when it has none."""
        ...

    def agency_codes(self) -> Collection[str]:
        """Every known agency code (for suggestions in refusals)."""
        ...

    def receiving_desks(self) -> Collection[str]:
        """The agencies that take submissions (one-stop desks)."""
        ...


class Registry(Desks, Protocol):
    """What submission needs to know about procedures and agencies."""

    def procedure(self, code: str, version: int | None, today: date) -> ProcedureSnapshot:
        """``code@version``, or the newest version in effect ``today`` when ``version``
        is None; raises `SubmissionError` saying why there is none."""
        ...

    def draft(self, path: Path) -> ProcedureSnapshot:
        """A procedure file that is not deployed, validated; raises `SubmissionError`."""
        ...

    def webhook_agencies(self, codes: Collection[str]) -> list[str]:
        """Which of `codes` have a webhook to notify."""
        ...

    def calendar(self, name: str) -> WorkingCalendar: ...

    def is_sector(self, code: str) -> bool: ...

    def sector_codes(self) -> Collection[str]: ...

    def calendars(self) -> Collection[str]:
        """The calendars the workers can compute dues on."""
        ...


class StoreDesks:
    """Agencies and desks as the database knows them (`lienthong definitions deploy`)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._codes: list[str] | None = None

    def is_agency(self, code: str) -> bool:
        return registry.known_agency(self._session, code)

    def is_retired(self, code: str) -> bool:
        return registry.retired_agency(self._session, code) is not None

    def receiving_scope(self, code: str) -> Mapping[str, Any] | None:
        row = self._session.get(AgencyRow, code)
        return row.receives if row is not None and row.receives_dossiers else None

    def agency_codes(self) -> list[str]:
        if self._codes is None:
            self._codes = list(self._session.scalars(select(AgencyRow.code).order_by(AgencyRow.code)))
        return self._codes

    def receiving_desks(self) -> list[str]:
        query = (select(AgencyRow.code).where(AgencyRow.receives_dossiers.is_(True), AgencyRow.retired_at.is_(None))
                 .order_by(AgencyRow.code))
        return list(self._session.scalars(query))


class StoreRegistry(StoreDesks):
    """The registry in the database (filled by `lienthong definitions deploy`), plus
    the definitions folder for drafts and calendars."""

    def __init__(self, session: Session, definitions: Path) -> None:
        super().__init__(session)
        self._definitions = Path(definitions)

    def procedure(self, code: str, version: int | None, today: date) -> ProcedureSnapshot:
        if version is not None:
            row = registry.get_definition(self._session, code, version)
            if row is None:
                raise SubmissionError(self._missing(code, f"procedure {code} has no deployed version {version}"))
            return registry.snapshot_of(row)
        row = registry.effective_definition(self._session, code, today)
        if row is None:
            deployed = self._deployed(code)
            if not deployed:
                raise SubmissionError(self._missing(code, f"procedure {code} is not deployed"))
            upcoming = ", ".join(f"v{r.version} from {r.effective_from}" for r in deployed)
            raise SubmissionError(f"procedure {code} has no deployed version in effect on {today} ({upcoming})")
        return registry.snapshot_of(row)

    def draft(self, path: Path) -> ProcedureSnapshot:
        if not path.is_file():
            raise SubmissionError(f"no procedure file {path}")
        try:
            return load_procedure(path, load_catalog(self._definitions))
        except DefinitionError as err:
            # One line: the count and the first problem; `definitions validate` lists them all.
            first = err.problems[0] if err.problems else "?"
            raise SubmissionError(f"{len(err.problems)} problem(s), first: {first} "
                                  f"(run `lienthong definitions validate {path}`)") from err

    def webhook_agencies(self, codes: Collection[str]) -> list[str]:
        return deliveries.agencies_with_webhooks(self._session, codes)

    def calendar(self, name: str) -> WorkingCalendar:
        return load_calendar(name, self._definitions)

    def is_sector(self, code: str) -> bool:
        return self._session.get(SectorRow, code) is not None

    def sector_codes(self) -> list[str]:
        return list(self._session.scalars(select(SectorRow.code).order_by(SectorRow.code)))

    def calendars(self) -> list[str]:
        return available_calendars(self._definitions)

    def _deployed(self, code: str) -> list[Any]:
        return [row for row in registry.list_definitions(self._session) if row.code == code]

    def _missing(self, code: str, what: str) -> str:
        deployed = self._deployed(code)
        if deployed:
            return f"{what}: deployed versions are {', '.join(str(r.version) for r in deployed)}"
        codes = sorted({row.code for row in registry.list_definitions(self._session)})
        close = difflib.get_close_matches(code, codes, n=3, cutoff=0.6)
        hint = f" (close codes: {', '.join(close)})" if close else ""
        return f"{what}{hint}: run `lienthong definitions deploy`"


# ----------------------------------------------------------------------------- the checks


def prepare_dossier(
    ref: str,
    dossier_id: str,
    data: str | Mapping[str, Any],
    lookup: Registry,
    today: date,
    channel: str = "in_person",
    received_at: datetime | str | None = None,
    received_by: str | None = None,
    *,
    await_receipt: bool | None = None,
    result_desk: str | None = None,
    now: datetime | None = None,
    max_receipt_age: timedelta | None = None,
) -> DossierInput:
    """The start input for a dossier, or `SubmissionError` naming what is wrong.

    ``ref`` is ``CODE`` (the newest deployed version in effect ``today``),
    ``CODE@VERSION`` (exactly that deployed version) or a procedure file path (a draft).
    A dossier that waits for receipt (online by default, or `await_receipt`) is
    addressed to the desk ``received_by``, which receives or refuses it; ``received_at``
    is then when it was submitted. ``result_desk`` is where the applicant collects the
    result (default: the receiving desk)."""
    if not DOSSIER_ID.match(dossier_id):
        raise SubmissionError(f"dossier id {dossier_id!r}: expected {DOSSIER_ID_RULE}")
    now = now or datetime.now(LOCAL_TZ)
    # Received now unless the desk says when: the due is then known before the workflow
    # starts (its search attributes carry it from the start).
    received = _received_at(received_at, now, max_receipt_age or get_settings().receipt_max_age) or now
    if received_at is not None:  # the version in effect on the day it was received
        today = received.astimezone(LOCAL_TZ).date()
    snapshot = _procedure(ref, lookup, today)
    size = len(snapshot.model_dump_json().encode())
    if size > MAX_PROCEDURE_JSON_BYTES:
        raise SubmissionError(f"procedure {snapshot.ref} is {size} bytes as JSON; a dossier's workflow input holds "
                              f"at most {MAX_PROCEDURE_JSON_BYTES} (MAX_PROCEDURE_JSON_BYTES): shorten its names")
    fields = _data_object(data)
    _check_registries(snapshot, lookup)
    _check_agencies(snapshot, fields, lookup)
    if channel not in CHANNELS:
        raise SubmissionError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    if received_by is None and channel == "online":
        raise SubmissionError("an online dossier names the one-stop desk it is addressed to (--received-by): "
                              "that desk receives it or refuses it (Decree 118/2025 Art. 14)")
    if received_by is None and await_receipt:
        raise SubmissionError("a dossier checked before receipt (--await-receipt) names the desk that receives "
                              "it (--received-by)")
    _check_receiving_desk(received_by, lookup)
    _check_receiving_scope(received_by, snapshot, fields, lookup)
    if result_desk is not None:  # the applicant's choice (Art. 14): any one-stop desk in service
        _check_receiving_desk(result_desk, lookup, "--result-desk")
    # The calendar travels resolved (the workflow computes dues without I/O), and so
    # does which of the dossier's agencies have a webhook (no lookup per hand-over).
    calendar = lookup.calendar(snapshot.procedure.calendar).snapshot(received)
    webhooks = lookup.webhook_agencies(dossier_agencies(snapshot, fields))
    try:
        return DossierInput(dossier_id=dossier_id, snapshot=snapshot, data=fields, channel=channel,
                            received_at=received, received_by=received_by, await_receipt=await_receipt,
                            result_desk=result_desk, calendar=calendar, webhook_agencies=webhooks)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SubmissionError(f"{where}: {first['msg']}") from err


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``CODE`` or ``CODE@VERSION`` → (code, version or None)."""
    code, at, version_text = ref.strip().partition("@")
    if not code:
        raise SubmissionError(f"procedure {ref!r}: expected CODE, CODE@VERSION or a file path")
    if not at:
        return code, None
    if not version_text.isdigit() or int(version_text) < 1:
        raise SubmissionError(f"procedure {ref!r}: the version after @ must be a whole number >= 1")
    return code, int(version_text)


def _procedure(ref: str, lookup: Registry, today: date) -> ProcedureSnapshot:
    if looks_like_path(ref):
        return lookup.draft(Path(ref))
    code, version = parse_ref(ref)
    return lookup.procedure(code, version, today)


def _data_object(data: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as err:
            raise SubmissionError(f"--data is not valid JSON: {err}") from err
        except RecursionError as err:  # hundreds of levels: too deep for the parser itself
            raise SubmissionError(f"dossier data nests too deep to read; at most {MAX_DATA_DEPTH} levels of "
                                  "objects/arrays (MAX_DATA_DEPTH)") from err
        except ValueError as err:  # e.g. a number of thousands of digits (Python refuses to convert it)
            raise SubmissionError(f"--data cannot be read: {err}") from err
    if not isinstance(data, Mapping):
        raise SubmissionError(
            f"--data must be a JSON object such as '{{\"commune\": \"xa-tan-lap\"}}', got {type(data).__name__}"
        )
    _check_data_shape(data)  # first: it does not recurse, the checks after it do
    if where := _nul_in(data, ()):
        # PostgreSQL cannot store NUL: the projection would retry the dossier's events forever.
        raise SubmissionError(f"--data {where} contains a NUL character (\\u0000); remove it")
    _check_data_size(data)
    return dict(data)


def is_valid_unicode(text: str) -> bool:
    """Text UTF-8 can encode: no lone surrogate (JSON's \\ud800 escapes can make one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_data_shape(data: Mapping[str, Any]) -> None:
    """At most MAX_DATA_DEPTH levels of objects/arrays (the data object is level 1),
    and only finite numbers: JSON has no NaN or Infinity (Python's parser accepts them)."""
    pending: list[tuple[Any, tuple[str, ...], int]] = [(data, (), 1)]
    deepest, too_deep = 1, None
    while pending:
        value, path, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DATA_DEPTH and too_deep is None:
            too_deep = path
        inner = []
        for key, item in value.items() if isinstance(value, Mapping) else enumerate(value):
            here = (*path, str(key))
            if isinstance(item, float) and not math.isfinite(item):
                shown = "NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"
                raise SubmissionError(f"dossier data field {_field(here)} is {shown}; expected a finite number "
                                      "(JSON has no NaN or Infinity)")
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_JSON_INTEGER:
                raise SubmissionError(f"dossier data field {_field(here)} is a whole number beyond "
                                      f"±{MAX_JSON_INTEGER} (MAX_JSON_INTEGER); send longer numbers, e.g. "
                                      "identity numbers, as text")
            for text in (key, item):
                if isinstance(text, str) and not is_valid_unicode(text):
                    raise SubmissionError(f"dossier data field {_field(here)} holds text that is not valid Unicode "
                                          "(a lone surrogate such as \\ud800); send it as UTF-8")
            if isinstance(item, (Mapping, list, tuple)):
                inner.append((item, here, depth + 1))
        pending += reversed(inner)  # the first field written is looked at first
    if too_deep is not None:
        raise SubmissionError(f"dossier data nests {deepest} levels of objects/arrays deep (field "
                              f"{_field(too_deep)} is level {MAX_DATA_DEPTH + 1}); at most {MAX_DATA_DEPTH} "
                              "(MAX_DATA_DEPTH)")


def _check_data_size(data: Mapping[str, Any]) -> None:
    """At most MAX_DATA_BYTES as compact UTF-8 JSON (what the dossier carries in Temporal)."""
    size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8"))
    if size > MAX_DATA_BYTES:
        raise SubmissionError(f"dossier data is {size} bytes as JSON; at most {MAX_DATA_BYTES} bytes "
                              "(MAX_DATA_BYTES)")


def _field(path: tuple[str, ...]) -> str:
    text = repr(".".join(path))
    return text if len(text) <= 120 else text[:117] + "..."


def _nul_in(value: Any, path: tuple[str, ...]) -> str | None:
    """Where in the dossier data a NUL character is (`field 'a.b'`), or None."""
    if isinstance(value, str):
        return f"field {'.'.join(path)!r}" if "\x00" in value else None
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f"key {'.'.join((*path, key))!r}"
        if found := _nul_in(item, (*path, str(key))):
            return found
    return None


def _check_registries(snapshot: ProcedureSnapshot, lookup: Registry) -> None:
    procedure = snapshot.procedure
    if not lookup.is_sector(procedure.sector):
        raise SubmissionError(f"procedure {procedure.ref}: unknown sector {procedure.sector!r}"
                              f"{_close(procedure.sector, lookup.sector_codes())}")
    calendars = lookup.calendars()
    if procedure.calendar not in calendars:
        raise SubmissionError(f"procedure {procedure.ref}: unknown calendar {procedure.calendar!r}; "
                              f"known: {', '.join(sorted(calendars))}")


def _check_agencies(snapshot: ProcedureSnapshot, data: dict[str, Any], lookup: Registry) -> None:
    """Every agency a running step will be routed or escalated to must exist.

    Steps whose `when` is false are skipped by the workflow (the data never
    changes afterwards), so their agencies are not needed."""
    for step in snapshot.procedure.iter_steps():
        if step.when is not None and not step.when.holds(data):
            continue
        for key in ("agency", "escalate_to"):
            template = getattr(step, key)
            if template:
                _check_agency(step, key, template, data, lookup)


def dossier_agencies(snapshot: ProcedureSnapshot, data: dict[str, Any]) -> set[str]:
    """The agencies the dossier's running steps are routed or escalated to (checked above)."""
    return {resolve_agency(template, data)
            for step in snapshot.procedure.iter_steps() if step.when is None or step.when.holds(data)
            for template in (step.agency, step.escalate_to) if template}


def _check_agency(step: Step, key: str, template: str, data: dict[str, Any], lookup: Registry) -> None:
    try:
        code = resolve_agency(template, data)
    except UnknownAgencyError as err:
        raise SubmissionError(f"step {step.id!r}: {key} {template!r} needs field "
                              f"{_missing_field(template, data)!r} in the dossier's data"
                              f"{_known_values(template, lookup.agency_codes())}") from err
    if lookup.is_agency(code):
        return
    codes = lookup.agency_codes()
    shown = f"{key} {template!r} resolves to {code!r}" if "{" in template else f"{key} {code!r}"
    if lookup.is_retired(code):
        raise SubmissionError(f"step {step.id!r}: {shown}, which is retired; it receives no new steps "
                              "(route the procedure to its successor and deploy a new version)")
    raise SubmissionError(f"step {step.id!r}: {shown}, which is not a registered agency"
                          f"{_close(code, codes)}{_known_values(template, codes)}{_deploy_hint(codes)}")


def _deploy_hint(codes: Collection[str]) -> str:
    return "" if codes else " (no agencies are registered: run `lienthong definitions deploy`)"


def _missing_field(template: str, data: dict[str, Any]) -> str:
    return next((name for name in _PLACEHOLDER.findall(template) if data.get(name) in (None, "")), "?")


def _known_values(template: str, codes: Collection[str]) -> str:
    """For a one-field template, the values that name a known agency (e.g. the communes)."""
    names = _PLACEHOLDER.findall(template)
    if len(names) != 1:
        return ""
    head, _, tail = template.partition("{" + names[0] + "}")
    pattern = re.compile(re.escape(head) + "(.+)" + re.escape(tail) + "$")
    values = sorted({m.group(1) for code in codes if (m := pattern.match(code))})
    return f"; known {names[0]} values: {', '.join(values)}" if values else ""


def _close(value: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=3, cutoff=0.6)
    return f"; close codes: {', '.join(close)}" if close else ""


def _received_at(value: datetime | str | None, now: datetime, max_age: timedelta) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as err:
            raise SubmissionError(f"--received-at {value!r} is not an ISO date-time "
                                  "(e.g. 2026-03-02T09:30:00+07:00)") from err
    if value.tzinfo is None or value.utcoffset() is None:
        raise SubmissionError(f"--received-at {value.isoformat()} has no UTC offset; "
                              "add one, e.g. +07:00 for Vietnam")
    if value > now:
        raise SubmissionError(f"--received-at {value.isoformat()} is in the future "
                              f"(now is {now.astimezone(LOCAL_TZ).isoformat(timespec='seconds')})")
    if value < now - max_age:
        raise SubmissionError(f"--received-at {value.isoformat()} is more than {max_age.days} days ago "
                              "(LIENTHONG_RECEIPT_MAX_AGE_DAYS)")
    return value


def check_desk(code: str, dossier: DossierInput, lookup: Desks, label: str = "desk", *,
               receiving: bool = True) -> None:
    """`code` may receive this dossier: a registered one-stop desk, not retired, whose
    receiving scope covers the dossier's procedure for its commune (the same check as at
    submission; Decree 118/2025 Art. 14). To refuse it (`receiving=False`) a one-stop
    desk is enough: a dossier outside the desk's scope since it was submitted is one it
    refuses (Mẫu 03), and one addressed to a desk retired since is refused on its behalf.
    `SubmissionError` says why not."""
    if not receiving and lookup.is_retired(code):
        return
    _check_receiving_desk(code, lookup, label)
    if receiving:
        _check_receiving_scope(code, dossier.snapshot, dossier.data, lookup, label)


def _check_receiving_desk(code: str | None, lookup: Desks, label: str = "--received-by") -> None:
    if code is None:
        return
    if lookup.is_retired(code):
        raise SubmissionError(f"{label} {code!r} is retired; it receives no dossiers")
    if not lookup.is_agency(code):
        codes = lookup.agency_codes()
        raise SubmissionError(f"{label} {code!r} is not a registered agency{_close(code, codes)}"
                              f"{_deploy_hint(codes)}")
    desks: Sequence[str] = sorted(lookup.receiving_desks())
    if code not in desks:
        raise SubmissionError(f"{label} {code!r} does not receive dossiers; "
                              f"one-stop desks are: {', '.join(desks)}")


def _check_receiving_scope(code: str | None, snapshot: ProcedureSnapshot, data: Mapping[str, Any],
                           lookup: Desks, label: str = "--received-by") -> None:
    """The desk may receive this procedure for this commune (its `receives:` in
    agencies.yaml): a level and commune of its own, or a procedure of the province-wide
    list (Decree 118/2025 Art. 14)."""
    if code is None:
        return
    procedure = snapshot.procedure
    scope = lookup.receiving_scope(code)
    if scope is None:
        raise SubmissionError(f"{label} {code!r} has no receiving scope (`receives:` in agencies.yaml); "
                              "run `lienthong definitions deploy`")
    if procedure.code in (scope.get("procedures") or []):
        return
    levels = list(scope.get("levels") or [])
    communes = scope.get("communes")
    commune = data.get(COMMUNE_FIELD)
    where = "for any commune" if communes is None else f"for commune(s) {', '.join(communes)}"
    receives = f"it receives level(s) {', '.join(levels)} {where}"
    if scope.get("procedures"):
        receives += " and the province-wide list"
    if procedure.level not in levels:
        raise SubmissionError(f"{label} {code!r} does not receive procedure {procedure.ref} "
                              f"(level {procedure.level}): {receives}")
    if communes is not None and commune not in communes:
        shown = f"commune {commune!r}" if commune not in (None, "") else f"no {COMMUNE_FIELD!r} in its data"
        raise SubmissionError(f"{label} {code!r} does not receive procedure {procedure.ref} for {shown}: "
                              f"{receives}")
