"""Working-time calendars: rules with concrete 2026 dates, file loading, properties."""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from definitions.calendar import (
    CalendarFileError,
    OfficeCalendar,
    UnknownCalendarError,
    WorkingCalendar,
    available_calendars,
    calendar_from_snapshot,
    definitions_root,
    load_calendar,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=VN)


@pytest.fixture(scope="module")
def gov() -> WorkingCalendar:
    return load_calendar("vn-gov")


@pytest.fixture(scope="module")
def wall() -> WorkingCalendar:
    return load_calendar("continuous")


# --------------------------------------------------------------------------- working days


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 3, 2), True),  # an ordinary Monday
        (date(2026, 3, 7), False),  # Saturday
        (date(2026, 3, 8), False),  # Sunday
        (date(2026, 1, 1), False),  # New Year (package)
        (date(2026, 1, 2), False),  # civil-service day off (yaml)
        (date(2026, 1, 10), True),  # Saturday make-up day (yaml)
        *[(date(2026, 2, d), False) for d in range(16, 21)],  # Tết, Mon–Fri (package)
        (date(2026, 2, 13), True),
        (date(2026, 2, 23), True),
        (date(2026, 4, 27), False),  # Hùng Kings' day observed on Monday (package)
        (date(2026, 8, 22), True),  # Saturday worked in exchange for 31 Aug (package)
        (date(2026, 8, 31), False),
        (date(2026, 9, 1), False),
        (date(2026, 9, 2), False),
    ],
)
def test_is_working_day(gov: WorkingCalendar, day: date, working: bool) -> None:
    assert gov.is_working_day(day) is working


def test_is_working_day_of_a_datetime_uses_the_local_date(gov: WorkingCalendar) -> None:
    # 2026-03-06 20:00 UTC is already Saturday 03:00 in Hà Nội.
    assert gov.is_working_day(datetime(2026, 3, 6, 20, tzinfo=UTC)) is False


def test_shape(gov: WorkingCalendar, wall: WorkingCalendar) -> None:
    assert (gov.name, gov.timezone, gov.day_length) == ("vn-gov", VN, timedelta(hours=8))
    assert (wall.name, wall.timezone, wall.day_length) == ("continuous", VN, timedelta(hours=24))


# --------------------------------------------------------------------------- start of clock


@pytest.mark.parametrize(
    ("received", "starts"),
    [
        (at(2026, 3, 2, 9, 15), at(2026, 3, 2, 9, 15)),  # in a morning period
        (at(2026, 3, 2, 15, 30), at(2026, 3, 2, 15, 30)),  # vn-gov has no cut-off: at once
        (at(2026, 3, 2, 16, 59, 59), at(2026, 3, 2, 16, 59, 59)),
        (at(2026, 3, 2, 12, 0), at(2026, 3, 2, 13, 0)),  # lunch break
        (at(2026, 3, 2, 11, 30), at(2026, 3, 2, 13, 0)),  # end of the morning period
        (at(2026, 3, 2, 6, 0), at(2026, 3, 2, 7, 30)),  # before office hours
        (at(2026, 3, 2, 17, 0), at(2026, 3, 3, 7, 30)),  # at the end of office hours
        (at(2026, 3, 2, 18, 0), at(2026, 3, 3, 7, 30)),  # after office hours
        (at(2026, 3, 6, 17, 1), at(2026, 3, 9, 7, 30)),  # Friday 17:01: Monday
        (at(2026, 3, 8, 10, 0), at(2026, 3, 9, 7, 30)),  # Sunday
        (at(2026, 2, 13, 17, 30), at(2026, 2, 23, 7, 30)),  # Friday before Tết
        (at(2026, 1, 9, 17, 0), at(2026, 1, 10, 7, 30)),  # make-up Saturday
        (at(2026, 4, 24, 18, 0), at(2026, 4, 28, 7, 30)),  # over the Hùng Kings' Monday
    ],
)
def test_start_of_clock(gov: WorkingCalendar, received: datetime, starts: datetime) -> None:
    result = gov.start_of_clock(received)
    assert result == starts
    assert result.tzinfo == VN


FIFTEEN = time(15)  # Decree 23/2015 Art. 7, Decree 63/2024 Art. 7(2): "received after 15:00"


