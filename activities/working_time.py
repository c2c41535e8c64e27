"""Working-time arithmetic for the workflow, run as local activities.

The workflow never does calendar arithmetic itself: holidays, lunch breaks and
receipt cut-offs live here, and the results (absolute instants) are recorded in
history, so a replay gets the same answers even if a calendar file changes.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from temporalio import activity

from definitions.calendar import load_calendar
from workflows.payloads import (
    ClockRequest,
    DossierClock,
    ResumedClock,
    ResumeRequest,
    StepDue,
    StepDueRequest,
    VerdictRequest,
)


@lru_cache(maxsize=32)
def _calendar(name: str):  # type: ignore[no-untyped-def]
    # Loading builds the holiday tables; do it once per worker process.
    return load_calendar(name)


def clear_calendar_cache() -> None:
    _calendar.cache_clear()


@activity.defn
def start_clock(request: ClockRequest) -> DossierClock:
    cal = _calendar(request.calendar)
    started = cal.start_of_clock(request.received_at)
    return DossierClock(clock_started_at=started, due_at=cal.add(started, request.deadline))


@activity.defn
def step_due(request: StepDueRequest) -> StepDue:
    cal = _calendar(request.calendar)
    deadline = cal.duration(request.deadline)
    # An apology/extension may be asked once less than one working day is left.
    warning = max(timedelta(0), deadline - cal.day_length)
    return StepDue(
        due_at=cal.add(request.assigned_at, deadline),
        extendable_from=cal.add(request.assigned_at, warning),
    )


@activity.defn
def resume_clock(request: ResumeRequest) -> ResumedClock:
    """Pause mode: each due keeps the working time it had left when the clock stopped."""
    cal = _calendar(request.calendar)
    restarted = cal.start_of_clock(request.resumed_at)
    dues = []
    for due in request.dues:
        remaining = cal.elapsed(request.paused_at, due)
        # Already late when paused: it stays late, the pause does not forgive it.
        dues.append(cal.add(restarted, remaining) if remaining > timedelta(0) else due)
    return ResumedClock(clock_started_at=restarted, dues=dues)


@activity.defn
def judge_verdict(request: VerdictRequest) -> str:
    return _calendar(request.calendar).verdict(request.completed_at, request.due_at)


LOCAL_ACTIVITIES = [start_clock, step_due, resume_clock, judge_verdict]
