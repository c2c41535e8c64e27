"""Calendar snapshots: the calendar as data for the workflow, and the proof that the
calendar rebuilt from one answers exactly as the file calendar inside its horizon,
and as the weekly rule alone (no holidays) outside it."""

from __future__ import annotations

import inspect
import sys
import time as clock
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import definitions.calendar as calendar_module
import definitions.hours as hours_module
from definitions.calendar import (
    SNAPSHOT_YEARS_AFTER,
    SNAPSHOT_YEARS_BEFORE,
    CalendarSnapshot,
    CalendarSpec,
    ContinuousCalendar,
    OfficeCalendar,
    PeriodCalendar,
    Season,
    SnapshotCalendar,
    WorkingCalendar,
    calendar_from_snapshot,
    load_calendar,
)
from definitions.durations import parse_duration
from definitions.limits import (
    MAX_SEASONS,
    MAX_SNAPSHOT_EXCEPTIONS,
    MAX_SNAPSHOT_JSON_BYTES,
    MAX_WORKING_PERIODS,
)
from tests.definitions.calendar_workflow import Answer, CalendarProbeWorkflow, Probe

VN = ZoneInfo("Asia/Ho_Chi_Minh")
# What vn-gov's snapshot may weigh in a workflow input (it is about 1.2 KB).
VN_GOV_SNAPSHOT_BYTES = 1536
CUTOFF = time(15)  # a procedure's receipt cut-off (vn-gov itself has none)

FILE = load_calendar("vn-gov")
assert isinstance(FILE, OfficeCalendar)
TAKEN_AT = datetime(2026, 3, 1, 9, tzinfo=VN)
SNAP = FILE.snapshot(TAKEN_AT)
CAL = calendar_from_snapshot(SNAP)
# Horizon 2025-01-01 .. 2029-12-31; these instants are its local edges.
H0 = datetime.combine(SNAP.horizon_from, time.min, tzinfo=VN)
H1 = datetime.combine(SNAP.horizon_to + timedelta(days=1), time.min, tzinfo=VN)
# vn-gov without `holidays` and without its yaml dates: what the snapshot knows outside.
NO_HOLIDAYS = OfficeCalendar(
    CalendarSpec(
        name="vn-gov",
        timezone=FILE.spec.timezone,
        working_periods=FILE.spec.working_periods,
        weekend=FILE.spec.weekend,
        receipt_cutoff=FILE.spec.receipt_cutoff,
    )
)


class Hybrid(PeriodCalendar):
    """The file calendar inside the horizon, the weekly rule outside: the snapshot's
    contract, decided date by date from the two calendars above."""

    def __init__(self) -> None:
        super().__init__("vn-gov", "Asia/Ho_Chi_Minh", FILE.working_periods, FILE.spec.weekend, FILE.receipt_cutoff)

    def _decide(self, day: date) -> bool:
        inside = SNAP.horizon_from <= day <= SNAP.horizon_to
        return FILE.is_working_day(day) if inside else NO_HOLIDAYS.is_working_day(day)


HYBRID = Hybrid()


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=VN)


# --------------------------------------------------------------------------- strategies

ZONES = st.sampled_from([VN, UTC, timezone(timedelta(hours=-5)), ZoneInfo("Europe/Paris")])


def instants_between(first: datetime, last: datetime) -> st.SearchStrategy[datetime]:
    """Instants from ``first`` to ``last`` (local wall times), seen from various zones."""
    naive = st.datetimes(min_value=first.replace(tzinfo=None), max_value=last.replace(tzinfo=None))
    return st.builds(lambda wall, zone: wall.replace(tzinfo=VN).astimezone(zone), naive, ZONES)


@st.composite
def around_cutoff(draw: st.DrawFn) -> datetime:
    """A few minutes either side of 15:00 (and of the periods' ends) on a random day."""
    day = draw(st.dates(min_value=date(2025, 1, 1), max_value=date(2029, 9, 1)))
    edge = draw(st.sampled_from([time(15), time(11, 30), time(17), time(7, 30), time(13)]))
    offset = timedelta(microseconds=draw(st.integers(-300_000_000, 300_000_000)))
    return (datetime.combine(day, edge, tzinfo=VN) + offset).astimezone(draw(ZONES))


