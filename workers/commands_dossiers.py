"""`lienthong dossiers submit|receive|refuse|complete|return|resubmit|pay|withdraw|extend|show|
sheet|timeline|resync|orphans`: dossiers through the dossier client (services/dossiers.py), as
the gateway does. Every change takes `--request-id` (the Update's id: a retry applies once)."""

from __future__ import annotations

import argparse
import asyncio
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from definitions.calendar import CalendarFileError, UnknownCalendarError, load_calendar
from services.dossiers import DossierUpdate, Refusal
from services.instants import in_utc
from services.submission import CHANNELS, LOCAL_TZ, StoreRegistry, SubmissionError, local_today, prepare_dossier
from workers import commands_orphans, commands_store, commands_timeline
from workers.arguments import note
from workers.commands_common import CliError, dossier_client, fetch_state, one_line, refused, store_sessions, when
from workflows.dossier import DossierWorkflow
from workflows.payloads import (
    CompleteStep,
    DeskAction,
    DossierState,
    DossierStatus,
    Extend,
    Outcome,
    Resubmit,
    ReturnStep,
    StepState,
)

RELATIVE_UNTIL = re.compile(r"\+([1-9][0-9]?)d")  # `extend --until +2d`: working days from now

def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    dossiers = commands.add_parser("dossiers", help="submit, receive, complete, return, withdraw, extend, show and "
                                                    "resync dossiers")
    action = dossiers.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    _submit_parser(action)
    _change_parsers(action)
    show = action.add_parser("show", help="a dossier's state")
    show.add_argument("dossier_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print the state as JSON (instants in UTC), nothing else")
    show.set_defaults(run=_show)
    commands_store.add_dossier_parsers(action)
    commands_timeline.add_dossier_parsers(action)
    commands_orphans.add_dossier_parsers(action)


def _submit_parser(action: Any) -> None:
    text = ("start a dossier received at a one-stop desk, or submitted online to one (it then waits for the desk "
            "to receive it: portal status 1)")
    submit = action.add_parser("submit", help=text, description=text)
    submit.add_argument("--procedure", required=True, metavar="CODE[@VERSION]|PATH",
                        help="a deployed procedure (newest version in effect today), or a draft file")
    submit.add_argument("--id", required=True, dest="dossier_id", metavar="ID", help="the dossier code")
    submit.add_argument("--data", required=True, metavar="JSON", help='e.g. \'{"commune": "xa-tan-lap"}\'')
    submit.add_argument("--channel", choices=CHANNELS, default="in_person",
                        help="how the applicant submitted it (default in_person); an online dossier waits for its "
                             "desk to receive it (portal status 1) unless --no-await-receipt")
    submit.add_argument("--await-receipt", action=argparse.BooleanOptionalAction, default=None,
                        help="wait for the desk to check it and receive it (`dossiers receive`) or refuse it "
                             "(`dossiers refuse`) before its legal clock starts; default: yes for online, no "
                             "otherwise (an in-person or postal dossier checked before receipt)")
    submit.add_argument("--received-at", metavar="ISO", help="with a UTC offset; default: now (for a dossier that "
                                                             "waits for receipt: when it was submitted)")
    submit.add_argument("--received-by", metavar="AGENCY",
                        help="the one-stop desk that received it, or that an online dossier is addressed to "
                             "(required then); any desk whose receiving scope covers the procedure "
                             "(Decree 118/2025 Art. 14)")
    submit.add_argument("--result-desk", metavar="DESK", help="the one-stop desk where the applicant collects the "
                                                              "result (Art. 14); default: the receiving desk")
    submit.add_argument("--request-id", metavar="KEY", help="idempotency key: a retried submission with the same "
                        "key starts the dossier once (any other is refused: an id is never reused)")
    submit.set_defaults(run=_submit)


