"""A dossier's timeline as a picture (SVG): its hand-overs on a working-time axis.

The x axis is working time on the dossier's calendar, counted from the earliest
instant drawn (its receipt, or its online submission): nights, weekends and days
off take no width, so a step handed over on Saturday starts where Friday's work
ended, and a bar is as long as the agency's working time. Ticks are the working
days' starts, labelled with their dates in the calendar's time zone
(Asia/Ho_Chi_Minh for the shipped calendars).

One row per hand-over, in hand-over order (the process-control sheet's rows, with
the earlier passes of steps a return went back over): a bar from assignment to
completion (or to the return that ended it, the dossier's end, or `now` for an open
step), the step's due and, once extended, its legal due marked; the part past the
legal due (what Decision 766 judges late) in its own colour. Across every row: the
applicant's turns (supplement or financial obligation requested, until resubmitted)
shaded, and lines for submission, receipt, the appointment, status 9, the end
(10, 8 or 3) and now. Labels are Vietnamese, the document UTF-8.

A pure function of the state, its calendar and `now`; the drawing is a Jinja2
template (templates/timeline.svg.j2, autoescaped) fed with pixel positions.
Bounded: at most MAX_TIMELINE_ROWS rows (every current step, then the most recent
earlier passes), and one elapsed-time walk over the days the picture spans.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from definitions.calendar import PeriodCalendar, WorkingCalendar
from definitions.limits import MAX_TIMELINE_ROWS
from workflows.payloads import DossierState, DossierStatus, StepState, StepStatus

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "timeline.svg.j2"
MEDIA_TYPE = "image/svg+xml"

# Layout, in pixels.
WIDTH = 1200
LABEL_WIDTH = 290  # the step column on the left
RIGHT_PAD = 90  # room for the last bar's verdict
PLOT_LEFT = LABEL_WIDTH + 10
PLOT_WIDTH = WIDTH - PLOT_LEFT - RIGHT_PAD
HEADER_HEIGHT = 96
AXIS_HEIGHT = 22
ROW_HEIGHT = 34
BAR_HEIGHT = 16
MARKER_LEVEL = 15  # a marker label's line height under the rows
LEGEND_LINE = 20
LEGEND_COLUMNS = 3
MIN_TICK_SPACING = 56  # px between labelled ticks
MIN_SPAN = timedelta(hours=1)  # a picture of a dossier received a moment ago is still an hour wide
CHAR_WIDTH = 6.2  # an 11px label's average character width (marker label placement)
MAX_LABEL_CHARS = 44
VERDICT_ROOM = 80  # a due tick this close after a bar's end pushes its verdict past the tick

STATUS_NAMES: dict[DossierStatus, str] = {
    DossierStatus.SUBMITTED: "Mới đăng ký trực tuyến",
    DossierStatus.NOT_RECEIVED: "Không được tiếp nhận",
    DossierStatus.PROCESSING: "Đang xử lý",
    DossierStatus.AWAITING_SUPPLEMENT: "Chờ bổ sung hồ sơ",
    DossierStatus.AWAITING_OBLIGATION: "Chờ thực hiện nghĩa vụ tài chính",
    DossierStatus.WITHDRAWN: "Dừng xử lý (rút hồ sơ)",
    DossierStatus.REJECTED: "Dừng xử lý",
    DossierStatus.RESULT_READY: "Đã xử lý xong",
    DossierStatus.COMPLETED: "Đã trả kết quả",
}
VERDICT_NAMES = {"early": "Trước hạn", "on_time": "Đúng hạn", "late": "Quá hạn"}
END_MARKERS: dict[DossierStatus, str] = {
    DossierStatus.COMPLETED: "Đã trả kết quả (10)",
    DossierStatus.REJECTED: "Dừng xử lý (8)",
    DossierStatus.WITHDRAWN: "Rút hồ sơ, dừng xử lý (8)",
    DossierStatus.NOT_RECEIVED: "Không tiếp nhận (3)",
}
PAUSE_KINDS = {"supplement_requested": "supplement", "obligation_requested": "obligation"}

Position = Callable[[datetime], float]  # an instant's x, in pixels

# What XML 1.0 cannot carry at all, escaped or not (control characters, lone surrogates).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


# ----------------------------------------------------------------------------- what is drawn


@dataclass(frozen=True)
class Bar:
    """One hand-over: a step's pass from assignment to its end."""

    step: StepState
    pass_number: int  # 1 for a step's first pass
    earlier: bool  # a pass a return went back over
    start: datetime
    end: datetime
    open: bool  # still with the agency: drawn to `now`

    @property
    def legal_due(self) -> datetime | None:
        return self.step.original_due_at

    @property
    def extended(self) -> bool:
        return self.step.extensions > 0 and self.step.due_at != self.step.original_due_at

    @property
    def late_from(self) -> datetime | None:
        """Where the part past the legal due begins, if the bar reaches past it."""
        legal = self.legal_due
        if legal is None or self.end <= legal:
            return None
        return max(self.start, legal)


