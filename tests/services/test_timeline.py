"""The timeline picture (services/timeline.py) of real dossiers driven through the real
workflow on the time-skipping test server, on the `vn-gov` calendar: a supplement
pause, a late step extended, a weekend inside a step, a return to an earlier step,
status 9 then 10. The SVG is read back with xml.etree and every position is checked
against working time computed independently with the calendar."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from definitions.calendar import load_calendar
from definitions.limits import MAX_TIMELINE_ROWS
from services.timeline import render_timeline
from tests.workflows.harness import (
    assigned,
    audit_log,
    complete,
    extend,
    finished,
    resubmit,
    running_worker,
    send_back,
    snapshot,
    start_dossier,
    state,
    until,
)
from workflows.payloads import DossierState, DossierStatus, Note, StepState, StepStatus

VN = ZoneInfo("Asia/Ho_Chi_Minh")
SVG = "{http://www.w3.org/2000/svg}"
DESK = "bpmc-xa-xa-tan-lap"
TOLERANCE = 0.02  # px: positions are written with two decimals

STEPS = [
    {"id": "tiep-nhan", "name": "Tiếp nhận hồ sơ", "agency": "bpmc-xa-{commune}", "deadline": "1d"},
    {"id": "tham-dinh", "name": "Thẩm định hồ sơ", "agency": "vpdk-tinh", "deadline": "2d"},
    {"id": "phe-duyet", "name": "Phê duyệt", "agency": "so-nnmt", "deadline": "1d", "returns_to": ["tham-dinh"]},
    {"id": "tra-ket-qua", "name": "Trả kết quả", "agency": "bpmc-xa-{commune}", "deadline": "1d",
     "returns_result": True},
]


# ----------------------------------------------------------------------------- reading the picture


class Picture:
    """An SVG timeline read back: its rows and shapes, and its axis to check positions."""

    def __init__(self, svg: str, calendar) -> None:
        self.text = svg
        self.root = ET.fromstring(svg.encode("utf-8"))  # valid XML, or this raises
        assert self.root.tag == f"{SVG}svg"
        self.left = float(self.root.get("data-plot-left"))
        self.per_second = float(self.root.get("data-px-per-working-hour")) / 3600
        self.origin = datetime.fromisoformat(self.root.get("data-origin"))
        self.calendar = calendar

    def x(self, at: datetime) -> float:
        """Where `at` must be: working time since the origin, computed here on the calendar."""
        return self.left + self.calendar.elapsed(self.origin, at).total_seconds() * self.per_second

    def width(self, start: datetime, end: datetime) -> float:
        return self.calendar.elapsed(start, end).total_seconds() * self.per_second

    def rows(self) -> list[ET.Element]:
        return [g for g in self.root.iter(f"{SVG}g") if "row" in (g.get("class") or "").split()]

    def row(self, step_id: str, number: int) -> ET.Element:
        found = [g for g in self.rows() if (g.get("data-step"), g.get("data-pass")) == (step_id, str(number))]
        assert len(found) == 1, (step_id, number, [(g.get("data-step"), g.get("data-pass")) for g in self.rows()])
        return found[0]

    def group(self, kind: str) -> list[ET.Element]:
        return [g for g in self.root.iter(f"{SVG}g") if g.get("data-kind") == kind]

    def pauses(self) -> list[ET.Element]:
        return [r for r in self.root.iter(f"{SVG}rect") if "pause" in (r.get("class") or "").split()
                and r.get("data-kind")]

    def ticks(self) -> list[tuple[date, float]]:
        return [(date.fromisoformat(g.get("data-date")), float(g.find(f"{SVG}line").get("x1")))
                for g in self.root.iter(f"{SVG}g") if g.get("class") == "tick"]


def shapes(row: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in row.iter(f"{SVG}{tag}") if cls in (e.get("class") or "").split()]


def bar(row: ET.Element) -> tuple[float, float]:
    (rect,) = shapes(row, "rect", "bar")
    return float(rect.get("x")), float(rect.get("x")) + float(rect.get("width"))


def near(actual: float, expected: float) -> bool:
    return abs(actual - expected) <= TOLERANCE


def close(actual: datetime, expected: datetime) -> bool:
    """Changes land a moment after the instant the test server's clock was moved to."""
    return abs(actual - expected) < timedelta(seconds=5)


def texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


# ----------------------------------------------------------------------------- driving a dossier


def working_weeks(calendar, after: datetime, weeks: int) -> date:
    """A Monday after `after` starting `weeks` ordinary weeks (Monday-Friday worked, no holiday)."""
    day = after.astimezone(VN).date() + timedelta(days=1)
    while True:
        day += timedelta(days=(7 - day.weekday()) % 7)
        span = [day + timedelta(days=i) for i in range(7 * weeks)]
        if all(calendar.is_working_day(d) == (d.weekday() < 5) for d in span):
            return day
        day += timedelta(days=7)


async def sleep_until(env, at: datetime) -> None:
    now = await env.get_current_time()
    assert now < at, f"the test server's clock ({now}) is already past {at}"
    await env.sleep(at - now)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=VN)


async def test_a_dossier_with_an_extended_step_a_pause_a_late_step_a_weekend_and_a_return(private_time_skipping_env):
    env = private_time_skipping_env
    calendar = load_calendar("vn-gov")
    monday = working_weeks(calendar, await env.get_current_time(), 3)
    week2, week3 = monday + timedelta(days=7), monday + timedelta(days=14)
    snap = snapshot(calendar="vn-gov", deadline="15d", steps=STEPS, name="Đăng ký biến động đất đai")
    async with running_worker(env.client) as tq:
        await sleep_until(env, at(monday, 8))
        handle = await start_dossier(env.client, tq, snap, received_by=DESK)
        await until(handle, assigned("tiep-nhan"))
        await sleep_until(env, at(monday, 10))
        await complete(handle, "tiep-nhan", DESK)
        await until(handle, assigned("tham-dinh"))
        # At once, more than a working day before its due (Mẫu 04's rule), the land office
        # gives a new appointment: Friday of the second week, 17:00.
        await sleep_until(env, at(monday, 11))
        await extend(handle, "vpdk-tinh", at(week2 + timedelta(days=4), 17), "Chờ kết quả đo đạc lại",
                     step_id="tham-dinh")

        # Tuesday 10:00 a supplement is asked for; the applicant brings it on Friday 10:00.
        await sleep_until(env, at(monday + timedelta(days=1), 10))
        await complete(handle, "tham-dinh", "vpdk-tinh", "supplement", note="Bổ sung bản trích đo địa chính")
        await sleep_until(env, at(monday + timedelta(days=4), 10))
        await resubmit(handle, agency=DESK, note="Đã bổ sung")

        # Its legal due (a working day left at the pause: Monday 10:00) passes.
        await sleep_until(env, at(week2, 11))
        s = await state(handle)
        assert close(s.step("tham-dinh").original_due_at, at(week2, 10))

        # While it is open: its bar runs to now, and its late part too.
        now = await env.get_current_time()
        picture = Picture(render_timeline(await state(handle), calendar, now), calendar)
        row = picture.row("tham-dinh", 1)
        assert shapes(row, "rect", "open") and near(bar(row)[1], picture.x(now))
        (late,) = shapes(row, "rect", "late")
        assert near(float(late.get("x")), picture.x(s.step("tham-dinh").original_due_at))
        (now_marker,) = picture.group("now")
        assert near(float(now_marker.find(f"{SVG}line").get("x1")), picture.x(now))

        # Done on Friday 16:00 (late: after the legal due, before the new appointment).
        await sleep_until(env, at(week2 + timedelta(days=4), 16))
        s = await complete(handle, "tham-dinh", "vpdk-tinh")
        assert s.step("tham-dinh").verdict == "late"
        await until(handle, assigned("phe-duyet"))
        # Sent back after the weekend, on Monday 09:00.
        await sleep_until(env, at(week3, 9))
        await send_back(handle, "phe-duyet", "so-nnmt", "tham-dinh", note="Chưa đạt: sai diện tích")
        await until(handle, assigned("tham-dinh"))
        await sleep_until(env, at(week3, 11))
        await complete(handle, "tham-dinh", "vpdk-tinh")
        await until(handle, assigned("phe-duyet"))
        await sleep_until(env, at(week3, 14))
        await complete(handle, "phe-duyet", "so-nnmt")
        await until(handle, assigned("tra-ket-qua"))
        await sleep_until(env, at(week3 + timedelta(days=1), 9))
        await complete(handle, "tra-ket-qua", DESK)
        s = await finished(handle)
        events = await audit_log(tq, handle)
        now = await env.get_current_time()

    assert s.status == DossierStatus.COMPLETED and close(s.finished_at, at(week3, 14))
    svg = render_timeline(s, calendar, now)
    picture = Picture(svg, calendar)
    assert picture.origin == s.received_at

    # One row per hand-over (each step_assigned in the audit log), in hand-over order.
    expected = [("tiep-nhan", 1), ("tham-dinh", 1), ("phe-duyet", 1), ("tham-dinh", 2), ("phe-duyet", 2),
                ("tra-ket-qua", 1)]
    assert [(g.get("data-step"), int(g.get("data-pass"))) for g in picture.rows()] == expected
    assert sum(1 for kind, _ in events if kind == "step_assigned") == len(expected)
    for row, (step_id, _) in zip(picture.rows(), expected):
        assert len(shapes(row, "rect", "bar")) == 1
        assert texts(row)[0].split(" ")[0] == step_id
    passes = {("tham-dinh", 1): s.earlier_passes[0], ("phe-duyet", 1): s.earlier_passes[1]} | {
        (st.id, 2 if st.id in ("tham-dinh", "phe-duyet") else 1): st for st in s.steps}
    (returned,) = (n.at for n in s.notes if n.kind == "returned")
    ends = {("phe-duyet", 1): returned}  # a returned pass ends at the return
    for key, st in passes.items():
        start, end = bar(picture.row(*key))
        assert near(start, picture.x(st.assigned_at)), key
        assert near(end, picture.x(ends.get(key) or st.completed_at)), key
    assert "Tiếp nhận hồ sơ · bpmc-xa-xa-tan-lap" in texts(picture.row("tiep-nhan", 1))
    assert "Thẩm định hồ sơ · vpdk-tinh" in texts(picture.row("tham-dinh", 2))

    # Working time, not wall-clock time: the weekend inside phe-duyet's first pass takes no
    # width (Friday 16:00 to Monday 09:00 is 2.5 working hours), and its bar starts where
    # tham-dinh's first pass ended.
    first_review = picture.row("phe-duyet", 1)
    handed = s.earlier_passes[1].assigned_at
    assert close(handed, at(week2 + timedelta(days=4), 16)) and close(returned, at(week3, 9))
    assert returned - handed > timedelta(hours=64)
    assert near(bar(first_review)[0], bar(picture.row("tham-dinh", 1))[1])
    assert abs(picture.width(handed, returned) - 2.5 * 3600 * picture.per_second) < 10 * picture.per_second
    assert near(bar(first_review)[1] - bar(first_review)[0], picture.width(handed, returned))
    starts = [bar(g)[0] for g in picture.rows()]
    assert starts == sorted(starts)
    ticks = picture.ticks()
    assert [d for d, _ in ticks] == sorted(d for d, _ in ticks) and len(ticks) >= 5
    for day, x in ticks:
        assert calendar.is_working_day(day) and day.weekday() < 5, day
        assert near(x, picture.x(calendar.periods_on(day)[0][0])), day
    # Monday's work starts where Friday's ended, on the axis.
    assert near(picture.x(at(week3, 7, 30)), picture.x(at(week2 + timedelta(days=4), 17)))

    # The supplement pause: Tuesday 10:00 to Friday 10:00, three working days wide, over every row.
    (pause,) = picture.pauses()
    asked, back = (n.at for n in s.notes if n.kind in ("supplement_requested", "resubmitted"))
    assert close(asked, at(monday + timedelta(days=1), 10)) and close(back, at(monday + timedelta(days=4), 10))
    assert pause.get("data-kind") == "supplement"
    assert near(float(pause.get("x")), picture.x(asked))
    assert near(float(pause.get("width")), picture.width(asked, back))
    assert abs(calendar.elapsed(asked, back) - timedelta(hours=24)) < timedelta(seconds=10)
    top = min(float(shapes(g, "rect", "band")[0].get("y")) for g in picture.rows())
    assert float(pause.get("y")) == top and float(pause.get("height")) == 34 * len(expected)

    # The late part only on the late step, from its legal due to its completion; its
    # extended due and its legal due are both marked.
    late_rows = [(g.get("data-step"), g.get("data-pass")) for g in picture.rows() if shapes(g, "rect", "late")]
    assert late_rows == [("tham-dinh", "1")]
    late_pass = s.earlier_passes[0]
    assert late_pass.verdict == "late" and close(late_pass.original_due_at, at(week2, 10))
    (late,) = shapes(picture.row("tham-dinh", 1), "rect", "late")
    assert near(float(late.get("x")), picture.x(late_pass.original_due_at))
    assert near(float(late.get("x")) + float(late.get("width")), picture.x(late_pass.completed_at))
    (due,) = shapes(picture.row("tham-dinh", 1), "line", "due")
    (legal,) = shapes(picture.row("tham-dinh", 1), "line", "legal-due")
    # The appointment given on the first day, moved on by the pause's working time (3 days).
    moved = calendar.elapsed(at(week2 + timedelta(days=4), 17), late_pass.due_at)
    assert abs(moved - timedelta(days=1)) < timedelta(seconds=10)  # the calls' milliseconds aside
    assert near(float(due.get("x1")), picture.x(late_pass.due_at))
    assert near(float(legal.get("x1")), picture.x(late_pass.original_due_at))
    assert all(not shapes(g, "line", "legal-due") for g in picture.rows() if g.get("data-pass") != "1"
               or g.get("data-step") != "tham-dinh")

    # Receipt, status 9 and status 10 marked across the rows, labelled in Vietnamese.
    for kind, instant, label in (("received", s.received_at, "Tiếp nhận (2)"),
                                 ("finished", s.finished_at, "Đã xử lý xong (9)"),
                                 ("ended", s.completed_at, "Đã trả kết quả (10)")):
        (marker,) = picture.group(kind)
        assert near(float(marker.find(f"{SVG}line").get("x1")), picture.x(instant)), kind
        assert label in texts(marker)
    assert not picture.group("now")  # ended: no "now" line
    assert "Tiến trình giải quyết hồ sơ" in svg and "Đăng ký biến động đất đai" in svg
    assert "DejaVu Sans" in picture.root.get("font-family") and svg.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    legend = [t for g in picture.root.iter(f"{SVG}g") if g.get("class") == "legend" for t in texts(g)]
    assert "Quá hạn theo quy định" in legend and any("Chờ người nộp" in t for t in legend)