@pytest.mark.parametrize(
    ("received", "starts"),
    [
        (at(2026, 3, 2, 14, 59, 59), at(2026, 3, 2, 14, 59, 59)),
        (at(2026, 3, 2, 15, 0), at(2026, 3, 2, 15, 0)),  # AT 15:00 is not after it: at once
        (at(2026, 3, 2, 15, 0) + timedelta(microseconds=1), at(2026, 3, 3, 7, 30)),  # after it: next working day
        (at(2026, 3, 2, 15, 0, 1), at(2026, 3, 3, 7, 30)),
        (at(2026, 3, 2, 15, 1), at(2026, 3, 3, 7, 30)),
        (at(2026, 3, 2, 16, 59), at(2026, 3, 3, 7, 30)),
        (at(2026, 3, 2, 6, 0), at(2026, 3, 2, 7, 30)),  # before office hours: that day's first period
        (at(2026, 3, 2, 12, 0), at(2026, 3, 2, 13, 0)),  # lunch: the afternoon period
        (at(2026, 3, 6, 15, 0), at(2026, 3, 6, 15, 0)),  # Friday at 15:00
        (at(2026, 3, 6, 15, 1), at(2026, 3, 9, 7, 30)),  # Friday after 15:00: Monday
        (at(2026, 3, 7, 10, 0), at(2026, 3, 9, 7, 30)),  # Saturday morning: Monday
        (at(2026, 2, 13, 15, 30), at(2026, 2, 23, 7, 30)),  # Friday before Tết
        (at(2026, 1, 9, 15, 0), at(2026, 1, 9, 15, 0)),  # before the make-up Saturday, at 15:00
        (at(2026, 1, 9, 15, 0, 1), at(2026, 1, 10, 7, 30)),  # ... after: the make-up Saturday
        (at(2026, 4, 24, 16, 0), at(2026, 4, 28, 7, 30)),  # over the Hùng Kings' Monday
    ],
)
def test_start_of_clock_with_a_receipt_cutoff(gov: WorkingCalendar, received: datetime, starts: datetime) -> None:
    result = gov.start_of_clock(received, FIFTEEN)
    assert result == starts
    assert result.tzinfo == VN


def test_start_of_clock_in_another_zone(gov: WorkingCalendar) -> None:
    # 03:00 UTC = 10:00 in Hà Nội; 08:00 UTC = 15:00, the cut-off (received at it: at once).
    assert gov.start_of_clock(datetime(2026, 3, 2, 3, tzinfo=UTC)) == at(2026, 3, 2, 10)
    assert gov.start_of_clock(datetime(2026, 3, 2, 8, tzinfo=UTC), FIFTEEN) == at(2026, 3, 2, 15)
    assert gov.start_of_clock(datetime(2026, 3, 2, 8, 0, 1, tzinfo=UTC), FIFTEEN) == at(2026, 3, 3, 7, 30)


def test_the_procedures_cutoff_wins_over_the_calendars(tmp_path: Path) -> None:
    write_calendar(tmp_path, "tinh-x", PROVINCE)  # receipt_cutoff: "16:00"; periods 08:00-12:00, 13:30-17:30
    cal = load_calendar("tinh-x", tmp_path)
    monday = date(2026, 3, 9)
    received = datetime.combine(monday, time(15, 30), tzinfo=VN)
    assert cal.start_of_clock(received) == received  # the calendar's 16:00
    assert cal.start_of_clock(received, FIFTEEN) == at(2026, 3, 11, 8)  # the procedure's 15:00 (10th is off)
    late = at(2026, 3, 9, 16, 30)
    assert cal.start_of_clock(late) == at(2026, 3, 11, 8)
    assert cal.start_of_clock(late, time(17)) == late  # a later cut-off of the procedure wins too


def test_a_cutoff_is_a_local_wall_time(gov: WorkingCalendar, wall: WorkingCalendar) -> None:
    for cal in (gov, wall):
        with pytest.raises(ValueError, match="no offset"):
            cal.start_of_clock(at(2026, 3, 2, 9), time(15, tzinfo=UTC))
    # The continuous calendar has no next working day to move a receipt to: every instant works.
    assert wall.start_of_clock(at(2026, 3, 2, 16), FIFTEEN) == at(2026, 3, 2, 16)


def test_continuous_start_of_clock_is_receipt(wall: WorkingCalendar) -> None:
    received = at(2026, 3, 8, 23, 59)  # a Sunday night
    assert wall.start_of_clock(received) == received


# --------------------------------------------------------------------------- add