def _change_parsers(action: Any) -> None:
    request_id = {"metavar": "KEY", "help": "idempotency key: a retried call with the same key applies once"}

    def add(name: str, text: str, **options: Any) -> Any:
        # The help in `dossiers --help`, and the description in `dossiers NAME --help`.
        return action.add_parser(name, help=text, description=text, **options)

    receive = add("receive", "a desk receives a dossier submitted online (portal status 1 → 2): "
                                                "its legal clock starts now (Decree 118/2025 Art. 14-15)")
    receive.add_argument("dossier_id", metavar="ID")
    receive.add_argument("--agency", required=True, metavar="DESK", help="the desk the dossier is addressed to")
    receive.add_argument("--note", type=note, metavar="TEXT")
    receive.add_argument("--request-id", **request_id)
    receive.set_defaults(run=_desk_change, change="receive")

    refuse = add("refuse", "a desk refuses to receive a dossier waiting for receipt (Mẫu 03, "
                                              "portal status 3): it never counts as received")
    refuse.add_argument("dossier_id", metavar="ID")
    refuse.add_argument("--agency", required=True, metavar="DESK", help="the desk the dossier is addressed to")
    refuse.add_argument("--note", type=note, required=True, metavar="WHY", help="the reasons (they go on Mẫu 03)")
    refuse.add_argument("--request-id", **request_id)
    refuse.set_defaults(run=_desk_change, change="refuse")

    complete = add("complete", "an agency reports its step done (approved), asks the applicant "
                                                  "to supplement documents or to pay a financial obligation, or "
                                                  "rejects the dossier")
    complete.add_argument("dossier_id", metavar="ID")
    complete.add_argument("step_id", metavar="STEP")
    complete.add_argument("--agency", required=True, metavar="CODE")
    complete.add_argument("--outcome", choices=[o.value for o in Outcome], default=Outcome.APPROVED.value,
                          help="approved (default); supplement (portal status 5) or obligation (6: fees, land tax; "
                               "Decree 118 Art. 24) stop the clocks until `dossiers resubmit`; rejected ends it")
    complete.add_argument("--note", type=note, metavar="TEXT",
                          help="required unless approved: what to supplement, the amount and what it is for, "
                               "or why it is rejected")
    complete.add_argument("--request-id", **request_id)
    complete.set_defaults(run=_complete)

    back = add("return", "send the dossier back to an earlier step (the step's `returns_to`, "
                                            "an approved internal procedure): that step is handed over again; "
                                            "the legal due does not move")
    back.add_argument("dossier_id", metavar="ID")
    back.add_argument("step_id", metavar="STEP", help="your current step")
    back.add_argument("--agency", required=True, metavar="CODE")
    back.add_argument("--to", required=True, dest="target", metavar="EARLIER_STEP")
    back.add_argument("--note", type=note, required=True, metavar="WHY")
    back.add_argument("--request-id", **request_id)
    back.set_defaults(run=_return)

    resubmit = add("resubmit", "the applicant supplemented the documents or paid the financial obligation (`pay` "
                               "is the same command): the clocks resume (Decree 118 Art. 16, 24)", aliases=["pay"])
    resubmit.add_argument("dossier_id", metavar="ID")
    resubmit.add_argument("--agency", required=True, metavar="CODE",
                          help="the agency relaying the supplement or the payment (the desk that received it, or an "
                               "agency with a step on the dossier); recorded as who resubmitted")
    resubmit.add_argument("--note", type=note, metavar="TEXT", help="e.g. the receipt number of the payment")
    resubmit.add_argument("--request-id", **request_id)
    resubmit.set_defaults(run=_resubmit)

    withdraw = add("withdraw", "the applicant withdraws the dossier (Decree 118 Art. 21, Mẫu 05; "
                                                  "portal status 7, then stopped: 8), allowed until a decision "
                                                  "exists; every open step leaves its agency's inbox")
    withdraw.add_argument("dossier_id", metavar="ID")
    withdraw.add_argument("--agency", required=True, metavar="DESK",
                          help="the desk that received it, or an agency holding one of its current steps")
    withdraw.add_argument("--note", type=note, required=True, metavar="WHY",
                          help="the applicant's request and its date")
    withdraw.add_argument("--request-id", **request_id)
    withdraw.set_defaults(run=_desk_change, change="withdraw")

    extend = add("extend", "a new appointment, with an apology (Mẫu 04)")
    extend.add_argument("dossier_id", metavar="ID")
    extend.add_argument("--agency", required=True, metavar="CODE")
    extend.add_argument("--until", required=True, metavar="ISO|+Nd",
                        help="new due: a date-time (without an offset: Vietnam time), or +N working days from now")
    extend.add_argument("--reason", type=note, required=True, metavar="TEXT")
    extend.add_argument("--step", dest="step_id", metavar="STEP")
    extend.add_argument("--request-id", **request_id)
    extend.set_defaults(run=_extend)