# ----------------------------------------------------------------------------- bounds and text


def _state(steps: list[StepState], earlier: list[StepState], name: str = "Thủ tục thử") -> DossierState:
    received = datetime(2026, 3, 2, 8, tzinfo=VN)
    return DossierState(dossier_id="HS-TL-1", procedure_code="T.1", procedure_version=1, procedure_name=name,
                        content_hash="x", sector="G13", level="xa", calendar="vn-gov", channel="in_person",
                        received_at=received, clock_started_at=received, due_at=received + timedelta(days=30),
                        original_due_at=received + timedelta(days=30), steps=steps, earlier_passes=earlier)


def _step(step_id: str, start: datetime, hours: int, status: StepStatus = StepStatus.COMPLETED) -> StepState:
    end = start + timedelta(hours=hours)
    return StepState(id=step_id, name=step_id, agency="vpdk-tinh", deadline="1d", status=status, assigned_at=start,
                     due_at=start + timedelta(days=1), original_due_at=start + timedelta(days=1),
                     completed_at=end if status == StepStatus.COMPLETED else None)


def test_rows_are_bounded_current_steps_first_then_the_latest_earlier_passes():
    start = datetime(2026, 3, 2, 8, tzinfo=VN)
    earlier = [_step("tham-dinh", start + timedelta(minutes=i), 0, StepStatus.RETURNED)
               for i in range(MAX_TIMELINE_ROWS + 5)]
    current = [_step("tham-dinh", start + timedelta(hours=5), 1, StepStatus.ASSIGNED)]
    s = _state(current, earlier)
    s.notes = [Note(at=p.assigned_at, kind="returned", step_id="tham-dinh", text="to tham-dinh") for p in earlier]
    picture = Picture(render_timeline(s, load_calendar("vn-gov"), start + timedelta(hours=6)), load_calendar("vn-gov"))
    rows = picture.rows()
    assert len(rows) == MAX_TIMELINE_ROWS
    numbers = [int(g.get("data-pass")) for g in rows]
    assert numbers == list(range(7, MAX_TIMELINE_ROWS + 7))  # passes 1-6 left out, the current one (206) kept
    assert rows[-1].get("data-earlier") is None and shapes(rows[-1], "rect", "open")
    assert f"6 lượt xử lý trước không được vẽ (tối đa {MAX_TIMELINE_ROWS} dòng)" in picture.text