@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        (at(2026, 3, 2, 7, 30), "1d", at(2026, 3, 2, 17, 0)),  # lands on a period end: stays there
        (at(2026, 3, 2, 17, 0), "1h", at(2026, 3, 3, 8, 30)),
        (at(2026, 3, 2, 11, 30), "1h", at(2026, 3, 2, 14, 0)),  # over lunch
        (at(2026, 3, 2, 11, 0), "1h", at(2026, 3, 2, 13, 30)),
        (at(2026, 3, 2, 7, 30), "4h", at(2026, 3, 2, 11, 30)),
        (at(2026, 3, 2, 7, 30), "0.5d", at(2026, 3, 2, 11, 30)),
        (at(2026, 3, 2, 7, 30), "3d", at(2026, 3, 4, 17, 0)),
        (at(2026, 3, 2, 7, 30), "5d", at(2026, 3, 6, 17, 0)),
        (at(2026, 3, 2, 7, 30), "6d", at(2026, 3, 9, 17, 0)),  # skips the weekend
        (at(2026, 3, 2, 6, 0), "30m", at(2026, 3, 2, 8, 0)),  # starts before hours
        (at(2026, 3, 7, 10, 0), "1h", at(2026, 3, 9, 8, 30)),  # starts on Saturday
        (at(2026, 2, 13, 7, 30), "1d", at(2026, 2, 13, 17, 0)),  # Friday before Tết
        (at(2026, 2, 13, 17, 0), "1h", at(2026, 2, 23, 8, 30)),  # over Tết
        (at(2025, 12, 31, 17, 0), "1h", at(2026, 1, 5, 8, 30)),  # 1 Jan + 2 Jan (yaml) + weekend
        (at(2026, 1, 9, 17, 0), "1h", at(2026, 1, 10, 8, 30)),  # make-up Saturday (yaml)
        (at(2026, 4, 24, 17, 0), "1h", at(2026, 4, 28, 8, 30)),  # Hùng Kings' Monday
        (at(2026, 8, 21, 17, 0), "1h", at(2026, 8, 22, 8, 30)),  # Saturday worked (package)
        (at(2026, 8, 28, 17, 0), "1h", at(2026, 9, 3, 8, 30)),  # 31 Aug, 1–2 Sep off
        (at(2026, 3, 2, 9, 0), timedelta(hours=2), at(2026, 3, 2, 11, 0)),
    ],
)
def test_add(gov: WorkingCalendar, start: datetime, duration: str | timedelta, due: datetime) -> None:
    result = gov.add(start, duration)
    assert result == due
    assert result.tzinfo == VN


def test_add_zero_returns_start(gov: WorkingCalendar, wall: WorkingCalendar) -> None:
    sunday = at(2026, 3, 8, 10, 0)
    assert gov.add(sunday, "0h") == sunday
    assert gov.add(sunday, timedelta(0)) == sunday
    assert wall.add(sunday, "0d") == sunday


def test_add_negative_is_refused(gov: WorkingCalendar, wall: WorkingCalendar) -> None:
    for cal in (gov, wall):
        with pytest.raises(ValueError, match="negative"):
            cal.add(at(2026, 3, 2, 9), timedelta(hours=-1))


def test_add_accepts_other_zones(gov: WorkingCalendar) -> None:
    # Monday 07:30 in Hà Nội is 00:30 UTC.
    assert gov.add(datetime(2026, 3, 2, 0, 30, tzinfo=UTC), "1d") == at(2026, 3, 2, 17)


def test_add_many_days_is_fast(gov: WorkingCalendar) -> None:
    start = at(2026, 1, 5, 7, 30)
    began = clock.perf_counter()
    due = gov.add(start, "250d")
    assert gov.elapsed(start, due) == timedelta(hours=8 * 250)
    assert clock.perf_counter() - began < 1.0


def test_continuous_add_is_wall_clock(wall: WorkingCalendar) -> None:
    assert wall.add(at(2026, 2, 13, 17), "1d") == at(2026, 2, 14, 17)
    assert wall.add(at(2026, 2, 13, 17), "3h") == at(2026, 2, 13, 20)


# --------------------------------------------------------------------------- subtract


@pytest.mark.parametrize(
    ("end", "duration", "latest"),
    [
        # One working day before a due: the latest instant with 8 working hours left.
        (at(2026, 3, 4, 17, 0), "1d", at(2026, 3, 4, 7, 30)),  # a due at the day's end: that morning
        (at(2026, 3, 4, 10, 0), "1d", at(2026, 3, 3, 10, 0)),  # mid-morning: the day before, same time
        (at(2026, 3, 4, 14, 0), "1d", at(2026, 3, 3, 14, 0)),
        (at(2026, 3, 9, 9, 0), "1d", at(2026, 3, 6, 9, 0)),  # over the weekend
        (at(2026, 2, 23, 9, 0), "1d", at(2026, 2, 13, 9, 0)),  # over Tết
        (at(2026, 1, 12, 8, 0), "1d", at(2026, 1, 10, 8, 0)),  # onto the make-up Saturday
        (at(2026, 3, 4, 13, 30), "1h", at(2026, 3, 4, 11, 0)),  # over lunch
        (at(2026, 3, 4, 7, 30), "1h", at(2026, 3, 3, 16, 0)),  # a due at the day's start
        (at(2026, 3, 8, 12, 0), "1h", at(2026, 3, 6, 16, 0)),  # a due on Sunday
        (at(2026, 3, 4, 9, 0), "0h", at(2026, 3, 4, 9, 0)),
    ],
)
def test_subtract(gov: WorkingCalendar, end: datetime, duration: str, latest: datetime) -> None:
    result = gov.subtract(end, duration)
    assert result == latest and result.tzinfo == VN
    assert gov.elapsed(result, end) == gov.duration(duration)


