"""Working-time calendars: when the legal clock starts, runs and stops.

Deadlines in administrative procedures are counted in *working time*: ``3d`` means
three working days of the receiving agency, not 72 hours.  A calendar answers

* ``start_of_clock(received_at, receipt_cutoff)`` — when the clock starts: at once in
  working time, else at the next working period; and, where a receipt cut-off applies
  (the procedure's, else the calendar's; none by default), a dossier received *after*
  it (15:00:00 is not after 15:00, 15:00:01 is) counts from the next working day;
* ``add(start, duration)`` — the instant a working-time budget runs out;
* ``subtract(end, duration)`` — the latest instant with that much working time left
  before ``end`` (``due - 1d``: the last moment for an apology and new appointment);
* ``elapsed(start, end)`` — how much working time lies between two instants;
* ``verdict(completed_at, due_at)`` — early / on time / late.

Working hours are data: ``working_periods`` for every working day (the simple form),
optionally varied per weekday (``weekday_periods``, e.g. a Saturday morning) and per
season (``seasons``: summer/winter hours over MM-DD ranges, each a complete weekly
schedule), checked in ``definitions.hours``.  ``1d`` of working time is a fixed budget, ``day_length``: the length of
the working day when every working day has the same length (8 h for ``vn-gov``, and
for summer/winter hours of 8 h each), else the file must say it (``day_length: 8h``).
A day shorter than ``day_length`` (a Saturday morning) uses up less of a ``1d``
budget than a full day: ``1d`` is 8 working hours, not "until the same time on the
next working day".

``vn-gov`` (and any province calendar) is described by ``calendars/<name>.yaml``;
public holidays and substituted weekend days come from the ``holidays`` package,
the yaml only adds overrides.  ``continuous`` is built in: plain wall-clock time.

Snapshots (for the workflow).  ``calendar.snapshot(at)`` resolves a calendar into a
small ``CalendarSnapshot``: periods (weekday and seasonal ones too), day length,
weekend, cut-off, time zone and only the dated exceptions to the weekly rule (days
off on weekdays, worked weekend days) over a
bounded horizon, by default 1 January of ``at``'s local year minus
``SNAPSHOT_YEARS_BEFORE`` to 31 December of that year plus ``SNAPSHOT_YEARS_AFTER``.
``calendar_from_snapshot(snapshot)`` gives back a calendar with the same API and
the same arithmetic (one implementation, ``PeriodCalendar``): inside the horizon it
answers exactly as the calendar it was taken from; **outside the horizon it knows
only the weekly rule** (weekend, weekday and seasonal hours; no public holidays, no
yaml overrides).  It never
raises or loops there: every week still has a working day.  Building one reads no
file but the time zone (``ZoneInfo``, stdlib, cached), calls no ``holidays`` code
and never asks for the current time, so Temporal workflow code may use it.
Workflow code imports this module *passed through* the sandbox
(``with workflow.unsafe.imports_passed_through():``, as for the other
``definitions`` modules): re-imported inside the sandbox, ``ZoneInfo`` hands out
restricted proxies that ``datetime`` refuses as a tzinfo, and ruamel.yaml does
not import at all.  Never call ``load_calendar`` from workflow code: it reads files.

Everything here is a pure function of its arguments and the loaded files (or the
snapshot), so it gives the same answer on every retry and every replay.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from config.settings import get_settings
from definitions.durations import is_duration, parse_duration
from definitions.hours import (
    MAX_NAME_CHARS,
    NAME_RE,
    WEEKDAYS,
    Period,
    Schedule,
    Season,
    SeasonSpec,
    Weekday,
    canonical_pairs,
    check_cutoff,
    check_day_length,
    check_periods,
    check_seasons,
    check_weekday_periods,
    check_weekend,
    day_lengths,
    in_season,
    month_day,
    schedules,
    weekday_pairs,
)
from definitions.limits import (
    MAX_SEASONS,
    MAX_SNAPSHOT_EXCEPTIONS,
    MAX_SNAPSHOT_YEARS,
    MAX_WORKING_PERIODS,
)
from definitions.yaml_positions import line_of
from definitions.yaml_source import read_bounded, yaml_too_big

__all__ = [
    "CONTINUOUS",
    "MAX_SNAPSHOT_EXCEPTIONS",
    "SNAPSHOT_YEARS_AFTER",
    "SNAPSHOT_YEARS_BEFORE",
    "Calendar",
    "CalendarFileError",
    "CalendarSnapshot",
    "ContinuousCalendar",
    "OfficeCalendar",
    "PeriodCalendar",
    "Season",
    "SeasonSpec",
    "SnapshotCalendar",
    "UnknownCalendarError",
    "Verdict",
    "WorkingCalendar",
    "available_calendars",
    "calendar_from_snapshot",
    "definitions_root",
    "judge",
    "load_calendar",
]

CONTINUOUS = "continuous"
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
Verdict = Literal["early", "on_time", "late"]


def judge(completed_at: datetime, due_at: datetime, due_day_start: datetime) -> Verdict:
    """Decision 766/QĐ-TTg: early before the due day, on time up to the due instant,
    late after it. The one implementation (the workflow passes the due day's start it
    computed on its snapshot)."""
    if completed_at > due_at:
        return "late"
    if completed_at < due_day_start:
        return "early"
    return "on_time"


# A snapshot's horizon: whole calendar years around the instant it is taken at.
# One year back: a snapshot taken in early January must still know December for
# dossiers received before it (elapsed time, recomputed dues); three ahead: past
# the longest deadlines, supplements and extensions included.  Beyond the horizon
# only the weekly rule applies.
SNAPSHOT_YEARS_BEFORE = 1
SNAPSHOT_YEARS_AFTER = 3


class UnknownCalendarError(ValueError):
    """No calendar with that name (built in or under ``calendars/``)."""


class CalendarFileError(ValueError):
    """A calendar yaml that cannot be used; the message reads ``PATH:LINE: what is wrong``."""


def definitions_root() -> Path:
    """The folder holding ``calendars/`` and ``procedures/``."""
    return get_settings().definitions


def available_calendars(root: Path | None = None) -> list[str]:
    folder = (root or definitions_root()) / "calendars"
    names = {p.stem for p in folder.glob("*.yaml") if NAME_RE.match(p.stem)} if folder.is_dir() else set()
    return sorted(names | {CONTINUOUS})


# Loaded calendars keyed by file identity: reuse keeps the per-year holiday cache warm,
# and the mtime in the key makes an edited file load afresh.
_LOADED: dict[tuple[str, int, int], OfficeCalendar] = {}


def load_calendar(name: str, root: Path | None = None) -> WorkingCalendar:
    if name == CONTINUOUS:
        return ContinuousCalendar()
    root = root or definitions_root()
    path = root / "calendars" / f"{name}.yaml"
    if not (isinstance(name, str) and NAME_RE.match(name)) or not path.exists():  # a device: the reader says so
        known = ", ".join(available_calendars(root))
        raise UnknownCalendarError(f"unknown calendar {name!r}; known calendars: {known}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        _LOADED[key] = OfficeCalendar(_read_calendar_file(path))
    return _LOADED[key]


# --------------------------------------------------------------------------- base


class WorkingCalendar(ABC):
    """What every calendar answers; ``load_calendar`` and ``calendar_from_snapshot``
    return one of these."""

    name: str
    timezone: ZoneInfo
    day_length: timedelta

    @abstractmethod
    def is_working_day(self, day: date) -> bool: ...

    @abstractmethod
    def start_of_clock(self, received_at: datetime, receipt_cutoff: time | None = None) -> datetime:
        """When the clock of a dossier received at ``received_at`` starts. ``receipt_cutoff``
        (the procedure's) wins over the calendar's own; received *after* it (not at it),
        the clock starts at the next working day's first period."""

    @abstractmethod
    def add(self, start: datetime, duration: str | timedelta) -> datetime: ...

    @abstractmethod
    def subtract(self, end: datetime, duration: str | timedelta) -> datetime:
        """The latest instant with ``duration`` of working time left before ``end``
        (``elapsed(result, end) == duration``)."""

    @abstractmethod
    def elapsed(self, start: datetime, end: datetime) -> timedelta: ...

    @abstractmethod
    def snapshot(
        self, at: datetime, years_before: int = SNAPSHOT_YEARS_BEFORE, years_after: int = SNAPSHOT_YEARS_AFTER
    ) -> CalendarSnapshot:
        """This calendar as data, exact over whole years around ``at`` (see the module doc)."""

    def duration(self, value: str | timedelta) -> timedelta:
        """Working time for ``"3d"``/``"4h"``/… (``d`` = this calendar's day) or a timedelta."""
        if isinstance(value, timedelta):
            return value
        return parse_duration(value, self.day_length)

    def verdict(self, completed_at: datetime, due_at: datetime) -> Verdict:
        """``early`` means done on an earlier (local) day than the deadline's day."""
        completed_at, due_at = _aware(completed_at, "completed_at"), _aware(due_at, "due_at")
        return judge(completed_at, due_at, self.day_start(due_at))

    def appointment(self, at: datetime) -> datetime:
        """An instant a person names as a new appointment, in working time: itself when it
        is, else the end of that day's last working period (the next working day's when
        that day is off)."""
        return _aware(at, "at")

    def day_start(self, at: datetime) -> datetime:
        """Local midnight of ``at``'s day."""
        return datetime.combine(self._local(at).date(), time.min, tzinfo=self.timezone)

    def _local(self, at: datetime) -> datetime:
        return at.astimezone(self.timezone)

    def _budget(self, duration: str | timedelta) -> timedelta:
        budget = self.duration(duration)
        if budget < timedelta(0):
            raise ValueError(f"duration {duration!r}: must not be negative")
        return budget

    def _day(self, day: date) -> date:
        # A datetime is a date too; take its local date rather than its wall date.
        if isinstance(day, datetime):
            return self._local(_aware(day, "day")).date()
        return day

    def _horizon(self, at: datetime, years_before: int, years_after: int) -> tuple[date, date]:
        if years_before < 0 or years_after < 0:
            raise ValueError("a snapshot's horizon reaches zero or more years before and after, not fewer")
        year = self._local(_aware(at, "at")).year
        if years_before + years_after + 1 > MAX_SNAPSHOT_YEARS:
            raise ValueError(f"a snapshot's horizon covers at most {MAX_SNAPSHOT_YEARS} calendar years")
        return date(year - years_before, 1, 1), date(year + years_after, 12, 31)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


Calendar = WorkingCalendar  # shorter name for annotations


def _aware(at: datetime, what: str) -> datetime:
    if not isinstance(at, datetime):
        raise ValueError(f"{what} must be a timezone-aware datetime, got {at!r}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {at.isoformat()})")
    return at


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (expected an IANA name like Asia/Ho_Chi_Minh)") from exc
    return value


# --------------------------------------------------------------------------- continuous


class ContinuousCalendar(WorkingCalendar):
    """Wall-clock time: every day works, ``1d`` = 24 h, the clock starts on receipt (a
    receipt cut-off has nothing to move it to: every instant is working time)."""

    def __init__(self, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.name = CONTINUOUS
        self.timezone = ZoneInfo(timezone)
        self.day_length = timedelta(hours=24)

    def is_working_day(self, day: date) -> bool:
        self._day(day)  # still reject a naive datetime
        return True

    def start_of_clock(self, received_at: datetime, receipt_cutoff: time | None = None) -> datetime:
        check_cutoff(receipt_cutoff)
        return self._local(_aware(received_at, "received_at"))

    def add(self, start: datetime, duration: str | timedelta) -> datetime:
        start = _aware(start, "start")
        # In UTC: Python subtracts/adds same-tzinfo datetimes as wall time, not as instants.
        return self._local(start.astimezone(UTC) + self._budget(duration))

    def subtract(self, end: datetime, duration: str | timedelta) -> datetime:
        end = _aware(end, "end")
        return self._local(end.astimezone(UTC) - self._budget(duration))

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        return _aware(end, "end").astimezone(UTC) - _aware(start, "start").astimezone(UTC)

    def snapshot(
        self, at: datetime, years_before: int = SNAPSHOT_YEARS_BEFORE, years_after: int = SNAPSHOT_YEARS_AFTER
    ) -> CalendarSnapshot:
        first, last = self._horizon(at, years_before, years_after)
        return CalendarSnapshot(
            name=self.name, kind="continuous", timezone=self.timezone.key, horizon_from=first, horizon_to=last
        )


# --------------------------------------------------------------------------- snapshot


class CalendarSnapshot(BaseModel):
    """A calendar resolved into data, for the workflow input (see the module doc).

    Only the exceptions to the weekly rule are listed, and only inside
    ``horizon_from..horizon_to``: ``days_off`` are weekdays that are off (public
    holidays, substituted days, the yaml's days off), ``working_days`` are weekend
    days that are worked.  Both sorted; a date is in at most one of them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_RE.pattern, max_length=MAX_NAME_CHARS)
    kind: Literal["office", "continuous"]
    timezone: str = Field(max_length=MAX_NAME_CHARS)
    # Tuples, not lists: a frozen model then really cannot change (and hashes).
    # working_periods: every working day outside the seasons; weekday_periods: the
    # weekdays that differ. Snapshots taken before weekday periods, seasons and
    # day_length existed have none of them and mean what they meant.
    working_periods: tuple[Period, ...] = Field(default=(), max_length=MAX_WORKING_PERIODS)
    weekday_periods: tuple[tuple[Weekday, tuple[Period, ...]], ...] = Field(default=(), max_length=7)
    seasons: tuple[Season, ...] = Field(default=(), max_length=MAX_SEASONS)
    day_length: timedelta | None = Field(default=None, description="1d of working time; default: the "
                                         "length of the working periods (every day the same length)")
    weekend: tuple[Weekday, ...] = Field(default=(), max_length=7)
    receipt_cutoff: time | None = None
    horizon_from: date
    horizon_to: date
    days_off: tuple[date, ...] = Field(default=(), max_length=MAX_SNAPSHOT_EXCEPTIONS)
    working_days: tuple[date, ...] = Field(default=(), max_length=MAX_SNAPSHOT_EXCEPTIONS)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("working_periods")
    @classmethod
    def _ordered_periods(cls, periods: tuple[tuple[time, time], ...]) -> tuple[tuple[time, time], ...]:
        check_periods(periods)
        return periods

    @field_validator("weekend")
    @classmethod
    def _canonical_weekend(cls, weekend: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        check_weekend(weekend)
        if list(weekend) != sorted(set(weekend), key=WEEKDAYS.index):
            raise ValueError("weekend days are listed once each, Monday first")
        return weekend

    @field_validator("receipt_cutoff")
    @classmethod
    def _cutoff_has_no_offset(cls, cutoff: time | None) -> time | None:
        return check_cutoff(cutoff)

    @model_validator(mode="after")
    def _consistent(self) -> CalendarSnapshot:
        if self.horizon_from > self.horizon_to:
            raise ValueError("horizon_from must not be after horizon_to")
        if self.horizon_to.year - self.horizon_from.year + 1 > MAX_SNAPSHOT_YEARS:
            raise ValueError(f"the horizon covers at most {MAX_SNAPSHOT_YEARS} calendar years")
        if self.kind == "continuous":
            dated = self.days_off or self.working_days
            hours = self.weekday_periods or self.seasons or self.day_length is not None
            if self.working_periods or self.weekend or self.receipt_cutoff is not None or dated or hours:
                raise ValueError("a continuous calendar has no periods, day length, weekend, cut-off or "
                                 "dated exceptions")
            return self
        self._consistent_hours()
        if len(self.days_off) + len(self.working_days) > MAX_SNAPSHOT_EXCEPTIONS:
            raise ValueError(f"at most {MAX_SNAPSHOT_EXCEPTIONS} dated exceptions (days_off + working_days)")
        if both := set(self.days_off) & set(self.working_days):
            raise ValueError(f"{min(both)} is in both days_off and working_days")
        weekend = {WEEKDAYS.index(d) for d in self.weekend}
        for key, on_weekend in (("days_off", False), ("working_days", True)):
            days: tuple[date, ...] = getattr(self, key)
            if any(a >= b for a, b in pairwise(days)):
                raise ValueError(f"{key} must be sorted, each date once")
            if days and not (self.horizon_from <= days[0] and days[-1] <= self.horizon_to):
                raise ValueError(f"{key} must lie inside the horizon {self.horizon_from}..{self.horizon_to}")
            # Only exceptions to the weekly rule: anything else is redundant (or wrong).
            for day in days:
                if (day.weekday() in weekend) is not on_weekend:
                    kind = "a weekend day" if on_weekend else "a weekday"
                    raise ValueError(f"{key}: {day} is not {kind}")
        return self

    def _consistent_hours(self) -> None:
        if not self.working_periods and not self.seasons:
            raise ValueError("an office calendar needs at least one working period")
        if self.weekday_periods and not self.working_periods:
            raise ValueError("weekday_periods vary the default working_periods: give those too")
        canonical_pairs(self.weekday_periods)
        check_weekday_periods(self.weekday_periods, self.weekend, "weekday_periods")
        for season in self.seasons:
            check_weekday_periods(season.weekday_periods, self.weekend, f"seasons.{season.name}.weekday_periods")
        check_seasons([(s.name, s.first, s.last) for s in self.seasons], has_default=bool(self.working_periods))
        check_day_length(self.day_length, day_lengths(
            schedules(self.working_periods, self.weekday_periods, self.seasons), self.weekend))


# --------------------------------------------------------------------------- office hours


class PeriodCalendar(WorkingCalendar):
    """Working periods on working days: the one implementation of the arithmetic.

    Subclasses only decide which dates are working days (``_decide``):
    ``OfficeCalendar`` from its yaml and the ``holidays`` package,
    ``SnapshotCalendar`` from a ``CalendarSnapshot``. Which periods a working day has
    is decided here: its season's (or the default) schedule, its weekday's periods
    in that schedule, else the schedule's ``working_periods``.
    """

    def __init__(
        self,
        name: str,
        timezone: str,
        working_periods: Sequence[Period],
        weekend: Sequence[Weekday],
        receipt_cutoff: time | None,
        *,
        weekday_periods: Sequence[tuple[Weekday, Sequence[Period]]] = (),
        seasons: Sequence[Season] = (),
        day_length: timedelta | None = None,
    ) -> None:
        self.name = name
        self.timezone = ZoneInfo(timezone)
        self.working_periods = tuple(working_periods)
        self.weekday_periods = tuple((day, tuple(own)) for day, own in weekday_periods)
        self.seasons = tuple(seasons)
        self.receipt_cutoff = check_cutoff(receipt_cutoff)
        self._weekend = frozenset(WEEKDAYS.index(d) for d in weekend)
        self._default = Schedule(self.working_periods, self.weekday_periods)
        self._seasons = tuple((month_day(s.first), month_day(s.last), Schedule(s.working_periods, s.weekday_periods))
                              for s in self.seasons)
        self.day_length = check_day_length(day_length, day_lengths(
            schedules(self.working_periods, self.weekday_periods, self.seasons), weekend))

    @abstractmethod
    def _decide(self, day: date) -> bool:
        """Whether the (local) date ``day`` is a working day."""

    def _by_weekday(self, day: date) -> bool:
        return day.weekday() not in self._weekend

    # -- days

    def is_working_day(self, day: date) -> bool:
        return self._decide(self._day(day))

    def hours_on(self, day: date) -> tuple[Period, ...]:
        """The local working periods of ``day`` were it a working day: its season's (or
        the default) schedule, that schedule's periods for its weekday."""
        day = self._day(day)
        key = (day.month, day.day)
        schedule = next((s for first, last, s in self._seasons if in_season(key, first, last)), self._default)
        return schedule.on(day.weekday())

    def periods_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's working periods as aware instants (empty on a day off)."""
        day = self._day(day)
        if not self.is_working_day(day):
            return []
        return [
            (
                datetime.combine(day, start, tzinfo=self.timezone),
                datetime.combine(day, end, tzinfo=self.timezone),
            )
            for start, end in self.hours_on(day)
        ]

    def is_working_time(self, at: datetime) -> bool:
        """Inside a working period (start included, end excluded)."""
        at = _aware(at, "at")
        return any(start <= at < end for start, end in self.periods_on(at))

    def appointment(self, at: datetime) -> datetime:
        at = _aware(at, "at")
        if self.is_working_time(at):
            return at
        local = self._local(at)
        day = local.date() if self.is_working_day(local.date()) else self.next_working_day(local.date())
        return self.periods_on(day)[-1][1]

    def next_working_day(self, day: date) -> date:
        day = self._day(day) + timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    # -- instants

    def start_of_clock(self, received_at: datetime, receipt_cutoff: time | None = None) -> datetime:
        local = self._local(_aware(received_at, "received_at"))
        cutoff = self.receipt_cutoff if receipt_cutoff is None else check_cutoff(receipt_cutoff)
        # "Received after 15:00": the receipt's own time is compared, so 15:00:00 is in
        # time and 15:00:00.000001 is not, whatever the periods around it.
        if cutoff is None or local.time() <= cutoff:
            for start, end in self.periods_on(local.date()):
                if local < end:
                    return max(local, start)
        return self.periods_on(self.next_working_day(local.date()))[0][0]

    def add(self, start: datetime, duration: str | timedelta) -> datetime:
        remaining = self._budget(duration)
        cursor = _aware(start, "start").astimezone(UTC)
        if not remaining:
            return self._local(cursor)
        day = self._local(cursor).date()
        # Day by day, period by period: cheap even for budgets of hundreds of days.
        while True:
            for period_start, period_end in self._utc_periods(day):
                if period_end <= cursor:
                    continue
                begins = max(period_start, cursor)
                available = period_end - begins
                if remaining <= available:
                    # `<=`: a budget that ends exactly at a period's end stays there.
                    return self._local(begins + remaining)
                remaining -= available
            day += timedelta(days=1)

    def subtract(self, end: datetime, duration: str | timedelta) -> datetime:
        remaining = self._budget(duration)
        cursor = _aware(end, "end").astimezone(UTC)
        if not remaining:
            return self._local(cursor)
        day = self._local(cursor).date()
        # add() backwards: day by day, period by period, latest first.
        while True:
            for period_start, period_end in reversed(self._utc_periods(day)):
                if period_start >= cursor:
                    continue
                ends = min(period_end, cursor)
                available = ends - period_start
                if remaining <= available:
                    # `<=`: a budget that runs out exactly at a period's start stays there,
                    # the latest instant with that much working time left.
                    return self._local(ends - remaining)
                remaining -= available
            day -= timedelta(days=1)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        start = _aware(start, "start").astimezone(UTC)
        end = _aware(end, "end").astimezone(UTC)
        if end < start:
            return -self.elapsed(end, start)
        total = timedelta(0)
        day, last = self._local(start).date(), self._local(end).date()
        while day <= last:
            for period_start, period_end in self._utc_periods(day):
                overlap = min(period_end, end) - max(period_start, start)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def _utc_periods(self, day: date) -> list[tuple[datetime, datetime]]:
        # UTC so that arithmetic is on instants even in zones with DST.
        return [(s.astimezone(UTC), e.astimezone(UTC)) for s, e in self.periods_on(day)]

    # -- as data

    def snapshot(
        self, at: datetime, years_before: int = SNAPSHOT_YEARS_BEFORE, years_after: int = SNAPSHOT_YEARS_AFTER
    ) -> CalendarSnapshot:
        first, last = self._horizon(at, years_before, years_after)
        days_off: list[date] = []
        working_days: list[date] = []
        # Ask the calendar itself about every date: the snapshot then agrees with it
        # by construction, whatever mix of package, yaml and weekday rule decided.
        day = first
        while day <= last:
            by_weekday = self._by_weekday(day)
            if self._decide(day) is not by_weekday:
                (days_off if by_weekday else working_days).append(day)
            day += timedelta(days=1)
        return CalendarSnapshot(
            name=self.name,
            kind="office",
            timezone=self.timezone.key,
            working_periods=self.working_periods,
            weekday_periods=self.weekday_periods,
            seasons=self.seasons,
            day_length=self.day_length,
            weekend=tuple(d for i, d in enumerate(WEEKDAYS) if i in self._weekend),
            receipt_cutoff=self.receipt_cutoff,
            horizon_from=first,
            horizon_to=last,
            days_off=tuple(days_off),
            working_days=tuple(working_days),
        )


class SnapshotCalendar(PeriodCalendar):
    """An office calendar rebuilt from a ``CalendarSnapshot``: no file, no ``holidays``.

    Exact inside the snapshot's horizon; outside it, the weekly rule alone."""

    def __init__(self, snapshot: CalendarSnapshot) -> None:
        if snapshot.kind != "office":
            raise ValueError(f"snapshot {snapshot.name!r} is {snapshot.kind}, not office hours")
        super().__init__(
            snapshot.name, snapshot.timezone, snapshot.working_periods, snapshot.weekend, snapshot.receipt_cutoff,
            weekday_periods=snapshot.weekday_periods, seasons=snapshot.seasons, day_length=snapshot.day_length,
        )
        self.horizon = (snapshot.horizon_from, snapshot.horizon_to)
        self._days_off = frozenset(snapshot.days_off)
        self._working_days = frozenset(snapshot.working_days)

    def _decide(self, day: date) -> bool:
        if day in self._days_off:
            return False
        if day in self._working_days:
            return True
        return self._by_weekday(day)


def calendar_from_snapshot(snapshot: CalendarSnapshot) -> WorkingCalendar:
    """The calendar a snapshot describes; safe in Temporal workflow code (see the module doc)."""
    if snapshot.kind == "continuous":
        return ContinuousCalendar(snapshot.timezone)
    return SnapshotCalendar(snapshot)


# --------------------------------------------------------------------------- file-based


class DayEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    reason: str = Field(min_length=1)


class CalendarSpec(BaseModel):
    """The shape of ``calendars/<name>.yaml``.

    ``working_periods`` hold for every working day (the simple form). ``weekday_periods``
    give some weekdays their own (``sat: [["07:30", "11:30"]]`` with ``sat`` out of
    ``weekend``). ``seasons`` replace both over MM-DD ranges; ``working_periods`` then
    hold for the days no season covers, and may be left out when the seasons cover
    every day of the year. ``day_length`` is ``1d`` of working time, needed only when
    working days differ in length.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Order matters: validators of later fields read earlier ones (weekend before the periods).
    name: str = Field(pattern=NAME_RE.pattern)
    timezone: str
    country: str | None = Field(
        default=None, description="ISO code for the `holidays` package: public holidays + substituted days"
    )
    weekend: list[Weekday] = Field(default_factory=lambda: list[Weekday](["sat", "sun"]))
    working_periods: list[Period] | None = Field(default=None, min_length=1, max_length=MAX_WORKING_PERIODS)
    weekday_periods: dict[Weekday, list[Period]] = Field(default_factory=dict)
    seasons: list[SeasonSpec] = Field(default_factory=list, max_length=MAX_SEASONS)
    day_length: str | None = Field(default=None, description="1d of working time, e.g. 8h (hours or minutes); "
                                   "default: the length of every working day, when they are all the same")
    receipt_cutoff: time | None = Field(
        default=None, description="received after this local time (not at it): the clock starts the next working "
                                  "day; for every procedure on this calendar that does not set its own"
    )
    days_off: list[DayEntry] = Field(default_factory=list)
    working_days: list[DayEntry] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value not in holidays.list_supported_countries():
            raise ValueError(f"country {value!r} is not supported by the `holidays` package")
        return value

    @field_validator("weekend")
    @classmethod
    def _some_weekdays(cls, weekend: list[Weekday]) -> list[Weekday]:
        check_weekend(weekend)
        return weekend

    @field_validator("working_periods")
    @classmethod
    def _ordered_periods(cls, periods: list[Period] | None) -> list[Period] | None:
        if periods is not None:
            check_periods(periods)
        return periods

    @field_validator("weekday_periods")
    @classmethod
    def _weekday_periods(cls, by_weekday: dict[Weekday, list[Period]],
                         info: ValidationInfo) -> dict[Weekday, list[Period]]:
        check_weekday_periods(by_weekday.items(), info.data.get("weekend", ()))
        return by_weekday

    @field_validator("seasons")
    @classmethod
    def _seasons_cover_the_year(cls, seasons: list[SeasonSpec], info: ValidationInfo) -> list[SeasonSpec]:
        for season in seasons:
            check_weekday_periods(season.weekday_periods.items(), info.data.get("weekend", ()),
                                   f"{season.name}.weekday_periods")
        if seasons:
            check_seasons([(s.name, s.first, s.last) for s in seasons],
                           has_default=info.data.get("working_periods") is not None)
        return seasons

    @field_validator("day_length")
    @classmethod
    def _day_length_in_hours(cls, value: str | None) -> str | None:
        if value is not None and not (is_duration(value) and value.strip()[-1] in "hms"):
            raise ValueError(f"{value!r} is not a day length; expected hours or minutes, e.g. 8h or 450m")
        return value

    @field_validator("receipt_cutoff")
    @classmethod
    def _cutoff_has_no_offset(cls, cutoff: time | None) -> time | None:
        return check_cutoff(cutoff)

    @model_validator(mode="after")
    def _hours_are_complete(self) -> CalendarSpec:
        if self.working_periods is None and not self.seasons:
            raise ValueError("working_periods: required (or seasons covering every day of the year)")
        if self.weekday_periods and self.working_periods is None:
            raise ValueError("weekday_periods vary the default working_periods: give those too")
        self.day_length_value()  # working days of different lengths need an explicit day_length
        return self

    def day_length_value(self) -> timedelta:
        given = parse_duration(self.day_length, timedelta(0)) if self.day_length is not None else None
        weekly = schedules(self.working_periods, self.weekday_periods.items(), self.seasons)
        return check_day_length(given, day_lengths(weekly, self.weekend))


class OfficeCalendar(PeriodCalendar):
    """Office hours on working days, from ``calendars/<name>.yaml`` (``vn-gov``, provinces)."""

    def __init__(self, spec: CalendarSpec) -> None:
        super().__init__(
            spec.name, spec.timezone, spec.working_periods or (), spec.weekend, spec.receipt_cutoff,
            weekday_periods=weekday_pairs(spec.weekday_periods), seasons=[s.as_season() for s in spec.seasons],
            day_length=spec.day_length_value(),
        )
        self.spec = spec
        self._days_off = frozenset(e.date for e in spec.days_off)
        self._working_days = frozenset(e.date for e in spec.working_days)
        # year -> (holidays, substituted working weekend days) from the `holidays` package
        self._package_days: dict[int, tuple[frozenset[date], frozenset[date]]] = {}

    def _decide(self, day: date) -> bool:
        if day in self._working_days:
            return True
        if day in self._days_off:
            return False
        package_off, package_working = self._package_year(day.year)
        if day in package_off:
            return False
        if day in package_working:
            return True
        return self._by_weekday(day)

    def _package_year(self, year: int) -> tuple[frozenset[date], frozenset[date]]:
        cached = self._package_days.get(year)
        if cached is None:
            if self.spec.country is None:
                cached = (frozenset(), frozenset())
            else:
                # Neighbouring years too: a substitution may cross New Year (e.g. a
                # December Saturday worked for a day off on 2 January).
                found = holidays.country_holidays(self.spec.country, years=range(year - 1, year + 2))
                cached = (
                    frozenset(d for d in found if d.year == year),
                    frozenset(d for d in getattr(found, "weekend_workdays", ()) if d.year == year),
                )
            self._package_days[year] = cached
        return cached


# --------------------------------------------------------------------------- yaml reading


class _TextDates(RoundTripConstructor):
    """Leaves ``2026-01-02`` as text: ruamel would raise a bare, line-less ValueError on
    ``2026-13-10``, while pydantic parses the text and we can point at the line."""


_TextDates.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def _read_calendar_file(path: Path) -> CalendarSpec:
    source = read_bounded(path)
    if not isinstance(source, tuple):
        raise CalendarFileError(str(source))
    if too_big := yaml_too_big(path, source[1]):
        raise CalendarFileError(str(too_big))
    yaml = YAML(typ="rt")
    yaml.Constructor = _TextDates
    try:
        raw = yaml.load(source[1])
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise CalendarFileError(f"{path}:{line}: invalid YAML: {exc.problem or exc}") from exc
    except YAMLError as exc:
        raise CalendarFileError(f"{path}:1: invalid YAML: {exc}") from exc
    if not isinstance(raw, CommentedMap):
        raise CalendarFileError(f"{path}:1: a calendar file is a mapping (name:, timezone:, working_periods:, ...)")
    try:
        spec = CalendarSpec.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}:{line_of(raw, err['loc'])}: {_describe(err)}" for err in exc.errors()]
        raise CalendarFileError("\n".join(lines)) from exc
    if spec.name != path.stem:
        raise CalendarFileError(f"{path}:{line_of(raw, ('name',))}: name {spec.name!r} must match the file name "
                                f"{path.stem!r}")
    _check_overrides(path, raw, spec)
    return spec


def _check_overrides(path: Path, raw: CommentedMap, spec: CalendarSpec) -> None:
    """A date may appear once across ``days_off`` and ``working_days``."""
    seen: dict[date, str] = {}
    for key in ("days_off", "working_days"):
        for index, entry in enumerate(getattr(spec, key)):
            where = seen.get(entry.date)
            if where is not None:
                line = line_of(raw, (key, index))
                raise CalendarFileError(f"{path}:{line}: {entry.date} is already listed in {where}")
            seen[entry.date] = key




def _describe(err: Any) -> str:
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    if err["type"] == "extra_forbidden":
        loc = err["loc"]
        if len(loc) == 1:
            known = ", ".join(CalendarSpec.model_fields)
        else:
            known = ", ".join(SeasonSpec.model_fields) if loc[0] == "seasons" else "date, reason"
        return f"unknown key {loc[-1]!r} (expected one of: {known})"
    if err["type"] == "missing":
        return f"{where}: required"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message