# ----------------------------------------------------------------------------- commands


def _submit(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with store_sessions(settings) as sessions, sessions() as session:
            dossier = prepare_dossier(args.procedure, args.dossier_id, args.data,
                                      StoreRegistry(session, settings.definitions), local_today(),
                                      args.channel, args.received_at, args.received_by,
                                      await_receipt=args.await_receipt, result_desk=args.result_desk)
    except SubmissionError as err:
        raise CliError(str(err)) from err

    request_id = args.request_id or str(uuid.uuid4())

    async def run() -> DossierState | None:
        async with dossier_client(settings) as dossiers:
            try:
                return await dossiers.start(dossier, request=request_id)
            except Refusal as refusal:
                raise refused(refusal, request_id=request_id) from refusal

    state = asyncio.run(run())
    print(f"dossier {dossier.dossier_id} submitted: {dossier.snapshot.ref} {dossier.snapshot.procedure.name}")
    if dossier.awaits_receipt and (state is None or state.status == DossierStatus.SUBMITTED):
        print(f"waiting:  for {dossier.received_by} to receive it (portal status 1): `lienthong dossiers receive "
              f"{dossier.dossier_id} --agency {dossier.received_by}`; its clock starts then")
    elif state is None or state.due_at is None:
        print("due:      not computed yet: no worker has picked it up (is `lienthong worker` running?)")
    else:
        print(f"received: {when(state.received_at)}")
        print(f"due:      {when(state.due_at)}")
    return 0


def _complete(args: argparse.Namespace, settings: Settings) -> int:
    request = CompleteStep(step_id=args.step_id, agency=args.agency, outcome=args.outcome, note=args.note)
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.complete_step, request, args.request_id))
    if args.outcome == Outcome.SUPPLEMENT.value:
        print(f"dossier {state.dossier_id}: supplement requested at step {args.step_id}; dossier "
              f"{state.status.value}: every clock stops until the applicant resubmits"
              + (f" (by {when(state.supplement_due_at)})" if state.supplement_due_at else ""))
        return 0
    if args.outcome == Outcome.OBLIGATION.value:
        clocks = "every clock stops" if state.paused_at else "the clocks go on (the procedure's on_obligation)"
        print(f"dossier {state.dossier_id}: financial obligation requested at step {args.step_id}; dossier "
              f"{state.status.value} (portal status {state.portal_status}): {clocks} until it is paid "
              f"(`lienthong dossiers pay {state.dossier_id} --agency ...`)")
        return 0
    step = state.step(args.step_id)
    print(f"dossier {state.dossier_id}: step {args.step_id} {step.status.value if step else args.outcome}"
          f"{f' ({step.verdict})' if step and step.verdict else ''}; dossier {state.status.value}")
    return 0


def _resubmit(args: argparse.Namespace, settings: Settings) -> int:
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.resubmit,
                                   Resubmit(agency=args.agency, note=args.note),
                                   args.request_id))
    last = next((n for n in reversed(state.notes) if n.kind == "resubmitted"), None)
    print(f"dossier {state.dossier_id}: resubmitted{f' ({last.text})' if last else ''}; dossier "
          f"{state.status.value}, due {when(state.due_at)}")
    return 0