def test_continuous_subtract_is_wall_clock(wall: WorkingCalendar) -> None:
    assert wall.subtract(at(2026, 2, 14, 17), "1d") == at(2026, 2, 13, 17)
    with pytest.raises(ValueError, match="negative"):
        wall.subtract(at(2026, 2, 14, 17), timedelta(hours=-1))


# --------------------------------------------------------------------------- elapsed


@pytest.mark.parametrize(
    ("start", "end", "worked"),
    [
        (at(2026, 3, 2, 7, 30), at(2026, 3, 2, 17, 0), timedelta(hours=8)),
        (at(2026, 3, 2, 0, 0), at(2026, 3, 3, 0, 0), timedelta(hours=8)),
        (at(2026, 3, 2, 11, 0), at(2026, 3, 2, 13, 30), timedelta(hours=1)),  # lunch excluded
        (at(2026, 3, 7, 8, 0), at(2026, 3, 8, 16, 0), timedelta(0)),  # weekend
        (at(2026, 2, 13, 12, 0), at(2026, 2, 23, 9, 30), timedelta(hours=6)),  # over Tết
        (at(2026, 3, 2, 9, 0), at(2026, 3, 2, 9, 0), timedelta(0)),
    ],
)
def test_elapsed(gov: WorkingCalendar, start: datetime, end: datetime, worked: timedelta) -> None:
    assert gov.elapsed(start, end) == worked
    assert gov.elapsed(end, start) == -worked


def test_continuous_elapsed(wall: WorkingCalendar) -> None:
    assert wall.elapsed(at(2026, 3, 7), at(2026, 3, 9)) == timedelta(days=2)
    assert wall.elapsed(at(2026, 3, 9), at(2026, 3, 7)) == -timedelta(days=2)


# --------------------------------------------------------------------------- duration, verdict


def test_duration(gov: WorkingCalendar, wall: WorkingCalendar) -> None:
    assert gov.duration("3d") == timedelta(hours=24)
    assert gov.duration("0.5d") == timedelta(hours=4)
    assert gov.duration("90m") == timedelta(minutes=90)
    assert wall.duration("1d") == timedelta(hours=24)
    assert gov.duration(timedelta(minutes=5)) == timedelta(minutes=5)


