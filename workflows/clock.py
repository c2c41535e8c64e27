"""Due instants from working time: pure arithmetic on a calendar, run in the workflow.

The calendar is the dossier's snapshot (`definitions.calendar.calendar_from_snapshot`),
so the answers depend only on the workflow's input and history: a replay computes
the same instants, and no activity round trip is needed for a due.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from definitions.calendar import WorkingCalendar
from workflows.payloads import Due, DueBasis


def due(cal: WorkingCalendar, start: datetime, deadline: str | timedelta) -> Due:
    """The due of `deadline` working time counted from `start`."""
    working = cal.duration(deadline)
    due_at = cal.add(start, working)
    return Due(
        due_at=due_at,
        due_day_start=cal.day_start(due_at),
        extendable_until=extendable_until(cal, due_at),
        basis=DueBasis(start=start, working=working),
    )


def extendable_until(cal: WorkingCalendar, due_at: datetime) -> datetime:
    """The last instant an apology and new appointment (Mẫu 04) may be sent for a due:
    at least one working day before it, in the calendar's working time (`1d`, its
    `day_length`), not 24 hours. A step whose deadline is shorter than a working day
    has it before its own start: it can never be extended."""
    return cal.subtract(due_at, cal.day_length)


def resumed_due(cal: WorkingCalendar, mode: Literal["pause", "restart"], *, paused_at: datetime,
                restarted_at: datetime, due_at: datetime, deadline: str) -> Due:
    """A due after the applicant supplemented: `pause` re-applies the working time it
    had left when the clock stopped; `restart` counts the whole deadline again."""
    if mode == "restart":
        return due(cal, restarted_at, deadline)
    remaining = cal.elapsed(paused_at, due_at)
    # Already late when paused: it stays late, the pause does not forgive it.
    return due(cal, restarted_at, remaining) if remaining > timedelta(0) else due(cal, due_at, timedelta(0))
