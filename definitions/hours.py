"""Working hours as data: which periods of the day are working time, per weekday and per season.

A calendar file (``calendars/<name>.yaml``) gives ``working_periods`` for every
working day (the simple form); ``weekday_periods`` give some weekdays their own (a
Saturday-morning desk); ``seasons`` give parts of the year (summer/winter hours, as
``first``..``last`` MM-DD ranges, both included, wrapping over New Year when ``last``
comes before ``first``) a complete weekly schedule of their own. Checked here, with
errors that say what was expected: periods in order and not overlapping, weekend days
without periods, each day of the year in one season at most and, without default
``working_periods``, in exactly one; working days of different lengths need an
explicit ``day_length`` (what ``1d`` of working time is).

Pure data and functions: no I/O, no clock; ``definitions.calendar`` does the arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from definitions.limits import MAX_WORKING_PERIODS

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Period = tuple[time, time]  # a working period: local wall times, start included, end excluded
# Calendar (and season) names become file names: keep them to a safe, boring alphabet.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAX_NAME_CHARS = 64


def check_periods(periods: Sequence[tuple[time, time]]) -> None:
    previous_end: time | None = None
    for start, end in periods:
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("working period times are local wall times: no offset")
        if start >= end:
            raise ValueError(f"working period {start:%H:%M}-{end:%H:%M} must end after it starts")
        if previous_end is not None and start < previous_end:
            raise ValueError("working periods must be in order and must not overlap")
        previous_end = end


def check_weekend(weekend: Sequence[Weekday]) -> None:
    if len(set(weekend)) == 7:
        raise ValueError("a calendar needs at least one working weekday")


def check_cutoff(cutoff: time | None) -> time | None:
    if cutoff is not None and cutoff.tzinfo is not None:
        raise ValueError("receipt_cutoff is a local wall time: no offset")
    return cutoff


def check_weekday_periods(by_weekday: Iterable[tuple[Weekday, Sequence[Period]]], weekend: Collection[Weekday],
                          where: str = "") -> None:
    """Each weekday's own periods: a working weekday, at least one period, in order.
    Messages start with ``where.day`` (``day`` alone without ``where``)."""
    for day, periods in by_weekday:
        at = f"{where}.{day}" if where else day
        if day in weekend:
            raise ValueError(f"{at}: {day} is a weekend day, it has no working periods "
                             f"(take it out of `weekend` to give it some)")
        if not periods:
            raise ValueError(f"{at}: expected at least one working period "
                             f"(a weekday without work belongs in `weekend`)")
        if len(periods) > MAX_WORKING_PERIODS:
            raise ValueError(f"{at}: at most {MAX_WORKING_PERIODS} working periods (MAX_WORKING_PERIODS)")
        try:
            check_periods(periods)
        except ValueError as exc:
            raise ValueError(f"{at}: {exc}") from None


# Seasons are MM-DD ranges; a leap year's days, so that 02-29 is one of them.
_MONTH_DAY_RE = re.compile(r"^\d\d-\d\d$")
_YEAR_DAYS: tuple[tuple[int, int], ...] = tuple(
    (d.month, d.day) for d in (date(2024, 1, 1) + timedelta(days=i) for i in range(366)))


def _check_month_day(value: str) -> str:
    if not (isinstance(value, str) and _MONTH_DAY_RE.match(value)):
        raise ValueError(f"{value!r} is not a month and day; expected MM-DD, e.g. \"04-15\" (quoted)")
    try:
        date(2024, int(value[:2]), int(value[3:]))
    except ValueError:
        raise ValueError(f"{value!r} is not a day of the year; expected MM-DD, e.g. \"04-15\"") from None
    return value


MonthDay = Annotated[str, AfterValidator(_check_month_day)]


def month_day(value: str) -> tuple[int, int]:
    return int(value[:2]), int(value[3:])


def in_season(day: tuple[int, int], first: tuple[int, int], last: tuple[int, int]) -> bool:
    """``first``..``last`` both included; ``last`` before ``first`` wraps over New Year."""
    return first <= day <= last if first <= last else (day >= first or day <= last)


def _spans(days: Sequence[tuple[int, int]]) -> str:
    """Days of the year as ranges: ``10-15..12-31, 01-01..04-14``."""
    index = {day: i for i, day in enumerate(_YEAR_DAYS)}
    runs: list[list[tuple[int, int]]] = []
    for day in days:
        if runs and index[day] == index[runs[-1][-1]] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    shown = [f"{r[0][0]:02d}-{r[0][1]:02d}" + (f"..{r[-1][0]:02d}-{r[-1][1]:02d}" if len(r) > 1 else "")
             for r in runs[:3]]
    return ", ".join(shown) + (", ..." if len(runs) > 3 else "")


def check_seasons(seasons: Sequence[tuple[str, str, str]], has_default: bool) -> None:
    """``(name, first, last)`` per season: no day of the year in two seasons, and every
    day in one unless there are default working periods for the others (and then some
    day must be left to them)."""
    names = [name for name, _, _ in seasons]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"season {twice!r} is named twice; each season has its own name")
    bounds = [(name, month_day(first), month_day(last)) for name, first, last in seasons]
    uncovered: list[tuple[int, int]] = []
    for day in _YEAR_DAYS:
        inside = [name for name, first, last in bounds if in_season(day, first, last)]
        if len(inside) > 1:
            raise ValueError(f"seasons {inside[0]!r} and {inside[1]!r} both cover {day[0]:02d}-{day[1]:02d}; "
                             "expected each day of the year in one season at most")
        if not inside:
            uncovered.append(day)
    if uncovered and not has_default:
        raise ValueError(f"no season covers {_spans(uncovered)} and there are no default `working_periods` for "
                         "those days; expected seasons covering every day of the year (02-29 too) exactly once, "
                         "or default working_periods")
    if seasons and not uncovered and has_default:
        raise ValueError("the seasons cover every day of the year, so the default `working_periods` / "
                         "`weekday_periods` would never apply; remove them (or leave days to them)")


def _period_hours(periods: Sequence[Period]) -> timedelta:
    return sum((datetime.combine(date.min, end) - datetime.combine(date.min, start) for start, end in periods),
               timedelta(0))


def day_lengths(schedules: Iterable[tuple[str, Sequence[Period], Mapping[Weekday, Sequence[Period]]]],
                 weekend: Collection[Weekday]) -> dict[timedelta, list[str]]:
    """How long each kind of working day is: ``{8h: ["mon-fri"], 4h: ["sat"]}``. A
    schedule's default periods count for its working weekdays without their own, and
    for weekend days worked by exception."""
    lengths: dict[timedelta, list[str]] = {}
    for label, periods, by_weekday in schedules:
        prefix = f"{label} " if label else ""
        if periods:
            plain = [d for d in WEEKDAYS if d not in weekend and d not in by_weekday]
            lengths.setdefault(_period_hours(periods), []).append(prefix + (",".join(plain) or "worked weekend days"))
        for day, own in by_weekday.items():
            lengths.setdefault(_period_hours(own), []).append(prefix + day)
    return lengths


def check_day_length(value: timedelta | None, lengths: Mapping[timedelta, Sequence[str]]) -> timedelta:
    """The day length a calendar counts ``1d`` in: given, or the one length every day has."""
    if value is not None:
        if not timedelta(0) < value <= timedelta(hours=24):
            raise ValueError(f"day_length {value} must be more than 0 and at most 24 hours")
        return value
    if not lengths:
        raise ValueError("an office calendar needs at least one working period")
    if len(lengths) != 1:
        shown = "; ".join(f"{_hours(length)} on {', '.join(days)}" for length, days in sorted(lengths.items()))
        raise ValueError(f"working days differ in length ({shown}): say what 1d of working time is, "
                         f"e.g. day_length: 8h")
    return next(iter(lengths))


def _hours(length: timedelta) -> str:
    minutes = int(length.total_seconds() // 60)
    return f"{minutes // 60}h" + (f"{minutes % 60:02d}" if minutes % 60 else "")


def weekday_pairs(by_weekday: Mapping[Weekday, Sequence[Period]]) -> tuple[tuple[Weekday, tuple[Period, ...]], ...]:
    """Canonical form (Monday first) of per-weekday periods, for a snapshot."""
    return tuple((day, tuple(by_weekday[day])) for day in WEEKDAYS if day in by_weekday)


class Season(BaseModel):
    """Working hours for part of every year, ``first``..``last`` (MM-DD, both included;
    ``last`` before ``first`` wraps over New Year): a complete weekly schedule, its
    ``working_periods`` for every working day but the weekdays with their own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_RE.pattern, max_length=MAX_NAME_CHARS)
    first: MonthDay
    last: MonthDay
    working_periods: tuple[Period, ...] = Field(min_length=1, max_length=MAX_WORKING_PERIODS)
    weekday_periods: tuple[tuple[Weekday, tuple[Period, ...]], ...] = Field(default=(), max_length=7)

    @field_validator("working_periods")
    @classmethod
    def _ordered_periods(cls, periods: tuple[Period, ...]) -> tuple[Period, ...]:
        check_periods(periods)
        return periods

    @field_validator("weekday_periods")
    @classmethod
    def _canonical_weekdays(
        cls, pairs: tuple[tuple[Weekday, tuple[Period, ...]], ...]
    ) -> tuple[tuple[Weekday, tuple[Period, ...]], ...]:
        canonical_pairs(pairs)
        check_weekday_periods(pairs, weekend=())
        return pairs