@pytest.mark.parametrize("text", ["3x", "", "d3", "3 days", "-1d"])
def test_unknown_duration(gov: WorkingCalendar, text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration like 3d"):
        gov.duration(text)
    with pytest.raises(ValueError, match="expected a duration like 3d"):
        gov.add(at(2026, 3, 2, 9), text)


def test_naive_datetimes_are_refused(gov: WorkingCalendar, wall: WorkingCalendar) -> None:
    naive = datetime(2026, 3, 2, 9, 0)
    for cal in (gov, wall):
        for call in (
            lambda cal=cal: cal.start_of_clock(naive),
            lambda cal=cal: cal.add(naive, "1h"),
            lambda cal=cal: cal.elapsed(naive, at(2026, 3, 2, 10)),
            lambda cal=cal: cal.elapsed(at(2026, 3, 2, 10), naive),
            lambda cal=cal: cal.verdict(naive, at(2026, 3, 2, 10)),
        ):
            with pytest.raises(ValueError, match="timezone-aware"):
                call()


@pytest.mark.parametrize(
    ("completed", "due", "verdict"),
    [
        (at(2026, 3, 2, 16, 0), at(2026, 3, 3, 9, 0), "early"),
        (at(2026, 3, 3, 8, 0), at(2026, 3, 3, 9, 0), "on_time"),
        (at(2026, 3, 3, 9, 0), at(2026, 3, 3, 9, 0), "on_time"),
        (at(2026, 3, 3, 9, 0, 1), at(2026, 3, 3, 9, 0), "late"),
        # 18:00 UTC on 2 March is already 3 March in Hà Nội: same local day.
        (datetime(2026, 3, 2, 18, 0, tzinfo=UTC), at(2026, 3, 3, 9, 0), "on_time"),
        (datetime(2026, 3, 2, 16, 59, tzinfo=UTC), at(2026, 3, 3, 9, 0), "early"),
    ],
)
def test_verdict(gov: WorkingCalendar, wall: WorkingCalendar, completed: datetime, due: datetime, verdict: str) -> None:
    assert gov.verdict(completed, due) == verdict
    assert wall.verdict(completed, due) == verdict


# --------------------------------------------------------------------------- loading


PROVINCE = """\
name: tinh-x
timezone: Asia/Ho_Chi_Minh
country: VN
working_periods: [["08:00", "12:00"], ["13:30", "17:30"]]
receipt_cutoff: "16:00"
days_off:
  - {date: 2026-03-10, reason: "Provincial anniversary"}
  - {date: 2026-08-22, reason: "Overrides the package's working Saturday"}
working_days:
  - {date: 2026-04-30, reason: "Overrides a package holiday"}
"""


def write_calendar(root: Path, name: str, text: str) -> Path:
    (root / "calendars").mkdir(exist_ok=True)
    path = root / "calendars" / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_calendar_from_a_folder(tmp_path: Path) -> None:
    write_calendar(tmp_path, "tinh-x", PROVINCE)
    cal = load_calendar("tinh-x", tmp_path)
    assert isinstance(cal, OfficeCalendar)
    assert available_calendars(tmp_path) == ["continuous", "tinh-x"]
    assert cal.day_length == timedelta(hours=8)
    assert not cal.is_working_day(date(2026, 3, 10))  # yaml day off
    assert cal.is_working_day(date(2026, 3, 11))
    assert not cal.is_working_day(date(2026, 8, 22))  # yaml day off beats package working day
    assert cal.is_working_day(date(2026, 4, 30))  # yaml working day beats package holiday
    assert not cal.is_working_day(date(2026, 2, 17))  # package holidays still apply
    assert not cal.is_working_day(date(2026, 1, 10))  # the vn-gov make-up day is not theirs
    assert cal.add(at(2026, 3, 9, 17, 30), "1h") == at(2026, 3, 11, 9, 0)
    assert cal.start_of_clock(at(2026, 3, 9, 15, 30)) == at(2026, 3, 9, 15, 30)
    assert cal.start_of_clock(at(2026, 3, 9, 16, 0)) == at(2026, 3, 9, 16, 0)  # at the cut-off: at once
    assert cal.start_of_clock(at(2026, 3, 9, 16, 0, 1)) == at(2026, 3, 11, 8, 0)  # after it


def test_definitions_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIENTHONG_DEFINITIONS", raising=False)
    assert definitions_root() == Path(__file__).parents[2] / "definitions"
    assert "vn-gov" in available_calendars()
    write_calendar(tmp_path, "tinh-x", PROVINCE)
    monkeypatch.setenv("LIENTHONG_DEFINITIONS", str(tmp_path))
    assert definitions_root() == tmp_path
    assert load_calendar("tinh-x").name == "tinh-x"
    assert load_calendar("continuous").name == "continuous"  # built in, no file needed


# --------------------------------------------------------------------------- hours per weekday and season


@pytest.fixture(scope="module")
def seasonal() -> WorkingCalendar:
    """The shipped example: summer 07:00-11:30 / 13:30-17:00 from 04-15 to 10-14, winter
    07:30-12:00 / 13:00-16:30 from 10-15 to 04-14 (8 h both)."""
    return load_calendar("vn-gov-seasonal")


def hours(cal: WorkingCalendar, day: date) -> list[tuple[time, time]]:
    assert isinstance(cal, OfficeCalendar)
    return [(s.timetz().replace(tzinfo=None), e.timetz().replace(tzinfo=None)) for s, e in cal.periods_on(day)]


SUMMER = [(time(7), time(11, 30)), (time(13, 30), time(17))]
WINTER = [(time(7, 30), time(12)), (time(13), time(16, 30))]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 4, 14), WINTER), (date(2026, 4, 15), SUMMER),  # the season boundaries, both ways
        (date(2026, 10, 14), SUMMER), (date(2026, 10, 15), WINTER),
        (date(2026, 12, 31), WINTER), (date(2027, 1, 4), WINTER),  # winter wraps over New Year
        (date(2028, 2, 29), WINTER),  # a leap day is a day of the year too
        (date(2026, 4, 18), []), (date(2026, 9, 2), []),  # a Saturday, National Day
    ],
)
def test_seasonal_periods(seasonal: WorkingCalendar, day: date, expected: list[tuple[time, time]]) -> None:
    assert hours(seasonal, day) == expected