# The desk's changes: the Update, and how the desk is checked against the registry first
# (services/dossiers.py at_desk): receiving, refusing, or not at all (a withdrawal).
_DESK_CHANGES: dict[str, tuple[DossierUpdate, str | None]] = {
    "receive": (DossierWorkflow.receive, "receiving"),
    "refuse": (DossierWorkflow.refuse_receipt, "refusing"),
    "withdraw": (DossierWorkflow.withdraw, None),
}


def _desk_change(args: argparse.Namespace, settings: Settings) -> int:
    update, desk_check = _DESK_CHANGES[args.change]
    action = DeskAction(agency=args.agency, note=args.note)
    state = asyncio.run(_change(settings, args.dossier_id, update, action, args.request_id, desk_check=desk_check))
    if args.change == "receive":
        print(f"dossier {state.dossier_id}: received by {state.received_by} at {when(state.received_at)}; "
              f"dossier {state.status.value} (portal status {state.portal_status}), due {when(state.due_at)}")
    elif args.change == "refuse":
        print(f"dossier {state.dossier_id}: not received (refused by {args.agency}, portal status "
              f"{state.portal_status}); it counts in no figure")
    else:
        print(f"dossier {state.dossier_id}: withdrawn at the applicant's request (portal status 7, now "
              f"{state.portal_status}); verdict {state.verdict or '-'}")
    return 0


def _return(args: argparse.Namespace, settings: Settings) -> int:
    request = ReturnStep(step_id=args.step_id, agency=args.agency, to=args.target, note=args.note)
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.return_step, request, args.request_id))
    print(f"dossier {state.dossier_id}: step {args.step_id} sent the dossier back to step {args.target} "
          f"(return {state.return_count}); legal due {when(state.original_due_at)} unchanged")
    return 0


def _extend(args: argparse.Namespace, settings: Settings) -> int:
    until = _until(args.until, args.dossier_id, settings)
    request = Extend(agency=args.agency, new_due=until, reason=args.reason, step_id=args.step_id)
    state = asyncio.run(_change(settings, args.dossier_id, DossierWorkflow.extend, request, args.request_id))
    print(f"dossier {state.dossier_id}: extended until {when(until)}; dossier due {when(state.due_at)}")
    return 0


def _until(value: str, dossier_id: str, settings: Settings) -> datetime:
    """`--until`: an ISO date-time (Vietnam time without an offset), or `+Nd`: N working
    days from now on the dossier's calendar."""
    relative = RELATIVE_UNTIL.fullmatch(value.strip())
    if relative is None:
        try:
            until = datetime.fromisoformat(value)
        except ValueError as err:
            raise CliError(f"--until {value!r} is not an ISO date-time (e.g. 2026-03-02T17:00) "
                           "or +N working days (e.g. +2d)") from err
        return until if until.tzinfo is not None else until.replace(tzinfo=LOCAL_TZ)  # operators write Vietnam time
    state = asyncio.run(fetch_state(settings, dossier_id))
    try:
        calendar = load_calendar(state.calendar, settings.definitions)
    except (UnknownCalendarError, CalendarFileError) as err:
        raise CliError(f"--until {value}: calendar {state.calendar!r} of dossier {dossier_id} cannot be read: "
                       f"{one_line(err)}") from err
    return calendar.add(datetime.now(UTC), f"{relative.group(1)}d")


async def _change(settings: Settings, dossier_id: str, update: DossierUpdate, arg: Any,
                  request_id: str | None, *, desk_check: str | None = None) -> DossierState:
    """Send an Update (idempotency key: --request-id, else a new one) and answer with the
    dossier's whole state; every refusal is one line. `desk_check` ("receiving" or
    "refusing"): the desk is checked against the registry first."""
    request_id = request_id or str(uuid.uuid4())
    async with dossier_client(settings) as dossiers:
        try:
            if desk_check is not None:
                return await dossiers.at_desk(dossier_id, update, arg, request_id,
                                              receiving=desk_check == "receiving")
            return await dossiers.change(dossier_id, update, arg, request_id)
        except Refusal as refusal:
            raise refused(refusal, request_id=request_id) from refusal