# The interesting stretches: Tết 2026 and 2027 (lunar, from the package), the yaml's
# swap (2026-01-02 off, Saturday 2026-01-10 worked), a package swap (2026-08-22 worked,
# 2026-08-31 off), and the whole horizon.
INSIDE = st.one_of(
    instants_between(at(2026, 2, 5), at(2026, 3, 1)),
    instants_between(at(2027, 1, 25), at(2027, 2, 20)),
    instants_between(at(2025, 12, 26), at(2026, 1, 16)),
    instants_between(at(2026, 8, 15), at(2026, 9, 5)),
    around_cutoff(),
    instants_between(H0, at(2029, 9, 1)),  # leaves room for 60 working days before the edge
)
# Either side of the edges, and well beyond them.
EDGES = st.one_of(
    instants_between(at(2024, 10, 1), at(2025, 1, 15)),
    instants_between(at(2029, 9, 1), at(2030, 1, 15)),
    instants_between(at(2029, 12, 31, 14), at(2030, 1, 1, 9)),
    instants_between(at(2021, 1, 1), at(2034, 12, 31)),
)


@st.composite
def budgets(draw: st.DrawFn, day: timedelta = timedelta(hours=8)) -> str | timedelta:
    """Up to about 60 working days: exact microseconds, or text with fractional days."""
    kind = draw(st.sampled_from(["micro", "days", "hours", "minutes"]))
    if kind == "micro":
        return timedelta(microseconds=draw(st.integers(0, int(60 * day.total_seconds() * 1_000_000))))
    if kind == "days":
        return f"{draw(st.integers(0, 59))}.{draw(st.integers(0, 999))}d"
    if kind == "hours":
        return f"{draw(st.integers(0, 480))}h"
    return f"{draw(st.integers(0, 28_800))}m"


MANY = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split_elapsed(start: datetime, end: datetime) -> timedelta:
    """Working time from ``start`` to ``end`` (start <= end), counted by the file
    calendar inside the horizon and by the holiday-free one outside it."""
    total = timedelta(0)
    for cal, lo, hi in ((NO_HOLIDAYS, None, H0), (FILE, H0, H1), (NO_HOLIDAYS, H1, None)):
        a = start if lo is None else max(start, lo)
        b = end if hi is None else min(end, hi)
        if a < b:
            total += cal.elapsed(a, b)
    return total


# --------------------------------------------------------------------------- the snapshot itself


def test_vn_gov_snapshot_shape() -> None:
    assert isinstance(CAL, SnapshotCalendar)
    assert (SNAP.name, SNAP.kind, SNAP.timezone) == ("vn-gov", "office", "Asia/Ho_Chi_Minh")
    assert SNAP.working_periods == ((time(7, 30), time(11, 30)), (time(13), time(17)))
    assert (SNAP.weekend, SNAP.receipt_cutoff) == (("sat", "sun"), None)  # the cut-off is the procedure's
    assert (SNAP.weekday_periods, SNAP.seasons, SNAP.day_length) == ((), (), timedelta(hours=8))
    assert (SNAP.horizon_from, SNAP.horizon_to) == (
        date(2026 - SNAPSHOT_YEARS_BEFORE, 1, 1),
        date(2026 + SNAPSHOT_YEARS_AFTER, 12, 31),
    )
    # Exceptions only: weekday holidays and worked weekend days, never a plain weekend.
    assert date(2026, 1, 2) in SNAP.days_off  # yaml
    assert date(2026, 1, 10) in SNAP.working_days  # yaml
    assert date(2026, 8, 22) in SNAP.working_days  # package
    assert {date(2026, 2, d) for d in range(16, 21)} <= set(SNAP.days_off)  # Tết 2026
    assert date(2027, 2, 6) not in SNAP.days_off  # Tết 2027 on a Saturday: off anyway
    assert date(2026, 4, 26) not in SNAP.days_off  # Hùng Kings' Sunday; Monday 27th is
    assert date(2026, 4, 27) in SNAP.days_off
    assert (CAL.name, CAL.timezone, CAL.day_length) == (FILE.name, FILE.timezone, FILE.day_length)