def test_seasonal_arithmetic_across_the_boundaries(seasonal: WorkingCalendar) -> None:
    assert seasonal.day_length == timedelta(hours=8)  # both seasons make 8 h: 1d = 8h unsaid
    # Tuesday 14 April (winter) 15:00: 1.5 h left that day; Wednesday 15 April is summer:
    # 4.5 h in the morning, 2 h after 13:30.
    assert seasonal.add(at(2026, 4, 14, 15), "1d") == at(2026, 4, 15, 15, 30)
    assert seasonal.elapsed(at(2026, 4, 14, 15), at(2026, 4, 15, 15, 30)) == timedelta(hours=8)
    assert seasonal.subtract(at(2026, 4, 15, 15, 30), "1d") == at(2026, 4, 14, 15)
    # Wednesday 14 October (summer) 16:00: 1 h; Thursday 15 October is winter.
    assert seasonal.add(at(2026, 10, 14, 16), "1d") == at(2026, 10, 15, 15, 30)
    assert seasonal.add(at(2026, 10, 14, 16), "3d") == at(2026, 10, 19, 15, 30)  # Fri, then Mon
    # A whole summer week and a whole winter week are both 40 h.
    assert seasonal.elapsed(at(2026, 6, 1), at(2026, 6, 8)) == timedelta(hours=40)
    assert seasonal.elapsed(at(2026, 11, 30), at(2026, 12, 7)) == timedelta(hours=40)
    # The clock starts at the season's first period: 07:10 is working time in summer only.
    assert seasonal.start_of_clock(at(2026, 4, 15, 7, 10)) == at(2026, 4, 15, 7, 10)
    assert seasonal.start_of_clock(at(2026, 4, 14, 7, 10)) == at(2026, 4, 14, 7, 30)
    # Received after winter's last period: the next day's, a summer morning, 07:00.
    assert seasonal.start_of_clock(at(2026, 4, 14, 16, 45)) == at(2026, 4, 15, 7, 0)
    assert seasonal.appointment(at(2026, 4, 14, 20)) == at(2026, 4, 14, 16, 30)


SATURDAY_DESK = """\
name: tinh-sat
timezone: Asia/Ho_Chi_Minh
country: VN
weekend: [sun]
working_periods: [["07:30", "11:30"], ["13:00", "17:00"]]
weekday_periods:
  sat: [["07:30", "11:30"]]
day_length: 8h
"""


def test_a_saturday_morning_desk(tmp_path: Path) -> None:
    write_calendar(tmp_path, "tinh-sat", SATURDAY_DESK)
    cal = load_calendar("tinh-sat", tmp_path)
    assert cal.day_length == timedelta(hours=8)  # a fixed budget, not the length of the day at hand
    assert hours(cal, date(2026, 3, 7)) == [(time(7, 30), time(11, 30))]
    assert hours(cal, date(2026, 3, 6)) == [(time(7, 30), time(11, 30)), (time(13), time(17))]
    # 1d from Friday 17:00: Saturday's 4 h, then 4 h on Monday.
    assert cal.add(at(2026, 3, 6, 17), "1d") == at(2026, 3, 9, 11, 30)
    assert cal.subtract(at(2026, 3, 9, 11, 30), "1d") == at(2026, 3, 7, 7, 30)
    assert cal.start_of_clock(at(2026, 3, 7, 12)) == at(2026, 3, 9, 7, 30)  # after Saturday's period
    assert cal.elapsed(at(2026, 3, 2), at(2026, 3, 9)) == timedelta(hours=44)
    # A Saturday that is a public holiday is off, as any day (2 September 2028).
    assert hours(cal, date(2028, 9, 2)) == []


def test_days_of_different_lengths_need_a_day_length(tmp_path: Path) -> None:
    path = write_calendar(tmp_path, "tinh-sat", SATURDAY_DESK.replace("day_length: 8h\n", ""))
    with pytest.raises(CalendarFileError) as caught:
        load_calendar("tinh-sat", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}:1: "), message
    assert "working days differ in length (4h on sat; 8h on mon,tue,wed,thu,fri)" in message
    assert "day_length: 8h" in message


SEASONS = """\
name: tinh-x
timezone: Asia/Ho_Chi_Minh
working_periods: [["08:00", "12:00"], ["13:00", "17:00"]]
seasons:
  - name: summer
    first: "05-01"
    last: "09-30"
    working_periods: [["07:00", "11:00"], ["13:30", "17:30"]]
    weekday_periods: {fri: [["07:00", "11:00"], ["13:30", "16:30"]]}
day_length: 8h
"""


