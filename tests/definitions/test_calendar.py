"""Working-time calendars: rules with concrete 2026 dates, file loading, properties."""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, timedelta, timezone
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
        (at(2026, 3, 2, 14, 59), at(2026, 3, 2, 14, 59)),  # just before the cut-off
        (at(2026, 3, 2, 15, 0), at(2026, 3, 3, 7, 30)),  # at the cut-off: next working day
        (at(2026, 3, 2, 12, 0), at(2026, 3, 2, 13, 0)),  # lunch break
        (at(2026, 3, 2, 11, 30), at(2026, 3, 2, 13, 0)),  # end of the morning period
        (at(2026, 3, 2, 6, 0), at(2026, 3, 2, 7, 30)),  # before office hours
        (at(2026, 3, 2, 18, 0), at(2026, 3, 3, 7, 30)),  # after office hours
        (at(2026, 3, 6, 16, 59), at(2026, 3, 9, 7, 30)),  # Friday 16:59: Monday
        (at(2026, 3, 8, 10, 0), at(2026, 3, 9, 7, 30)),  # Sunday
        (at(2026, 2, 13, 15, 30), at(2026, 2, 23, 7, 30)),  # Friday before Tết
        (at(2026, 1, 9, 15, 0), at(2026, 1, 10, 7, 30)),  # make-up Saturday
        (at(2026, 4, 24, 16, 0), at(2026, 4, 28, 7, 30)),  # over the Hùng Kings' Monday
    ],
)
def test_start_of_clock(gov: WorkingCalendar, received: datetime, starts: datetime) -> None:
    result = gov.start_of_clock(received)
    assert result == starts
    assert result.tzinfo == VN


def test_start_of_clock_in_another_zone(gov: WorkingCalendar) -> None:
    # 03:00 UTC = 10:00 in Hà Nội; 08:00 UTC = 15:00, the cut-off.
    assert gov.start_of_clock(datetime(2026, 3, 2, 3, tzinfo=UTC)) == at(2026, 3, 2, 10)
    assert gov.start_of_clock(datetime(2026, 3, 2, 8, tzinfo=UTC)) == at(2026, 3, 3, 7, 30)


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
    assert cal.start_of_clock(at(2026, 3, 9, 16, 0)) == at(2026, 3, 11, 8, 0)


def test_definitions_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIENTHONG_DEFINITIONS", raising=False)
    assert definitions_root() == Path(__file__).parents[2] / "definitions"
    assert "vn-gov" in available_calendars()
    write_calendar(tmp_path, "tinh-x", PROVINCE)
    monkeypatch.setenv("LIENTHONG_DEFINITIONS", str(tmp_path))
    assert definitions_root() == tmp_path
    assert load_calendar("tinh-x").name == "tinh-x"
    assert load_calendar("continuous").name == "continuous"  # built in, no file needed


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
CALENDARS = st.sampled_from(["vn-gov", "continuous"]).map(load_calendar)
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
    gov = load_calendar("vn-gov")
    assert isinstance(gov, OfficeCalendar)
    due = gov.add(start, data.draw(budgets(gov)))
    assert due.tzinfo == VN
    # Inside a period, or exactly at its end; never at a bare period start.
    assert any(begins < due <= ends for begins, ends in gov.periods_on(due.date())), due