def test_horizon_follows_the_local_year() -> None:
    # 31 Dec 2025 18:00 UTC is already 1 January 2026 in Hà Nội.
    snap = FILE.snapshot(datetime(2025, 12, 31, 18, tzinfo=UTC))
    assert (snap.horizon_from, snap.horizon_to) == (date(2025, 1, 1), date(2029, 12, 31))
    snap = FILE.snapshot(TAKEN_AT, years_before=0, years_after=0)
    assert (snap.horizon_from, snap.horizon_to) == (date(2026, 1, 1), date(2026, 12, 31))
    assert snap.days_off == tuple(d for d in SNAP.days_off if d.year == 2026)


def test_snapshot_json_round_trip_and_size(capsys: pytest.CaptureFixture[str]) -> None:
    converter = pydantic_data_converter.payload_converter
    payloads = converter.to_payloads([SNAP])
    assert converter.from_payloads(payloads, [CalendarSnapshot]) == [SNAP]
    assert CalendarSnapshot.model_validate_json(SNAP.model_dump_json()) == SNAP
    size = len(payloads[0].data)
    with capsys.disabled():
        print(f"\nvn-gov snapshot: {size} bytes of JSON, {len(SNAP.days_off)} days off, "
              f"{len(SNAP.working_days)} worked weekend days, {SNAP.horizon_from}..{SNAP.horizon_to}")
    assert size < VN_GOV_SNAPSHOT_BYTES


def test_a_snapshot_at_every_bound_stays_under_the_json_bound() -> None:
    weekdays = [date(2025, 1, 1) + timedelta(days=i) for i in range(3 * MAX_SNAPSHOT_EXCEPTIONS)]
    weekdays = [d for d in weekdays if d.weekday() < 5][:MAX_SNAPSHOT_EXCEPTIONS]
    periods = tuple((time(h, 0, 0, 1), time(h, 59, 59, 999_999)) for h in range(MAX_WORKING_PERIODS))
    # Every weekday its own periods (Sunday is the weekend), in the default and in every season.
    own = tuple((day, periods) for day in ("mon", "tue", "wed", "thu", "fri", "sat"))
    quarters = [("01-01", "03-31"), ("04-01", "06-30"), ("07-01", "09-30"), ("10-01", "12-30")]
    seasons = tuple(Season(name="s" * 63 + str(i), first=first, last=last, working_periods=periods,
                           weekday_periods=own) for i, (first, last) in enumerate(quarters[:MAX_SEASONS]))
    snap = CalendarSnapshot(
        name="x" * 64, kind="office", timezone="America/Argentina/ComodRivadavia", working_periods=periods,
        weekday_periods=own, seasons=seasons, day_length=timedelta(hours=7, microseconds=1), weekend=("sun",),
        receipt_cutoff=time(15, 0, 0, 1), horizon_from=date(2025, 1, 1), horizon_to=date(2034, 12, 31),
        days_off=tuple(weekdays),
    )
    assert len(snap.model_dump_json()) < MAX_SNAPSHOT_JSON_BYTES