def test_a_season_with_a_default_for_the_other_days(tmp_path: Path) -> None:
    write_calendar(tmp_path, "tinh-x", SEASONS)
    cal = load_calendar("tinh-x", tmp_path)
    assert hours(cal, date(2026, 4, 30)) == [(time(8), time(12)), (time(13), time(17))]  # no season: the default
    assert hours(cal, date(2026, 5, 1)) == [(time(7), time(11)), (time(13, 30), time(16, 30))]  # summer's Friday
    assert hours(cal, date(2026, 9, 30)) == [(time(7), time(11)), (time(13, 30), time(17, 30))]  # its last day
    assert hours(cal, date(2026, 10, 2)) == [(time(8), time(12)), (time(13), time(17))]  # an autumn Friday
    snap = cal.snapshot(at(2026, 3, 1))
    again = calendar_from_snapshot(snap)
    for start in (at(2026, 4, 30, 16), at(2026, 5, 7, 16), at(2026, 9, 30, 16)):
        assert again.add(start, "2.5d") == cal.add(start, "2.5d")
        assert again.subtract(start, "2.5d") == cal.subtract(start, "2.5d")


@pytest.mark.parametrize("name", ["nowhere", "../calendars/vn-gov", "VN-GOV", ""])
def test_unknown_calendar(name: str) -> None:
    with pytest.raises(UnknownCalendarError, match="known calendars: continuous, vn-gov"):
        load_calendar(name)


@pytest.mark.parametrize(
    ("text", "line", "complaint"),
    [
        (PROVINCE.replace("receipt_cutoff", "receipt_cut"), 5, "unknown key 'receipt_cut'"),
        (PROVINCE.replace("2026-03-10", "2026-13-10"), 7, "days_off[0].date"),
        (PROVINCE.replace('reason: "Overrides a package holiday"', "why: x"), 10, "unknown key 'why'"),
        (PROVINCE.replace("2026-04-30", "2026-03-10"), 10, "2026-03-10 is already listed in days_off"),
        (PROVINCE.replace('"13:30"', '"11:00"'), 4, "must not overlap"),
        (PROVINCE.replace("Asia/Ho_Chi_Minh", "Asia/Hanoi_City"), 2, "unknown time zone"),
        (PROVINCE.replace("name: tinh-x", "name: tinh-y"), 1, "must match the file name"),
        (PROVINCE.replace("timezone: Asia/Ho_Chi_Minh\n", ""), 1, "timezone: required"),
        (PROVINCE.replace("days_off:\n", "days_off: [\n"), 7, "invalid YAML"),
        ("- just\n- a list\n", 1, "a calendar file is a mapping"),
        (PROVINCE.replace("working_periods", "weekday_periods"), 4, "weekday_periods: Input should be a valid "
         "dictionary"),
        (PROVINCE.replace("working_periods: [", "weekday_periods: {sat: [[\"08:00\", \"11:00\"]]}\nworking_periods: ["),
         4, "weekday_periods: sat: sat is a weekend day, it has no working periods (take it out of `weekend`"),
        (PROVINCE.replace("working_periods: [", "weekday_periods: {fri: [[\"08:00\", \"11:00\"], "
                                                 "[\"10:00\", \"12:00\"]]}\nworking_periods: ["),
         4, "weekday_periods: fri: working periods must be in order and must not overlap"),
        (PROVINCE.replace("working_periods: [", "weekday_periods: {fri: [[\"08:00\", \"11:00\"]]}\nworking_periods: ["),
         1, "working days differ in length (3h on fri; 8h on mon,tue,wed,thu)"),
        (PROVINCE.replace("working_periods: [", "day_length: 1d\nworking_periods: ["), 4,
         "'1d' is not a day length; expected hours or minutes, e.g. 8h"),
        (SEASONS.replace('"09-30"', '"09-31"'), 7, "seasons[0].last: '09-31' is not a day of the year"),
        (SEASONS.replace('"09-30"', '"9-30"'), 7, "'9-30' is not a month and day; expected MM-DD"),
        (SEASONS.replace("    first:", "    from:"), 5, "unknown key 'from' (expected one of: name, first, last, "
         "working_periods, weekday_periods)"),
        (SEASONS.replace("day_length:", '  - {name: autumn, first: "09-15", last: "11-30", working_periods: '
                         '[["08:00", "16:00"]]}\nday_length:'), 4,
         "seasons 'summer' and 'autumn' both cover 09-15; expected each day of the year in one season at most"),
        (SEASONS.replace('working_periods: [["08:00", "12:00"], ["13:00", "17:00"]]\n', ""), 3,
         "no season covers 01-01..04-30, 10-01..12-31 and there are no default `working_periods`"),
        (SEASONS.replace('"05-01"', '"10-01"'), 4, "the seasons cover every day of the year, so the default "
         "`working_periods` / `weekday_periods` would never apply"),
        (SEASONS.replace("{fri:", "{sun:"), 4, "summer.weekday_periods.sun: sun is a weekend day"),
        ("name: tinh-x\ntimezone: Asia/Ho_Chi_Minh\n", 1, "working_periods: required (or seasons covering every "
         "day of the year)"),
    ],
)
def test_bad_calendar_file(tmp_path: Path, text: str, line: int, complaint: str) -> None:
    path = write_calendar(tmp_path, "tinh-x", text)
    with pytest.raises(CalendarFileError) as caught:
        load_calendar("tinh-x", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert complaint in message


# --------------------------------------------------------------------------- properties

ZONES = st.sampled_from([VN, UTC, timezone(timedelta(hours=-5)), ZoneInfo("Europe/Paris")])
INSTANTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31, 23, 59), timezones=ZONES
)
CALENDARS = st.sampled_from(["vn-gov", "vn-gov-seasonal", "continuous"]).map(load_calendar)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def budgets(draw: st.DrawFn, cal: WorkingCalendar) -> timedelta:
    """From one second to about 60 working days, to the microsecond."""
    limit = int(60 * cal.day_length.total_seconds() * 1_000_000)
    return timedelta(microseconds=draw(st.integers(1_000_000, limit)))


