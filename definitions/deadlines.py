"""The deadline check: along the slowest way through a procedure (steps in a sequence
add up, the slowest branch of a parallel sets its pace, a ``when`` step counts as if
it runs) the step deadlines must fit in the total ``deadline``, counted in working
days of the procedure's calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from definitions.calendar import CalendarFileError, UnknownCalendarError, load_calendar
from definitions.durations import is_duration, parse_duration
from definitions.problems import Problem
from definitions.registries import Catalog
from definitions.schema import DEFAULT_CALENDAR
from definitions.yaml_source import Document


@dataclass(frozen=True)
class _Span:
    """The longest way through part of a procedure: its working time and the steps on it."""

    time: timedelta
    steps: tuple[str, ...]


def _deadline_overruns(doc: Document, catalog: Catalog) -> list[Problem]:
    data = doc.data
    total = data.get("deadline")
    day_length = _day_length(data.get("calendar", DEFAULT_CALENDAR), catalog)
    if day_length is None or not is_duration(total):
        return []
    longest = _longest_sequence(data.get("steps"), day_length)
    if longest is None or longest.time <= parse_duration(total, day_length):
        return []
    path = " → ".join(longest.steps)
    taken = _in_days(longest.time, day_length)
    message = f"deadline: steps take up to {taken} along {path}, longer than the total deadline {total}"
    return [doc.problem(("deadline",), message)]


def _day_length(name: Any, catalog: Catalog) -> timedelta | None:
    if not isinstance(name, str) or name not in catalog.calendars:
        return None
    try:
        return load_calendar(name, catalog.root).day_length
    except (UnknownCalendarError, CalendarFileError):
        return None  # reported by the calendar check


def _longest_sequence(nodes: Any, day_length: timedelta) -> _Span | None:
    """Steps one after another add up. None when the tree is too malformed to time."""
    if not isinstance(nodes, list) or not nodes:
        return None
    time = timedelta(0)
    steps: tuple[str, ...] = ()
    for node in nodes:
        span = _longest_node(node, day_length)
        if span is None:
            return None
        time, steps = time + span.time, steps + span.steps
    return _Span(time, steps)


def _longest_node(node: Any, day_length: timedelta) -> _Span | None:
    if not isinstance(node, dict):
        return None
    if "parallel" in node:
        # Every branch must finish: the slowest one sets the pace.
        branches = node["parallel"]
        if not isinstance(branches, list) or not branches:
            return None
        spans = [span for branch in branches if (span := _longest_node(branch, day_length)) is not None]
        if len(spans) != len(branches):
            return None
        return max(spans, key=lambda s: s.time)
    if "sequence" in node:
        return _longest_sequence(node["sequence"], day_length)
    # A `when` step counts as if it runs: the deadline must hold either way.
    deadline, step_id = node.get("deadline"), node.get("id")
    if not is_duration(deadline):
        return None
    return _Span(parse_duration(deadline, day_length), (str(step_id),))


def _in_days(time: timedelta, day_length: timedelta) -> str:
    days = time / day_length
    return f"{days:.3f}".rstrip("0").rstrip(".") + "d"