def test_any_name_stays_valid_xml():
    start = datetime(2026, 3, 2, 8, tzinfo=VN)
    step = _step("tham-dinh", start, 2).model_copy(update={"name": 'Thẩm <định> & "đo" \x01 \ud800'})
    svg = render_timeline(_state([step], [], name="Cấp <giấy> & sổ"), load_calendar("vn-gov"), start)
    root = ET.fromstring(svg.encode("utf-8", "surrogatepass"))
    shown = [t for g in root.iter(f"{SVG}g") for t in texts(g)]
    assert any('Thẩm <định> & "đo" \ufffd \ufffd' in t for t in shown)
    assert "Cấp <giấy> & sổ" in "".join(root.itertext())


def test_a_dossier_not_received_yet_has_no_rows_and_a_naive_now_is_refused():
    submitted = datetime(2026, 3, 2, 8, tzinfo=VN)
    s = _state([], []).model_copy(update={"status": DossierStatus.SUBMITTED, "portal_status": 1,
                                          "submitted_at": submitted, "received_at": submitted, "due_at": None,
                                          "original_due_at": None, "clock_started_at": None})
    picture = Picture(render_timeline(s, load_calendar("vn-gov"), submitted + timedelta(hours=3)),
                      load_calendar("vn-gov"))
    assert picture.rows() == [] and "Chưa giao bước xử lý nào." in picture.text
    assert [g.get("data-kind") for g in picture.root.iter(f"{SVG}g") if g.get("data-kind")] == ["submitted", "now"]
    with pytest.raises(ValueError, match="timezone-aware"):
        render_timeline(s, load_calendar("vn-gov"), datetime(2026, 3, 2, 12))
    assert re.search(r"Mới đăng ký trực tuyến \(mã 1\)", picture.text)


def test_an_obligation_not_paid_yet_is_shaded_to_now():
    calendar = load_calendar("vn-gov")
    start = datetime(2026, 3, 2, 8, tzinfo=VN)  # a Monday
    asked, now = datetime(2026, 3, 3, 9, tzinfo=VN), datetime(2026, 3, 9, 9, tzinfo=VN)
    s = _state([_step("xac-dinh-thue", start, 0, StepStatus.ASSIGNED)], [])
    s.status, s.portal_status = DossierStatus.AWAITING_OBLIGATION, 6
    s.notes = [Note(at=asked, kind="obligation_requested", step_id="xac-dinh-thue", text="Lệ phí trước bạ")]
    picture = Picture(render_timeline(s, calendar, now), calendar)
    (pause,) = picture.pauses()
    assert pause.get("data-kind") == "obligation"
    assert near(float(pause.get("x")), picture.x(asked))
    assert near(float(pause.get("width")), picture.width(asked, now))  # 4 working days, not 6 calendar days
    assert calendar.elapsed(asked, now) == timedelta(hours=32)
    assert "Chờ thực hiện nghĩa vụ tài chính (mã 6)" in picture.text