@dataclass(frozen=True)
class Pause:
    kind: str  # supplement | obligation
    start: datetime
    end: datetime
    open: bool


@dataclass(frozen=True)
class Marker:
    kind: str  # submitted | received | due | legal-due | finished | ended | now
    at: datetime
    label: str


def handovers(state: DossierState, now: datetime) -> tuple[list[Bar], int]:
    """The rows, in hand-over order, and how many earlier passes were left out (bound)."""
    returns = sorted(n.at for n in state.notes if n.kind == "returned")
    position = {st.id: index for index, st in enumerate(state.steps)}
    passes = [(st, True) for st in state.earlier_passes if st.assigned_at and st.agency]
    passes += [(st, False) for st in state.steps if st.assigned_at and st.agency]
    # An earlier pass before the current one handed over at the same instant.
    passes.sort(key=lambda p: (p[0].assigned_at, not p[1], position.get(p[0].id, 0)))
    numbers: dict[str, int] = {}
    bars = []
    for st, earlier in passes:  # numbered over every pass, drawn or not
        numbers[st.id] = numbers.get(st.id, 0) + 1
        bars.append(_bar(st, numbers[st.id], earlier, state, now, returns))
    earlier_bars = [b for b in bars if b.earlier]
    room = MAX_TIMELINE_ROWS - (len(bars) - len(earlier_bars))  # current steps: at most MAX_STEPS, always drawn
    left_out = set(map(id, earlier_bars[: max(len(earlier_bars) - room, 0)]))
    return [b for b in bars if id(b) not in left_out], len(left_out)


def _bar(st: StepState, number: int, earlier: bool, state: DossierState, now: datetime,
         returns: list[datetime]) -> Bar:
    assert st.assigned_at is not None
    start = st.assigned_at
    open_ = False
    if st.completed_at is not None:
        end = st.completed_at
    elif earlier:
        # A pass ended by a return: the first return at or after its hand-over.
        end = next((at for at in returns if at >= start), state.completed_at or now)
    elif state.completed_at is not None:
        end = state.completed_at  # taken back when the dossier ended
    else:
        end, open_ = now, st.status == StepStatus.ASSIGNED
    return Bar(step=st, pass_number=number, earlier=earlier, start=start, end=max(end, start), open=open_)


def pauses(state: DossierState, now: datetime) -> list[Pause]:
    """The applicant's turns: each request until the resubmission after it (or the end, or now)."""
    notes = sorted(state.notes, key=lambda n: n.at)
    found = []
    for index, note in enumerate(notes):
        if note.kind not in PAUSE_KINDS:
            continue
        back = next((n.at for n in notes[index + 1:] if n.kind == "resubmitted"), None)
        end = back or state.completed_at or now
        found.append(Pause(kind=PAUSE_KINDS[note.kind], start=note.at, end=max(end, note.at), open=back is None
                           and state.completed_at is None))
    return found


