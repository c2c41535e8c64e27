"""Working-time arithmetic for the workflow, run as local activities.

The workflow never does calendar arithmetic itself: holidays, lunch breaks and
receipt cut-offs live here, and the results (absolute instants) are recorded in
history, so a replay gets the same answers even if a calendar file changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity

from definitions.calendar import WorkingCalendar, load_calendar
from workflows.payloads import (
    ClockRequest,
    DossierClock,
    Due,
    DueBasis,
    RecomputeRequest,
    ResumedClock,
    ResumeRequest,
    StepDueRequest,
)


def _calendar(name: str) -> WorkingCalendar:
    # load_calendar caches by file identity: an edited calendar file is re-read.
    return load_calendar(name)


def _due(cal: WorkingCalendar, start: datetime, deadline: str | timedelta) -> Due:
    working = cal.duration(deadline)
    due_at = cal.add(start, working)
    local = due_at.astimezone(cal.timezone)
    # An apology/extension may be asked once less than one working day is left.
    warning = max(timedelta(0), working - cal.day_length)
    return Due(
        due_at=due_at,
        due_day_start=local.replace(hour=0, minute=0, second=0, microsecond=0),
        extendable_from=cal.add(start, warning),
        basis=DueBasis(start=start, working=working),
    )


@activity.defn
def start_clock(request: ClockRequest) -> DossierClock:
    cal = _calendar(request.calendar)
    started = cal.start_of_clock(request.received_at)
    return DossierClock(clock_started_at=started, due=_due(cal, started, request.deadline))


@activity.defn
def step_due(request: StepDueRequest) -> Due:
    cal = _calendar(request.calendar)
    return _due(cal, request.assigned_at, request.deadline)


@activity.defn
def resume_clock(request: ResumeRequest) -> ResumedClock:
    cal = _calendar(request.calendar)
    restarted = cal.start_of_clock(request.resumed_at)

    def resumed(due_at: datetime, deadline: str) -> Due:
        if request.mode == "restart":
            return _due(cal, restarted, deadline)
        remaining = cal.elapsed(request.paused_at, due_at)
        # Already late when paused: it stays late, the pause does not forgive it.
        return _due(cal, restarted, remaining) if remaining > timedelta(0) else _due(cal, due_at, timedelta(0))

    return ResumedClock(
        clock_started_at=restarted,
        dues=[resumed(d, dl) for d, dl in zip(request.dues, request.deadlines, strict=True)],
    )


@activity.defn
def recompute_dues(request: RecomputeRequest) -> list[Due]:
    """The same working time from the same start, on the calendar as it is now."""
    cal = _calendar(request.calendar)
    return [_due(cal, basis.start, basis.working) for basis in request.bases]


LOCAL_ACTIVITIES = [start_clock, step_due, resume_clock, recompute_dues]
