"""Reference checks: what a procedure names must exist in the catalog — its sector,
level and calendar (which must also load: deadlines are counted in it), and every
step's ``agency`` and ``escalate_to`` (a ``{field}`` template must match at least one
known code). Unknown names come with the close known ones.

They read the raw YAML tree, so they still run when the shape is wrong elsewhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from definitions.calendar import CalendarFileError, UnknownCalendarError, load_calendar
from definitions.folders import AGENCIES_FILE, SECTORS_FILE
from definitions.problems import Problem, _dotted, _one_line
from definitions.registries import Catalog
from definitions.schema import DEFAULT_CALENDAR, template_matches
from definitions.step_tree import _raw_steps
from definitions.yaml_source import Document


def _unknown_references(doc: Document, catalog: Catalog) -> list[Problem]:
    data = doc.data
    problems = []
    sector = data.get("sector")
    if isinstance(sector, str) and sector and sector not in catalog.sectors:
        expected = _choices(sector, catalog.sectors, SECTORS_FILE)
        problems.append(doc.problem(("sector",), f"sector: unknown sector {sector!r}; expected {expected}"))
    level = data.get("level")
    if isinstance(level, str) and level and level not in catalog.levels:
        known = ", ".join(sorted(catalog.levels)) or "(none)"
        message = f"level: unknown level {level!r}; expected one of the levels used in {AGENCIES_FILE}: {known}"
        problems.append(doc.problem(("level",), message))
    problems += _calendar_problems(doc, catalog)
    for loc, step in _raw_steps(data.get("steps"), ("steps",)):
        for key in ("agency", "escalate_to"):
            problem = _agency_problem(step.get(key), catalog)
            if problem:
                problems.append(doc.problem((*loc, key), f"{_dotted((*loc, key))}: {problem}"))
    return problems


def _calendar_problems(doc: Document, catalog: Catalog) -> list[Problem]:
    """The calendar (named, or the default) must exist and load: deadlines are counted in it."""
    name = doc.data.get("calendar", DEFAULT_CALENDAR)
    if not isinstance(name, str):
        return []  # the shape check reports it
    which = "calendar" if "calendar" in doc.data else f"calendar (default {DEFAULT_CALENDAR})"
    known = ", ".join(sorted(catalog.calendars)) or "(none)"
    if name not in catalog.calendars:
        message = f"{which}: unknown calendar {name!r}; expected one of {known}"
        return [doc.problem(("calendar",), message)]
    try:
        load_calendar(name, catalog.root)
    except (UnknownCalendarError, CalendarFileError) as exc:
        reason = _one_line("; ".join(str(exc).splitlines()))
        return [doc.problem(("calendar",), f"{which}: calendar {name!r} cannot be used: {reason}")]
    return []


def _choices(value: str, known: Iterable[str], registry: str) -> str:
    close = difflib.get_close_matches(value, list(known), n=3, cutoff=0.6)
    hint = f", e.g. {', '.join(close)}" if close else ""
    return f"a code from {registry}{hint}"


def _agency_problem(value: Any, catalog: Catalog) -> str | None:
    """Why ``value`` names no agency, or None. Templates need one code to match."""
    if not isinstance(value, str) or not value:
        return None  # the shape check reports it
    codes = list(catalog.agencies)
    if "{" in value:
        if any(template_matches(value, code) for code in codes):
            return None
        # Compare the fixed start of the template with the same length of each code.
        prefix = value.split("{", 1)[0]
        close = _close_by_prefix(prefix, codes) if prefix else []
        hint = f"; close known codes: {', '.join(close)}" if close else ""
        return (
            f"no agency in {AGENCIES_FILE} matches {value!r} "
            f"({{field}} parts are filled from the dossier's data){hint}"
        )
    if value in catalog.agencies:
        return None
    close = difflib.get_close_matches(value, codes, n=3, cutoff=0.6)
    hint = f"; close known codes: {', '.join(close)}" if close else ""
    return f"unknown agency {value!r}; expected a code from {AGENCIES_FILE}{hint}"


def _close_by_prefix(prefix: str, codes: list[str]) -> list[str]:
    heads: dict[str, str] = {}
    for code in codes:
        heads.setdefault(code[: len(prefix)], code)
    return [heads[h] for h in difflib.get_close_matches(prefix, list(heads), n=3, cutoff=0.6)]