def markers(state: DossierState, now: datetime) -> list[Marker]:
    found = []
    if state.submitted_at is not None:
        found.append(Marker("submitted", state.submitted_at, "Nộp trực tuyến (1)"))
    if state.received:
        found.append(Marker("received", state.received_at, "Tiếp nhận (2)"))
        if state.due_at is not None:
            found.append(Marker("due", state.due_at, "Hẹn trả kết quả"))
        if state.original_due_at is not None and state.original_due_at != state.due_at:
            found.append(Marker("legal-due", state.original_due_at, "Hạn theo quy định"))
    if state.finished_at is not None:
        found.append(Marker("finished", state.finished_at, "Đã xử lý xong (9)"))
    if state.completed_at is not None:
        found.append(Marker("ended", state.completed_at, END_MARKERS.get(state.status, state.status.value)))
    else:
        found.append(Marker("now", now, "Hiện tại"))
    return found


# ----------------------------------------------------------------------------- the axis


class WorkingAxis:
    """Working time since `origin` for a fixed set of instants, walked once in time
    order (elapsed time is counted day by day, so each day is visited once)."""

    def __init__(self, calendar: WorkingCalendar, origin: datetime, instants: Iterable[datetime]) -> None:
        self.origin = origin
        self._at: dict[datetime, timedelta] = {origin: timedelta(0)}
        previous, total = origin, timedelta(0)
        for at in sorted(set(instants)):
            if at < origin:
                raise ValueError(f"instant {at.isoformat()} is before the axis' origin {origin.isoformat()}")
            total += calendar.elapsed(previous, at)
            previous = at
            self._at[at] = total

    def __call__(self, at: datetime) -> timedelta:
        return self._at[at]

    @property
    def span(self) -> timedelta:
        return max(self._at.values())


def day_starts(calendar: WorkingCalendar, first: datetime, last: datetime) -> Iterator[tuple[date, datetime]]:
    """Where each working day's work begins, from `first`'s day to `last`'s."""
    zone = calendar.timezone
    day, end = first.astimezone(zone).date(), last.astimezone(zone).date()
    while day <= end:
        if calendar.is_working_day(day):
            if isinstance(calendar, PeriodCalendar):
                yield day, calendar.periods_on(day)[0][0]
            else:
                yield day, datetime.combine(day, time.min, tzinfo=zone)
        day += timedelta(days=1)


# ----------------------------------------------------------------------------- layout


@dataclass
class Picture:
    """What the template draws: texts and pixel positions, nothing to compute."""

    width: int
    height: int
    title: str
    subtitle: str
    status_line: str
    axis_line: str
    omitted: str | None
    plot_left: float
    plot_right: float
    px_per_hour: float
    origin: str
    axis_y: float
    rows_top: float
    rows_bottom: float
    ticks: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[dict[str, Any]] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    legend: list[dict[str, Any]] = field(default_factory=list)