@PROPERTY
@given(data=st.data(), cal=CALENDARS, start=INSTANTS)
def test_elapsed_undoes_add(data: st.DataObject, cal: WorkingCalendar, start: datetime) -> None:
    budget = data.draw(budgets(cal))
    assert cal.elapsed(start, cal.add(start, budget)) == budget


@PROPERTY
@given(data=st.data(), cal=CALENDARS, end=INSTANTS)
def test_subtract_is_the_latest_instant_with_that_much_left(data: st.DataObject, cal: WorkingCalendar,
                                                             end: datetime) -> None:
    budget = data.draw(budgets(cal))
    latest = cal.subtract(end, budget)
    assert cal.elapsed(latest, end) == budget
    assert cal.elapsed(latest + timedelta(microseconds=1), end) < budget  # any later instant has less


@PROPERTY
@given(data=st.data(), cal=CALENDARS, start=INSTANTS)
def test_add_is_monotonic_in_duration(data: st.DataObject, cal: WorkingCalendar, start: datetime) -> None:
    small, large = sorted((data.draw(budgets(cal)), data.draw(budgets(cal))))
    assert cal.add(start, small) <= cal.add(start, large)


@PROPERTY
@given(data=st.data(), cal=CALENDARS, early=INSTANTS, late=INSTANTS)
def test_add_is_monotonic_in_start(data: st.DataObject, cal: WorkingCalendar, early: datetime, late: datetime) -> None:
    early, late = sorted((early, late))
    budget = data.draw(budgets(cal))
    assert cal.add(early, budget) <= cal.add(late, budget)


@PROPERTY
@given(data=st.data(), start=INSTANTS)
def test_add_lands_in_working_time(data: st.DataObject, start: datetime) -> None:
    for gov in (load_calendar("vn-gov"), load_calendar("vn-gov-seasonal")):
        assert isinstance(gov, OfficeCalendar)
        due = gov.add(start, data.draw(budgets(gov)))
        assert due.tzinfo == VN
        # Inside a period, or exactly at its end; never at a bare period start.
        assert any(begins < due <= ends for begins, ends in gov.periods_on(due.date())), due


@PROPERTY
@given(received=INSTANTS, minute=st.integers(0, 24 * 60 - 1))
def test_start_of_clock_with_a_cutoff(received: datetime, minute: int) -> None:
    """Received at or before the cut-off: as without one; after it, the next working
    day's first period (it is never earlier than without a cut-off)."""
    gov = load_calendar("vn-gov")
    cutoff = time(minute // 60, minute % 60)
    plain, cut = gov.start_of_clock(received), gov.start_of_clock(received, cutoff)
    local = received.astimezone(VN)
    if local.time() <= cutoff:
        assert cut == plain
    else:
        assert isinstance(gov, OfficeCalendar)
        assert cut >= plain and cut == gov.periods_on(gov.next_working_day(local.date()))[0][0]