def good(**changes: object) -> dict[str, object]:
    return {**SNAP.model_dump(), **changes}


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"days_off": (date(2026, 1, 2), date(2026, 1, 1))}, "days_off must be sorted"),
        ({"days_off": (date(2026, 1, 2), date(2026, 1, 2))}, "days_off must be sorted"),
        ({"days_off": (date(2024, 12, 31),)}, "inside the horizon"),
        ({"working_days": (date(2030, 1, 5),)}, "inside the horizon"),
        ({"days_off": (date(2026, 1, 3),), "working_days": (date(2026, 1, 3),)}, "in both"),
        ({"days_off": (date(2026, 1, 3),)}, "is not a weekday"),  # a Saturday: off anyway
        ({"working_days": (date(2026, 1, 5),)}, "is not a weekend day"),  # a Monday: worked anyway
        ({"days_off": tuple(date(2026, 1, 1) + timedelta(i) for i in range(MAX_SNAPSHOT_EXCEPTIONS + 1))},
         f"at most {MAX_SNAPSHOT_EXCEPTIONS}"),
        ({"horizon_from": date(2030, 1, 1)}, "must not be after"),
        ({"horizon_from": date(2000, 1, 1)}, "at most"),
        ({"working_periods": ()}, "at least one working period"),
        ({"working_periods": (("13:00", "17:00"), ("07:30", "11:30"))}, "must not overlap"),
        ({"weekend": ("sun", "sat")}, "Monday first"),
        ({"weekend": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, "at least one working weekday"),
        ({"timezone": "Asia/Hanoi_City"}, "unknown time zone"),
        ({"kind": "continuous"}, "a continuous calendar has no"),
        ({"name": "../etc"}, "pattern"),
        ({"extra": 1}, "Extra inputs"),
        ({"weekday_periods": (("sat", (("08:00", "11:00"),)),)}, "sat is a weekend day"),
        ({"weekday_periods": (("fri", (("08:00", "11:00"),)), ("mon", (("08:00", "11:00"),)))}, "Monday first"),
        ({"weekday_periods": (("fri", (("08:00", "11:00"),)),), "day_length": None}, "working days differ in length"),
        ({"weekday_periods": (("fri", (("08:00", "11:00"),)),), "day_length": timedelta(0)}, "more than 0"),
        ({"seasons": ({"name": "he", "first": "04-15", "last": "10-14", "working_periods": (("07:00", "15:00"),)},
                      {"name": "thu", "first": "10-01", "last": "11-30", "working_periods": (("07:00", "15:00"),)})},
         "both cover 10-01"),
        ({"seasons": ({"name": "he", "first": "04-15", "last": "04-14", "working_periods": (("07:00", "15:00"),)},)},
         "would never apply"),
        ({"working_periods": (), "seasons": ({"name": "he", "first": "04-15", "last": "10-14",
                                             "working_periods": (("07:00", "15:00"),)},)}, "no season covers"),
        ({"seasons": ({"name": "he", "first": "02-30", "last": "10-14", "working_periods": (("07:00", "15:00"),)},)},
         "not a day of the year"),
    ],
)
def test_invalid_snapshots_are_refused(changes: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        CalendarSnapshot.model_validate(good(**changes))


def test_a_snapshot_from_before_weekday_periods_and_seasons_still_reads() -> None:
    """Backward compatible within the generation: a snapshot written before weekday
    periods, seasons and day_length (with vn-gov's former 15:00 cut-off) reads as it
    meant: 1d is its periods' 8 h, and its cut-off still applies, as "after 15:00"."""
    old = SNAP.model_dump(mode="json")
    for key in ("weekday_periods", "seasons", "day_length"):
        del old[key]
    old["receipt_cutoff"] = "15:00:00"
    snap = CalendarSnapshot.model_validate(old)
    cal = calendar_from_snapshot(snap)
    assert cal.day_length == timedelta(hours=8)
    assert cal.start_of_clock(at(2026, 3, 2, 15)) == at(2026, 3, 2, 15)
    assert cal.start_of_clock(at(2026, 3, 2, 15, 0, 1)) == at(2026, 3, 3, 7, 30)
    assert cal.add(at(2026, 3, 2, 9), "3d") == FILE.add(at(2026, 3, 2, 9), "3d")


def test_snapshot_is_frozen() -> None:
    with pytest.raises(ValidationError):
        SNAP.name = "other"  # type: ignore[misc]
    assert hash(SNAP) == hash(CalendarSnapshot.model_validate_json(SNAP.model_dump_json()))


def test_snapshot_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FILE.snapshot(datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="zero or more"):
        FILE.snapshot(TAKEN_AT, years_before=-1)
    with pytest.raises(ValueError, match="at most"):
        FILE.snapshot(TAKEN_AT, years_after=30)


def test_a_snapshot_of_a_snapshot_calendar_is_the_same() -> None:
    assert CAL.snapshot(TAKEN_AT) == SNAP


# --------------------------------------------------------------------------- days


def test_every_day_of_the_horizon_matches_the_file() -> None:
    day = SNAP.horizon_from
    while day <= SNAP.horizon_to:
        assert CAL.is_working_day(day) is FILE.is_working_day(day), day
        day += timedelta(days=1)


def test_days_outside_the_horizon_follow_the_weekly_rule_only() -> None:
    for first, last in ((date(2019, 1, 1), date(2024, 12, 31)), (date(2030, 1, 1), date(2036, 12, 31))):
        day = first
        while day <= last:
            assert CAL.is_working_day(day) is (day.weekday() < 5), day
            day += timedelta(days=1)
    # Where the file calendar knows better: New Year 2030 and 2024 are holidays there.
    assert FILE.is_working_day(date(2030, 1, 1)) is False
    assert CAL.is_working_day(date(2030, 1, 1)) is True
    assert CAL.is_working_day(date(2024, 1, 1)) is True


@MANY
@given(moment=st.one_of(INSIDE, EDGES))
def test_is_working_day_of_an_instant(moment: datetime) -> None:
    assert CAL.is_working_day(moment) is HYBRID.is_working_day(moment)


# --------------------------------------------------------------------------- start of clock


@pytest.mark.parametrize(
    "received",
    [
        at(2026, 1, 1, 10),  # New Year
        at(2025, 12, 31, 15),  # at the cut-off, before New Year and the yaml's day off
        at(2026, 1, 9, 15, 0, 0),  # cut-off on Friday before the make-up Saturday
        at(2026, 1, 9, 14, 59, 59),
        at(2026, 2, 13, 15, 30),  # Friday before Tết 2026
        at(2027, 2, 3, 16),  # the day before Tết 2027's first weekday off
        at(2027, 2, 10, 16),  # last day of Tết 2027
        at(2026, 8, 21, 15),  # Friday before a package make-up Saturday
    ],
)
def test_start_of_clock_on_known_days(received: datetime) -> None:
    assert CAL.start_of_clock(received) == FILE.start_of_clock(received)
    assert CAL.start_of_clock(received, CUTOFF) == FILE.start_of_clock(received, CUTOFF)


@MANY
@given(received=INSIDE, cutoff=st.sampled_from([None, CUTOFF, time(16, 30)]))
def test_start_of_clock_matches_the_file(received: datetime, cutoff: time | None) -> None:
    result = CAL.start_of_clock(received, cutoff)
    assert result == FILE.start_of_clock(received, cutoff)
    assert result.tzinfo == VN


@SOME
@given(received=EDGES)
def test_start_of_clock_across_the_edges(received: datetime) -> None:
    result = CAL.start_of_clock(received)
    assert result == HYBRID.start_of_clock(received)
    if received >= H1:
        assert result == NO_HOLIDAYS.start_of_clock(received)
    elif result < H1 and received >= H0:
        assert result == FILE.start_of_clock(received)


def test_start_of_clock_at_the_horizon_edge() -> None:
    # After the 31 Dec 2029 cut-off: the file knows 1 Jan 2030 is a holiday, the
    # snapshot (horizon ends on 31 Dec) only knows it is a Tuesday.
    received = at(2029, 12, 31, 15, 30)
    assert FILE.start_of_clock(received, CUTOFF) == at(2030, 1, 2, 7, 30)
    assert CAL.start_of_clock(received, CUTOFF) == at(2030, 1, 1, 7, 30)
    # Before the horizon, the other way round: 1 Jan 2025 is inside and is a holiday.
    assert CAL.start_of_clock(at(2024, 12, 31, 17, 30)) == at(2025, 1, 2, 7, 30)


# --------------------------------------------------------------------------- add, elapsed


@MANY
@given(start=INSIDE, budget=budgets())
def test_add_matches_the_file(start: datetime, budget: str | timedelta) -> None:
    due = CAL.add(start, budget)
    assert due == FILE.add(start, budget)
    assert due.tzinfo == VN
    assert due < H1  # the strategies keep this case inside the horizon


@MANY
@given(start=INSIDE, budget=budgets())
def test_add_after_start_of_clock_matches_the_file(start: datetime, budget: str | timedelta) -> None:
    # What the workflow does at receipt.
    assert CAL.add(CAL.start_of_clock(start), budget) == FILE.add(FILE.start_of_clock(start), budget)


@MANY
@given(start=st.one_of(INSIDE, EDGES), budget=budgets())
def test_add_across_the_edges(start: datetime, budget: str | timedelta) -> None:
    due = CAL.add(start, budget)
    # The budget is spent on the file's working time inside the horizon and on the
    # holiday-free calendar's outside it, and on nothing else.
    assert split_elapsed(start, due) == CAL.duration(budget)
    assert due == HYBRID.add(start, budget)
    if start >= H1 or due <= H0:
        assert due == NO_HOLIDAYS.add(start, budget)
    elif start >= H0 and due < H1:
        assert due == FILE.add(start, budget)


@MANY
@given(start=st.one_of(INSIDE, EDGES), offset=st.integers(-120 * 86_400_000_000, 120 * 86_400_000_000))
def test_elapsed(start: datetime, offset: int) -> None:
    # Up to four months either way: a step's life; the day loop is linear in the span.
    end = start + timedelta(microseconds=offset)
    worked = CAL.elapsed(start, end)
    lo, hi = sorted((start, end))
    assert worked == (split_elapsed(lo, hi) if start <= end else -split_elapsed(lo, hi))
    if H0 <= lo and hi <= H1:
        assert worked == FILE.elapsed(start, end)


def test_far_from_the_horizon_nothing_raises_or_loops() -> None:
    began = clock.perf_counter()
    for start in (at(1990, 6, 1, 9), at(2024, 12, 31, 16, 59), at(2029, 12, 31, 16, 59), at(2100, 1, 1)):
        due = CAL.add(CAL.start_of_clock(start), "250d")
        assert CAL.elapsed(CAL.start_of_clock(start), due) == timedelta(hours=8 * 250)
    assert CAL.elapsed(at(2020, 1, 1), at(2036, 1, 1)) == NO_HOLIDAYS.elapsed(at(2020, 1, 1), H0) + FILE.elapsed(
        H0, H1
    ) + NO_HOLIDAYS.elapsed(H1, at(2036, 1, 1))
    assert clock.perf_counter() - began < 2.0


def test_a_year_without_working_days_still_ends() -> None:
    # A one-year horizon with every weekday off: the weekly rule takes over after it.
    weekdays = tuple(d for d in (date(2026, 1, 1) + timedelta(i) for i in range(365)) if d.weekday() < 5)
    snap = CalendarSnapshot.model_validate(good(horizon_from=date(2026, 1, 1), horizon_to=date(2026, 12, 31),
                                                days_off=weekdays, working_days=()))
    cal = calendar_from_snapshot(snap)
    assert cal.add(at(2026, 1, 1, 9), "1h") == at(2027, 1, 1, 8, 30)


# --------------------------------------------------------------------------- seasonal hours

SEASONAL = load_calendar("vn-gov-seasonal")
SEASONAL_CAL = calendar_from_snapshot(CalendarSnapshot.model_validate_json(SEASONAL.snapshot(TAKEN_AT).model_dump_json()))
# Around the season boundaries (15 April, 15 October) and over whole years of the horizon.
AROUND_SEASONS = st.one_of(
    instants_between(at(2026, 4, 8), at(2026, 4, 22)),
    instants_between(at(2027, 10, 8), at(2027, 10, 22)),
    instants_between(H0, at(2029, 9, 1)),
)


@SOME
@given(start=AROUND_SEASONS, budget=budgets(), cutoff=st.sampled_from([None, CUTOFF]))
def test_a_seasonal_snapshot_answers_as_its_file(start: datetime, budget: str | timedelta,
                                                 cutoff: time | None) -> None:
    assert SEASONAL_CAL.start_of_clock(start, cutoff) == SEASONAL.start_of_clock(start, cutoff)
    due = SEASONAL_CAL.add(start, budget)
    assert due == SEASONAL.add(start, budget)
    assert SEASONAL_CAL.elapsed(start, due) == SEASONAL.elapsed(start, due) == SEASONAL.duration(budget)
    assert SEASONAL_CAL.subtract(due, budget) == SEASONAL.subtract(due, budget)


# --------------------------------------------------------------------------- continuous


@SOME
@given(start=st.one_of(INSIDE, EDGES), end=st.one_of(INSIDE, EDGES), budget=budgets(timedelta(hours=24)))
def test_continuous_round_trip(start: datetime, end: datetime, budget: str | timedelta) -> None:
    wall = load_calendar("continuous")
    snap = wall.snapshot(start)
    assert (snap.kind, snap.name, snap.days_off, snap.working_days) == ("continuous", "continuous", (), ())
    back = calendar_from_snapshot(CalendarSnapshot.model_validate_json(snap.model_dump_json()))
    assert isinstance(back, ContinuousCalendar)
    assert (back.name, back.timezone, back.day_length) == (wall.name, wall.timezone, wall.day_length)
    assert back.start_of_clock(start) == wall.start_of_clock(start)
    assert back.add(start, budget) == wall.add(start, budget)
    assert back.elapsed(start, end) == wall.elapsed(start, end)
    assert back.is_working_day(start) is True


# --------------------------------------------------------------------------- purity


# Audit events that touch the world: files, directories, processes, sockets.
_WORLD = ("open", "os.", "glob.", "shutil.", "subprocess.", "socket.", "urllib.", "http.")
_seen: list[tuple[str, tuple[object, ...]]] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _seen is not None and event.startswith(_WORLD):
        _seen.append((event, args))


_hooked = False


def test_the_snapshot_calendar_does_no_io_and_never_asks_the_holidays_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    global _seen, _hooked

    if not _hooked:  # hooks cannot be removed: this one records only while `_seen` is a list
        sys.addaudithook(_audit)
        _hooked = True
    class NoHolidays:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"holidays.{name} used by a snapshot calendar")

    text = SNAP.model_dump_json()
    monkeypatch.setattr(calendar_module, "holidays", NoHolidays())
    _seen = []
    try:
        cal = calendar_from_snapshot(CalendarSnapshot.model_validate_json(text))
        start = cal.start_of_clock(at(2028, 2, 20, 16))  # years no calendar here has asked about
        due = cal.add(start, "45.5d")
        worked = cal.elapsed(start, due)
        beyond = cal.add(at(2031, 1, 1), "30d")
        again = cal.snapshot(TAKEN_AT)
    finally:
        seen, _seen = _seen, None
    # The time zone may be read once per process (ZoneInfo caches it); nothing else.
    assert [(e, a) for e, a in seen if not (e == "open" and "zoneinfo" in str(a[0]).lower()
                                            or e == "open" and "tzdata" in str(a[0]).lower())] == []
    assert worked == timedelta(hours=8 * 45.5)
    assert beyond == at(2031, 2, 11, 17)
    assert again == SNAP