def render_timeline(state: DossierState, calendar: WorkingCalendar, now: datetime) -> str:
    """The dossier's timeline as an SVG document (UTF-8 text)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (got naive {now.isoformat()})")
    return _template().render(picture=layout(state, calendar, now))


def layout(state: DossierState, calendar: WorkingCalendar, now: datetime) -> Picture:
    bars, omitted = handovers(state, now)
    applicant = pauses(state, now)
    lines = markers(state, now)
    instants = {b.start for b in bars} | {b.end for b in bars} | {p.start for p in applicant}
    instants |= {p.end for p in applicant} | {m.at for m in lines}
    instants |= {at for b in bars for at in (b.step.due_at, b.legal_due, b.late_from) if at is not None}
    origin = min(instants)
    last = max(instants)
    starts = [(day, at) for day, at in day_starts(calendar, origin, last) if origin <= at <= last]
    axis = WorkingAxis(calendar, origin, instants | {at for _, at in starts})
    span = max(axis.span, MIN_SPAN)
    per_second = PLOT_WIDTH / span.total_seconds()

    def x(at: datetime) -> float:
        return round(PLOT_LEFT + axis(at).total_seconds() * per_second, 2)

    zone = calendar.timezone

    def local(at: datetime | None) -> str:
        return at.astimezone(zone).strftime("%d/%m/%Y %H:%M") if at else "-"

    rows_top = HEADER_HEIGHT + AXIS_HEIGHT
    rows_bottom = rows_top + max(len(bars), 1) * ROW_HEIGHT
    picture = Picture(
        width=WIDTH, height=0,
        title=f"Tiến trình giải quyết hồ sơ {state.dossier_id}",
        subtitle=_fit(f"{state.procedure_code}@{state.procedure_version} · {state.procedure_name}", 150),
        status_line=(f"Trạng thái: {STATUS_NAMES[state.status]} (mã {state.portal_status})"
                     f" · Tiếp nhận: {local(state.received_at) if state.received else '-'}"
                     f" · Hẹn trả: {local(state.due_at)}"
                     + (f" · Kết quả: {VERDICT_NAMES[state.verdict]}" if state.verdict else "")),
        axis_line=(f"Trục thời gian: giờ làm việc theo lịch {state.calendar} (ngày theo giờ {zone.key}); "
                   "ngoài giờ, ngày nghỉ và ngày lễ không chiếm chỗ."),
        omitted=(f"{omitted} lượt xử lý trước không được vẽ (tối đa {MAX_TIMELINE_ROWS} dòng)" if omitted else None),
        plot_left=PLOT_LEFT, plot_right=PLOT_LEFT + PLOT_WIDTH, px_per_hour=per_second * 3600,
        origin=origin.isoformat(), axis_y=HEADER_HEIGHT + AXIS_HEIGHT - 6, rows_top=rows_top,
        rows_bottom=rows_bottom,
    )
    picture.ticks = _ticks(starts, x, origin.astimezone(zone).date(), x(origin))
    for index, bar in enumerate(bars):
        picture.rows.append(_row(bar, index, rows_top + index * ROW_HEIGHT, x, local))
    picture.pauses = [{"kind": p.kind, "x": x(p.start), "width": round(x(p.end) - x(p.start), 2), "open": p.open,
                       "title": f"{'Chờ bổ sung hồ sơ' if p.kind == 'supplement' else 'Chờ nghĩa vụ tài chính'}: "
                                f"{local(p.start)} → {local(p.end) if not p.open else 'chưa nộp lại'}"}
                      for p in applicant]
    levels: list[float] = []  # where each label level's last label ends
    for marker in sorted(lines, key=lambda m: x(m.at)):
        at_x, width = x(marker.at), len(marker.label) * CHAR_WIDTH
        anchor_start = at_x + width < WIDTH - 4
        left, right = (at_x, at_x + width) if anchor_start else (at_x - width, at_x)
        level = next((i for i, end in enumerate(levels) if end < left - 6), len(levels))
        if level == len(levels):
            levels.append(right)
        levels[level] = right
        picture.markers.append({"kind": marker.kind, "x": at_x, "label": marker.label, "title": local(marker.at),
                                "label_y": rows_bottom + 14 + level * MARKER_LEVEL,
                                "anchor": "start" if anchor_start else "end"})
    legend_top = rows_bottom + 14 + max(len(levels), 1) * MARKER_LEVEL + 14
    picture.legend = _legend(legend_top)
    picture.height = int(legend_top + math.ceil(len(picture.legend) / LEGEND_COLUMNS) * LEGEND_LINE + 12)
    return picture


def _ticks(starts: list[tuple[date, datetime]], x: Position, first_day: date, origin_x: float) -> list[dict[str, Any]]:
    """Labelled working-day starts, thinned to MIN_TICK_SPACING apart; the first day's
    date at the origin when its start is not drawn (received mid-day)."""
    every = 1
    if len(starts) > 1:
        room = (x(starts[-1][1]) - x(starts[0][1])) / (len(starts) - 1)
        every = max(1, math.ceil(MIN_TICK_SPACING / max(room, 0.01)))
    days = [(day, x(at)) for day, at in starts[::every]]
    if not days or days[0][1] > origin_x + MIN_TICK_SPACING + 6:
        days.insert(0, (first_day, origin_x))
    ticks = []
    previous_year = None
    for day, at_x in days:
        label = day.strftime("%d/%m") if day.year == previous_year else day.strftime("%d/%m/%Y")
        previous_year = day.year
        ticks.append({"x": at_x, "label": label, "date": day.isoformat()})
    return ticks


def _row(bar: Bar, index: int, top: float, x: Position, local: Callable[[datetime | None], str]) -> dict[str, Any]:
    st = bar.step
    start, end = x(bar.start), x(bar.end)
    label = st.id + (f" (lượt {bar.pass_number})" if bar.pass_number > 1 or bar.earlier else "")
    verdict = VERDICT_NAMES.get(st.verdict or "", "")
    if bar.earlier and st.status == StepStatus.RETURNED:
        verdict = "Trả lại"
    elif bar.open:
        verdict = "Đang xử lý"
    elif st.status == StepStatus.SKIPPED:
        verdict = "Thu hồi"
    late = bar.late_from
    due = None if st.due_at is None else x(st.due_at)
    legal_due = x(bar.legal_due) if bar.extended and bar.legal_due is not None else None
    return {
        "index": index, "step_id": st.id, "label": label, "pass": bar.pass_number, "earlier": bar.earlier,
        "detail": _fit(f"{st.name} · {st.agency}", MAX_LABEL_CHARS), "status": st.status.value,
        "open": bar.open, "top": top, "bar_y": top + (ROW_HEIGHT - BAR_HEIGHT) / 2, "x": start,
        "width": round(end - start, 2), "end": end, "verdict": verdict,
        "verdict_x": max([end, *(at for at in (due, legal_due) if at is not None and at - end < VERDICT_ROOM)]) + 4,
        "late": None if late is None else {"x": x(late), "width": round(end - x(late), 2)},
        "due": due, "legal_due": legal_due,
        "title": (f"{st.id} · {st.name} · {st.agency}\n"
                  f"Nhận: {local(bar.start)}\nHạn: {local(st.due_at)}"
                  + (f" (gia hạn; hạn theo quy định {local(bar.legal_due)})" if bar.extended else "")
                  + f"\nKết thúc: {local(bar.end) if not bar.open else 'chưa'}"
                  + (f"\n{verdict}" if verdict else "")),
    }


def _legend(top: float) -> list[dict[str, Any]]:
    items = [
        ("bar", "Thời gian xử lý bước (nhận → xong)"),
        ("bar open", "Đang xử lý (đến hiện tại)"),
        ("bar earlier", "Lượt trước (bị trả lại)"),
        ("late", "Quá hạn theo quy định"),
        ("pause", "Chờ người nộp (bổ sung, nghĩa vụ tài chính)"),
        ("due", "Hạn xử lý của bước"),
        ("legal-due", "Hạn theo quy định (trước gia hạn)"),
        ("marker", "Mốc của hồ sơ: nộp (1), tiếp nhận (2), hẹn trả, xong (9), trả (10), hiện tại"),
    ]
    column_width = WIDTH / LEGEND_COLUMNS
    return [{"kind": kind, "label": label, "x": 12 + (i % LEGEND_COLUMNS) * column_width,
             "y": top + (i // LEGEND_COLUMNS) * LEGEND_LINE} for i, (kind, label) in enumerate(items)]


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _xml_text(value: Any) -> Any:
    """Every printed value: characters XML cannot carry become U+FFFD (then Jinja escapes)."""
    return _NOT_XML.sub("\ufffd", value) if isinstance(value, str) else value


def _number(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@functools.cache
def _template() -> Template:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, finalize=_xml_text, keep_trailing_newline=True)
    env.filters["px"] = _number
    return env.get_template(TEMPLATE)