def canonical_pairs(pairs: Sequence[tuple[Weekday, Any]]) -> None:
    days = [day for day, _ in pairs]
    if days != sorted(set(days), key=WEEKDAYS.index):
        raise ValueError("weekday_periods list each weekday once, Monday first")


def schedules(working_periods: Sequence[Period] | None, weekday_periods: Iterable[tuple[Weekday, Sequence[Period]]],
               seasons: Iterable[Season | SeasonSpec]) -> list[tuple[str, Sequence[Period], dict[Weekday, Any]]]:
    """Every weekly schedule of a calendar: ``(label, default periods, per weekday)``."""
    top = [("", working_periods, dict(weekday_periods))] if working_periods else []
    return top + [(f"{s.name}:", s.working_periods, dict(_items(s.weekday_periods))) for s in seasons]


def _items(by_weekday: Mapping[Weekday, Sequence[Period]] | Iterable[tuple[Weekday, Sequence[Period]]],
           ) -> Iterable[tuple[Weekday, Sequence[Period]]]:
    return by_weekday.items() if isinstance(by_weekday, Mapping) else by_weekday


class Schedule:
    """One weekly schedule: the default periods, and the weekdays (0 = Monday) that differ."""

    __slots__ = ("by_weekday", "periods")

    def __init__(self, periods: Sequence[Period], by_weekday: Iterable[tuple[Weekday, Sequence[Period]]]) -> None:
        self.periods = tuple(periods)
        self.by_weekday = {WEEKDAYS.index(day): tuple(own) for day, own in by_weekday}

    def on(self, weekday: int) -> tuple[Period, ...]:
        return self.by_weekday.get(weekday, self.periods)


class SeasonSpec(BaseModel):
    """A season in ``calendars/<name>.yaml``: ``first``..``last`` (MM-DD, both included,
    may wrap over New Year), with its own ``working_periods`` and ``weekday_periods``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_RE.pattern, max_length=MAX_NAME_CHARS)
    first: MonthDay
    last: MonthDay
    working_periods: list[Period] = Field(min_length=1, max_length=MAX_WORKING_PERIODS)
    weekday_periods: dict[Weekday, list[Period]] = Field(default_factory=dict)

    @field_validator("working_periods")
    @classmethod
    def _ordered_periods(cls, periods: list[Period]) -> list[Period]:
        check_periods(periods)
        return periods

    def as_season(self) -> Season:
        return Season(name=self.name, first=self.first, last=self.last, working_periods=tuple(self.working_periods),
                      weekday_periods=weekday_pairs(self.weekday_periods))
