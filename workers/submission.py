"""Turning an operator's submission into a `DossierInput`, or refusing it with a reason.

Everything that can be checked before a dossier exists is checked here, so the
workflow never starts with a procedure, agency, sector or calendar it cannot use
(DESIGN: "an unknown procedure, agency, sector or calendar is refused at submission").
No Temporal here: pure checks against the definitions catalog.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from definitions.loader import Catalog, DefinitionError, find_procedure
from definitions.schema import ProcedureSnapshot, Step, UnknownAgencyError, resolve_agency
from workflows.payloads import Channel, DossierInput

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
CHANNELS: tuple[Channel, ...] = ("in_person", "online", "postal")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SubmissionError(ValueError):
    """A submission that cannot become a dossier; the message says why, on one line."""


def local_today() -> date:
    """Which procedure version is in effect is decided by the date in Vietnam."""
    return datetime.now(LOCAL_TZ).date()


def prepare_dossier(
    ref: str,
    dossier_id: str,
    data: str | Mapping[str, Any],
    catalog: Catalog,
    today: date,
    channel: str = "in_person",
    received_at: datetime | str | None = None,
    received_by: str | None = None,
    *,
    now: datetime | None = None,
) -> DossierInput:
    """The start input for a dossier, or `SubmissionError` naming what is wrong."""
    snapshot = _procedure(ref, catalog, today)
    fields = _data_object(data)
    _check_registries(snapshot, catalog)
    _check_agencies(snapshot, fields, catalog)
    if channel not in CHANNELS:
        raise SubmissionError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    received = _received_at(received_at, now or datetime.now(LOCAL_TZ))
    _check_receiving_desk(received_by, catalog)
    try:
        return DossierInput(dossier_id=dossier_id, snapshot=snapshot, data=fields, channel=channel,  # type: ignore[arg-type]
                            received_at=received, received_by=received_by)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SubmissionError(f"{where}: {first['msg']}") from err


def _procedure(ref: str, catalog: Catalog, today: date) -> ProcedureSnapshot:
    try:
        return find_procedure(ref, catalog, today)
    except LookupError as err:
        raise SubmissionError(str(err.args[0] if err.args else err)) from err
    except DefinitionError as err:
        # One line: the count and the first problem; `definitions validate` lists them all.
        first = err.problems[0] if err.problems else "?"
        raise SubmissionError(
            f"the definitions have {len(err.problems)} problem(s), first: {first} "
            f"(run `lienthong definitions validate {catalog.root}`)"
        ) from err


def _data_object(data: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as err:
            raise SubmissionError(f"--data is not valid JSON: {err}") from err
    if not isinstance(data, Mapping):
        raise SubmissionError(
            f"--data must be a JSON object such as '{{\"commune\": \"xa-tan-lap\"}}', got {type(data).__name__}"
        )
    return dict(data)


def _check_registries(snapshot: ProcedureSnapshot, catalog: Catalog) -> None:
    procedure = snapshot.procedure
    if procedure.sector not in catalog.sectors:
        raise SubmissionError(f"procedure {procedure.ref}: unknown sector {procedure.sector!r}"
                              f"{_close(procedure.sector, catalog.sectors)}")
    if procedure.calendar not in catalog.calendars:
        raise SubmissionError(f"procedure {procedure.ref}: unknown calendar {procedure.calendar!r}; "
                              f"known: {', '.join(sorted(catalog.calendars))}")


def _check_agencies(snapshot: ProcedureSnapshot, data: dict[str, Any], catalog: Catalog) -> None:
    """Every agency a running step will be routed or escalated to must exist.

    Steps whose `when` is false are skipped by the workflow (the data never
    changes afterwards), so their agencies are not needed."""
    for step in snapshot.procedure.iter_steps():
        if step.when is not None and not step.when.holds(data):
            continue
        for key in ("agency", "escalate_to"):
            template = getattr(step, key)
            if template:
                _check_agency(step, key, template, data, catalog)


def _check_agency(step: Step, key: str, template: str, data: dict[str, Any], catalog: Catalog) -> None:
    try:
        code = resolve_agency(template, data)
    except UnknownAgencyError as err:
        raise SubmissionError(f"step {step.id!r}: {key} {template!r} needs field "
                              f"{_missing_field(template, data)!r} in --data{_known_values(template, catalog)}") from err
    if code in catalog.agencies:
        return
    shown = f"{key} {template!r} resolves to {code!r}" if "{" in template else f"{key} {code!r}"
    raise SubmissionError(f"step {step.id!r}: {shown}, which is not in agencies.yaml"
                          f"{_close(code, catalog.agencies)}{_known_values(template, catalog)}")


def _missing_field(template: str, data: dict[str, Any]) -> str:
    return next((name for name in _PLACEHOLDER.findall(template) if data.get(name) in (None, "")), "?")


def _known_values(template: str, catalog: Catalog) -> str:
    """For a one-field template, the values that name a known agency (e.g. the communes)."""
    names = _PLACEHOLDER.findall(template)
    if len(names) != 1:
        return ""
    head, _, tail = template.partition("{" + names[0] + "}")
    pattern = re.compile(re.escape(head) + "(.+)" + re.escape(tail) + "$")
    values = sorted({m.group(1) for code in catalog.agencies if (m := pattern.match(code))})
    return f"; known {names[0]} values: {', '.join(values)}" if values else ""


def _close(value: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(value, list(known), n=3, cutoff=0.6)
    return f"; close codes: {', '.join(close)}" if close else ""


def _received_at(value: datetime | str | None, now: datetime) -> datetime | None:
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
    return value


def _check_receiving_desk(code: str | None, catalog: Catalog) -> None:
    if code is None:
        return
    agency = catalog.agencies.get(code)
    desks = sorted(c for c, a in catalog.agencies.items() if a.receives_dossiers)
    if agency is None:
        raise SubmissionError(f"--received-by {code!r} is not in agencies.yaml{_close(code, catalog.agencies)}")
    if not agency.receives_dossiers:
        raise SubmissionError(f"--received-by {code!r} does not receive dossiers; "
                              f"one-stop desks are: {', '.join(desks)}")