def _show(args: argparse.Namespace, settings: Settings) -> int:
    state = asyncio.run(fetch_state(settings, args.dossier_id))
    if args.json:
        print(in_utc(state).model_dump_json())  # every instant in UTC, as the gateway answers
    else:
        print(render_state(state))
    return 0


# ----------------------------------------------------------------------------- human view


def render_state(state: DossierState) -> str:
    lines = [
        f"dossier {state.dossier_id}: {state.procedure_code}@{state.procedure_version} {state.procedure_name}",
        f"  sector {state.sector}, level {state.level}, calendar {state.calendar}, channel {state.channel}",
        f"status:       {state.status.value} (portal status {state.portal_status})",
    ]
    if state.submitted_at is not None:
        lines.append(f"submitted:    {when(state.submitted_at)}")
    waiting = state.status == DossierStatus.SUBMITTED
    if waiting:
        lines.append(f"addressed to: {state.received_by or '-'} (waiting for it to receive or refuse the dossier)")
    else:
        lines.append(f"received:     {when(state.received_at)}"
                     + (f" by {state.received_by}" if state.received_by else ""))
    if state.result_desk is not None:
        lines.append(f"result desk:  {state.result_desk}")
    lines += [
        f"due:          {when(state.due_at)}"
        + (f" (original {when(state.original_due_at)})" if state.original_due_at != state.due_at else ""),
        f"overdue:      {'yes' if state.overdue else 'no'}",
        f"verdict:      {state.verdict or '-'}",
    ]
    if state.finished_at and state.finished_at != state.completed_at:
        lines.append(f"processed:    {when(state.finished_at)} (portal status 9: the result waits at the desk)")
    if state.completed_at:
        result = f": {state.result_note}" if state.result_note else ""
        lines.append(f"finished:     {when(state.completed_at)}{result}")
    if state.paused_at:
        waiting_for = "supplement" if state.status == DossierStatus.AWAITING_SUPPLEMENT else "financial obligation"
        lines.append(f"paused:       {when(state.paused_at)} (awaiting {waiting_for}"
                     + (f", until {when(state.supplement_due_at)})" if state.supplement_due_at else ")"))
    counts = [f"{n} {what}" for n, what in ((state.supplement_count, "supplement request(s)"),
                                            (state.obligation_count, "financial obligation(s)"),
                                            (state.return_count, "return(s) to an earlier step"),
                                            (state.extensions, "new appointment(s)")) if n]
    if counts:
        lines.append(f"asked:        {', '.join(counts)}")
    lines.append("steps:")
    lines += _step_table(state.steps)
    if state.earlier_passes:
        lines.append("earlier passes (before a return):")
        lines += _step_table(state.earlier_passes)
    if state.notes:
        lines.append("notes:")
        for note in state.notes:
            who = " ".join(part for part in (note.agency, f"step {note.step_id}" if note.step_id else None) if part)
            lines.append(f"  {when(note.at)}  {note.kind}{f' ({who})' if who else ''}: {note.text}")
    return "\n".join(lines)


def _step_table(steps: list[StepState]) -> list[str]:
    rows = [("STEP", "AGENCY", "STATUS", "ASSIGNED", "DUE", "COMPLETED", "VERDICT")]
    for step in steps:
        rows.append((step.id, step.agency or "-", step.status.value, when(step.assigned_at), when(step.due_at),
                     when(step.completed_at), step.verdict or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    states: list[StepState | None] = [None, *steps]
    for row, st in zip(rows, states):
        line = "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths))
        if st is not None and st.overdue:
            line += "  OVERDUE"
        lines.append(line.rstrip())
        if st is not None and st.note:
            lines.append(f"      note: {st.note}")
    return lines
