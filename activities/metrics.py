"""Event counters and histograms of the dossier workers (Prometheus, prometheus-client).

`write_changes` calls `observe(event, state)` only after the event was committed to the audit
log *for the first time* (`store.projection.write_changes` returned it), so a retried
activity, a replayed workflow or a second worker never counts one transition twice.
Counters live in this process: Prometheus adds them up across workers with
`sum(rate(...))`, and a worker restart is a counter reset that `rate`/`increase` handle.

The current-state numbers (open, overdue, awaiting supplement) are not here: they are
computed from the store at scrape time by the exporter (`monitoring/collector.py`).

Labels are bounded codes from the registries (sector, level, procedure code, agency
code) and closed vocabularies (status, verdict, outcome): never a dossier id or a person.

Known label combinations are created at zero when the worker starts (`initialize`) and
the first time a procedure is seen: a series that is born at 1 is invisible to
`increase()`, which would hide the first late dossier of a procedure from the on-time
rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from threading import Lock

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from definitions.calendar import load_calendar
from workflows import payloads
from workflows.payloads import DossierEvent, DossierState, StepStatus

log = structlog.get_logger("lienthong.metrics")

# The worker's own registry (served by `lienthong worker`/`dev` on their metrics port);
# the exporter has another, so one process can serve both on separate ports.
REGISTRY = CollectorRegistry(auto_describe=True)

VERDICTS = ("early", "on_time", "late")  # Decision 766/QĐ-TTg
FINISHED_STATUSES = tuple(status.value for status in payloads.FINISHED_STATUSES)
TURN_OPENERS = frozenset(payloads.APPLICANT_TURN_OPENED_BY.values())  # the applicant holds the dossier from here
HOUR = 3600.0
WORKING_DAY = 8 * HOUR  # vn-gov: 07:30–11:30 + 13:00–17:00
# Working seconds: from minutes (tests, `continuous` short deadlines) to 60 working days.
WORKING_TIME_BUCKETS = (
    60.0, 600.0, HOUR, 4 * HOUR, WORKING_DAY, 2 * WORKING_DAY, 3 * WORKING_DAY, 5 * WORKING_DAY,
    7 * WORKING_DAY, 10 * WORKING_DAY, 15 * WORKING_DAY, 20 * WORKING_DAY, 30 * WORKING_DAY,
    45 * WORKING_DAY, 60 * WORKING_DAY, float("inf"),
)

DOSSIERS_RECEIVED = Counter(
    "lienthong_dossiers_received", "Dossiers received (workflow started and its clock computed).",
    ["sector", "level", "procedure"], registry=REGISTRY)
DOSSIERS_FINISHED = Counter(
    "lienthong_dossiers_finished",
    "Dossiers finished, by status (completed | rejected) and Decision 766 verdict (early | on_time | late).",
    ["sector", "level", "procedure", "status", "verdict"], registry=REGISTRY)
# Decision 766's end time, by priority: processing finished (status 9), else the result
# returned (10), else stopped or rejected (8). A dossier counts once, at the first of
# these it reaches (the Biểu 06 report's "resolved", services/report.py).
RESOLVING = ("result_ready", "completed", "withdrawn", "rejected")
DOSSIERS_RESOLVED = Counter(
    "lienthong_dossiers_resolved",
    "Dossiers resolved (Decision 766's end time: result ready, else returned, else withdrawn or rejected), by the "
    "event that resolved them and the verdict judged then (early | on_time | late): Biểu 06 columns 7-10.",
    ["sector", "level", "status", "verdict"], registry=REGISTRY)
STEPS_FINISHED = Counter(
    "lienthong_steps_finished",
    "Steps finished by an agency, by outcome (approved | rejected) and verdict against the step's legal due.",
    ["sector", "agency", "outcome", "verdict"], registry=REGISTRY)
DOSSIER_DEADLINE_MISSES = Counter(
    "lienthong_dossier_deadline_misses", "Dossiers whose due passed before they were finished.",
    ["sector", "level", "procedure"], registry=REGISTRY)
STEP_DEADLINE_MISSES = Counter(
    "lienthong_step_deadline_misses", "Steps whose due passed at the agency holding them.",
    ["sector", "agency"], registry=REGISTRY)
ESCALATIONS = Counter(
    "lienthong_escalations", "Late steps escalated to a supervising agency (escalate_to).",
    ["sector", "agency", "escalate_to"], registry=REGISTRY)
SUPPLEMENT_REQUESTS = Counter(
    "lienthong_supplement_requests", "Requests to the applicant to supplement documents (clock stopped).",
    ["sector", "agency"], registry=REGISTRY)
WORKING_TIME = Histogram(
    "lienthong_dossier_working_time_seconds",
    "Working time a finished dossier took on its calendar, from the start of its clock to its result, "
    "without the applicant's supplement time.",
    ["sector"], buckets=WORKING_TIME_BUCKETS, registry=REGISTRY)

# The National Portal's sync (activities/portal.py). The backlog (pending changes, the
# oldest one's age, parked ones) is the exporter's, from the store.
PORTAL_FAILURE_REASONS = ("http_4xx", "http_5xx", "http_other", "network", "timeout")
PORTAL_SYNC_FAILURES = Counter(
    "lienthong_portal_sync_failures",
    "Attempts to send a change to the National Public Service Portal that failed, by reason: http_4xx (the "
    "portal refused it: parked, or retried for 401/403/404/408/429), http_5xx, http_other (1xx/3xx), network "
    "(no connection), timeout. Retried by Temporal but for parked ones.",
    ["reason"], registry=REGISTRY)
PORTAL_SYNC_DELIVERED = Counter(
    "lienthong_portal_sync_delivered", "Changes the National Public Service Portal accepted (2xx).",
    registry=REGISTRY)
for _reason in PORTAL_FAILURE_REASONS:
    PORTAL_SYNC_FAILURES.labels(_reason)  # born at zero: increase() sees the first failure

_seen: set[tuple[str, str, str]] = set()
_seen_lock = Lock()


def initialize(procedures: Iterable[tuple[str, str, str]]) -> None:
    """Create every (sector, level, procedure) series at zero, once per process."""
    for sector, level, procedure in procedures:
        key = (sector, level, procedure)
        with _seen_lock:
            if key in _seen:
                continue
            _seen.add(key)
        DOSSIERS_RECEIVED.labels(sector, level, procedure)
        DOSSIER_DEADLINE_MISSES.labels(sector, level, procedure)
        for status in FINISHED_STATUSES:
            for verdict in VERDICTS:
                DOSSIERS_FINISHED.labels(sector, level, procedure, status, verdict)
        for status in RESOLVING:
            for verdict in VERDICTS:
                DOSSIERS_RESOLVED.labels(sector, level, status, verdict)
        WORKING_TIME.labels(sector)


def initialize_from_store(sessions: sessionmaker[Session]) -> int:
    """Zero series for every deployed procedure; returns how many procedures."""
    from store.models import DefinitionRow  # the store is only needed by workers

    with sessions() as session:
        rows = session.execute(
            select(DefinitionRow.sector, DefinitionRow.level, DefinitionRow.code).distinct()).all()
    initialize((sector, level, code) for sector, level, code in rows)
    return len(rows)


def observe(event: DossierEvent, state: DossierState) -> None:
    """Count one newly recorded event. Never raises: a metric must not fail (and so
    retry) the activity that recorded the event."""
    try:
        _observe(event, state)
    except Exception as err:  # a bug here costs a data point, not a dossier
        log.warning("metrics_not_counted", kind=event.kind, seq=event.seq, error=f"{type(err).__name__}: {err}")


def _observe(event: DossierEvent, state: DossierState) -> None:
    sector, level, procedure = state.sector, state.level, state.procedure_code
    initialize([(sector, level, procedure)])
    kind = event.kind
    step = state.step(event.step_id) if event.step_id else None
    if kind == "received":
        DOSSIERS_RECEIVED.labels(sector, level, procedure).inc()
    elif kind == "dossier_overdue":
        DOSSIER_DEADLINE_MISSES.labels(sector, level, procedure).inc()
    elif kind == "step_overdue" and step is not None and step.agency:
        STEP_DEADLINE_MISSES.labels(sector, step.agency).inc()
        if step.escalate_to:
            ESCALATIONS.labels(sector, step.agency, step.escalate_to).inc()
    elif kind == "supplement_requested" and step is not None and step.agency:
        SUPPLEMENT_REQUESTS.labels(sector, step.agency).inc()
    elif kind == "step_completed" and step is not None and step.agency and step.verdict:
        STEPS_FINISHED.labels(sector, step.agency, "approved", step.verdict).inc()
    elif kind in FINISHED_STATUSES:
        if step is not None and step.status == StepStatus.REJECTED and step.agency and step.verdict:
            STEPS_FINISHED.labels(sector, step.agency, "rejected", step.verdict).inc()
        if state.verdict:
            DOSSIERS_FINISHED.labels(sector, level, procedure, kind, state.verdict).inc()
        working = working_time(state)
        if working is not None:
            WORKING_TIME.labels(sector).observe(working.total_seconds())
    if resolves(kind, state) and state.verdict:
        DOSSIERS_RESOLVED.labels(sector, level, kind, state.verdict).inc()


def resolves(kind: str, state: DossierState) -> bool:
    """Whether an event of `kind`, written with `state`, is the dossier's end time: status
    9, or an end that no status 9 preceded (`finished_at` is set at 9)."""
    return kind == RESOLVING[0] or (kind in RESOLVING and state.finished_at is None)


def working_time(state: DossierState) -> timedelta | None:
    """Working time from the clock's start to the result, on the dossier's calendar,
    less the working time the applicant held the dossier (supplement or financial
    obligation requested → resubmitted). None when the dossier is not finished or its calendar is unknown."""
    # Decision 766's end time: processing finished (status 9) when it did, else the end.
    start, end = state.clock_started_at, state.finished_at or state.completed_at
    if start is None or end is None:
        return None
    calendar = load_calendar(state.calendar)
    if end <= start:
        return timedelta(0)
    total = calendar.elapsed(start, end)
    paused_since: datetime | None = None
    for note in sorted(state.notes, key=lambda n: n.at):
        if note.kind in TURN_OPENERS and paused_since is None:
            paused_since = note.at
        elif note.kind == "resubmitted" and paused_since is not None:
            total -= _overlap(calendar, paused_since, note.at, start, end)
            paused_since = None
    if paused_since is not None:  # finished while the applicant held it (e.g. supplement expired)
        total -= _overlap(calendar, paused_since, end, start, end)
    return max(total, timedelta(0))


def _overlap(calendar, a: datetime, b: datetime, start: datetime, end: datetime) -> timedelta:  # type: ignore[no-untyped-def]
    lo, hi = max(a, start), min(b, end)
    return calendar.elapsed(lo, hi) if hi > lo else timedelta(0)