def test_the_workflow_side_never_reads_the_clock() -> None:
    # The workflow gets its instants from its input and workflow.now(); a datetime.now()
    # hidden in the arithmetic would break replays, and no sandbox sees inside a
    # passed-through module.  So: not one clock call in the code a snapshot runs.
    source = "\n".join(inspect.getsource(obj) for obj in (
        WorkingCalendar, PeriodCalendar, SnapshotCalendar, ContinuousCalendar, CalendarSnapshot,
        calendar_from_snapshot, calendar_module._aware, calendar_module._check_zone, hours_module, parse_duration,
    ))
    for call in (".now(", ".today(", "utcnow", "time.time", "monotonic", "perf_counter", "open(", "read_text",
                 "holidays.", "load_calendar(", "environ"):
        assert call not in source, call


async def test_in_the_workflow_sandbox(time_skipping_env: WorkflowEnvironment) -> None:
    received = [at(2026, 2, 13, 15, 30), at(2025, 12, 31, 16), at(2027, 2, 3, 14, 59, 59),
                at(2026, 1, 9, 15), datetime(2026, 8, 21, 7, 59, tzinfo=UTC), at(2029, 6, 20, 10)]
    texts, spans = ["0d", "1h", "0.5d", "3d", "15d", "59.75d"], [timedelta(minutes=1234), timedelta(hours=100)]
    budget_list = [*texts, *spans]
    probe = Probe(snapshot=SNAP, received_at=received, budgets=texts, spans=spans)
    task_queue = f"calendar-probe-{uuid.uuid4()}"
    # The default (sandboxed) runner and restrictions; calendar_workflow.py passes the calendar through.
    async with Worker(time_skipping_env.client, task_queue=task_queue, workflows=[CalendarProbeWorkflow]):
        answer = await time_skipping_env.client.execute_workflow(
            CalendarProbeWorkflow.run, probe, id=f"calendar-probe-{uuid.uuid4()}", task_queue=task_queue,
            result_type=Answer, execution_timeout=timedelta(seconds=20),  # a failing task would retry for ever
        )
    assert answer.sandboxed
    clocks = [FILE.start_of_clock(r) for r in received]
    assert answer.clocks == clocks
    assert answer.dues == [[FILE.add(c, b) for b in budget_list] for c in clocks]
    assert answer.worked == [[FILE.elapsed(r, FILE.add(c, b)) for b in budget_list] for r, c in zip(received, clocks)]
