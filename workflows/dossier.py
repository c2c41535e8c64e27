"""DossierWorkflow: one dossier (hồ sơ), interpreted from its procedure snapshot.

Deterministic and I/O-free. Working time is computed here, from the calendar
snapshot in the input (`workflows.clock`); everything that touches the world is
an activity, called by name so this module depends on `definitions` and the
payload models only.

Shape of a run: compute the total due from the receipt, walk the steps
(sequence / parallel / when), and for each step wait for its completion Update.
One watcher holds one timer, for the earliest due still to be acted on; a passed
due marks the step overdue and escalates, and the wait goes on (Decision 3:
overdue never fails a dossier). A supplement request stops every clock until the
applicant resubmits (Decision 4).

Lean by design (docs/performance.md): changes are queued as audit-log events and
written by one local activity per activation (`write_changes`, one transaction:
events, projection, inboxes); search attributes are upserted only when a value
changes; Update answers and the result are small (the `state` query is whole).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from definitions.calendar import calendar_from_snapshot, judge
    from definitions.limits import MAX_CALENDAR_APPLICATIONS
    from definitions.schema import Parallel, Sequence, Step, UnknownAgencyError, iter_steps, resolve_agency
    from workflows import search_attributes as sa
    from workflows.clock import due as compute_due
    from workflows.clock import extendable_until, resumed_due
    from workflows.payloads import (
        APPLICANT_TURN_OPENED_BY,
        PAUSED_STATUSES,
        PORTAL_STATUS,
        AgencyNotification,
        ApplyCalendar,
        ChangeAnswer,
        CompleteStep,
        DeskAction,
        DossierEvent,
        DossierInput,
        DossierResult,
        DossierState,
        DossierStatus,
        Due,
        DueBasis,
        Extend,
        Note,
        Outcome,
        PortalStatus,
        Resubmit,
        ReturnStep,
        Routing,
        StepState,
        StepStatus,
        StoreWrite,
        applicant_name,
    )

# The store comes back eventually: retry without a cap, backing off to once every
# 5 minutes (local activities past a minute wait on a workflow timer between tries).
STORE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(minutes=5))
STORE_TIMEOUT = timedelta(seconds=30)
# Webhooks: about an hour of retries (1 s doubling to 5 min), then recorded as failed.
NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                           maximum_interval=timedelta(minutes=5), maximum_attempts=20,
                           non_retryable_error_types=["MissingSecret"])
NOTIFY_TIMEOUT = timedelta(seconds=20)
NOTIFICATION_KINDS = {"assigned": "step_assigned", "resumed": "step_resumed", "withdrawn": "step_withdrawn"}
# Condition rounds with no new event before a write goes out: a change can take a few
# rounds to run its course (a completion wakes the next step, which is assigned).
SETTLE_ROUNDS = 3
DOSSIER_DUE = "#dossier"  # the watcher's keys: step ids cannot start with "#"
SUPPLEMENT_DUE = "#supplement"


def set_due(target: DossierState | StepState, due: Due, *, current: bool = True, original: bool = False) -> None:
    """Set the current due (what the watcher arms) and/or the original one (what
    verdicts are judged against); an extension changes only the current one."""
    if current:
        target.due_at = due.due_at
        target.due_basis = due.basis
        if isinstance(target, StepState):
            target.extendable_until = due.extendable_until
    if original:
        target.original_due_at = due.due_at
        target.original_due_day_start = due.due_day_start
        target.original_due_basis = due.basis


# The detail of a NotCurrent refusal for a step not routed yet. After a worker died
# between a store write and its workflow task, the write may show a step in an inbox
# that the workflow, catching up, has not routed again yet: a caller that sees the step
# in the inbox retries such a refusal for a few seconds (workers/temporal.py).
NOT_ROUTED_YET = "not_routed_yet"


def refuse(kind: str, message: str, *details: str) -> ApplicationError:
    """A refusal an agency's system can act on: `kind` is stable, the message says why."""
    return ApplicationError(message, *details, type=kind, non_retryable=True)


def _snapshot(state: DossierState) -> DossierState:
    """The state as it is now, for a store write. The workflow assigns new values to
    the state's fields, except in the step rows (changed in place) and the notes (a list
    appended to): those are copied, the rest is shared. A deep copy cost ~5% of the
    worker's CPU (docs/performance.md)."""
    return state.model_copy(update={"steps": [st.model_copy() for st in state.steps], "notes": list(state.notes)})


def _row(st: StepState) -> tuple[Any, ...]:
    """What the projection keeps of a step: a step row is rewritten when this changes."""
    return (st.status, st.agency, st.assigned_at, st.due_at, st.original_due_at, st.completed_at,
            st.verdict, st.overdue, st.escalations, st.extensions)


@workflow.defn(name="DossierWorkflow")
class DossierWorkflow:
    @workflow.init
    def __init__(self, input: DossierInput) -> None:
        procedure = input.snapshot.procedure
        self._input = input
        self._procedure = procedure
        self._calendar = calendar_from_snapshot(input.calendar)
        self._webhooks = frozenset(input.webhook_agencies)
        self._received_by = input.received_by
        self._awaits_receipt = input.awaits_receipt
        submitted_at = input.received_at or workflow.info().workflow_start_time
        self._state = DossierState(
            dossier_id=input.dossier_id,
            procedure_code=procedure.code,
            procedure_version=procedure.version,
            procedure_name=procedure.name,
            content_hash=input.snapshot.content_hash,
            sector=procedure.sector,
            level=procedure.level,
            calendar=procedure.calendar,
            channel=input.channel,
            # The start event's time (`workflow_start_time`), not workflow.now() nor
            # `start_time` (the first workflow task's, which a replay can see later):
            # a replay (a query on an evicted dossier) must rebuild the same state.
            received_at=submitted_at,
            submitted_at=submitted_at if self._awaits_receipt else None,
            received_by=input.received_by,  # before receipt: the desk it is addressed to
            result_desk=input.result_desk,
            status=DossierStatus.SUBMITTED if self._awaits_receipt else DossierStatus.PROCESSING,
            portal_status=PortalStatus.SUBMITTED_ONLINE if self._awaits_receipt else PortalStatus.RECEIVED,
            steps=[
                StepState(id=step.id, name=step.title, deadline=step.deadline, escalate_to=step.escalate_to)
                for step in procedure.iter_steps()
            ],
        )
        self._seq = 0
        self._written = 0  # the newest seq the store holds
        self._events: list[DossierEvent] = []  # recorded, not yet written
        self._routings: list[Routing] = []
        self._written_rows: dict[str, tuple[Any, ...]] = {}
        self._held_step: str | None = None  # the step waiting for the applicant (supplement, obligation)
        self._returning: dict[str, str] = {}  # step id -> the earlier step it sent the dossier back to
        self._calendar_applications = 0
        self._ended = False
        self._notifications: list[asyncio.Future[None]] = []
        # Due instants whose passing was already acted on, by watcher key.
        self._fired: dict[str, datetime] = {}
        # The search-attribute values last compared with the workflow's (only this
        # workflow upserts them): unchanged values need no second look.
        self._attributes_checked: list[tuple[Any, Any]] | None = None

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, input: DossierInput) -> DossierResult:
        state = self._state
        # Background loops: their pending waits are simply dropped when the run returns.
        asyncio.ensure_future(self._write_changes())
        asyncio.ensure_future(self._watch_dues())
        if self._awaits_receipt:
            # Submitted online (or posted): nothing counts until a desk receives it (status 1 -> 2).
            self._record("submitted", actor="applicant", note=f"channel {input.channel}",
                         portal=PortalStatus.SUBMITTED_ONLINE, at=state.received_at)
            await workflow.wait_condition(lambda: self._ended or state.status != DossierStatus.SUBMITTED)
        else:
            self._receive(input.received_by, state.received_at, note=f"channel {input.channel}")
        if not self._ended:
            await self._run_nodes(list(self._procedure.steps))
        if not self._ended:
            if state.status != DossierStatus.RESULT_READY:
                # No step returns the result: processing ends with the last step, and the
                # result is handed over with it (status 9 and 10 at the same instant).
                self._finish_processing(note="no result step: the result is returned with the last step")
            self._finish(DossierStatus.COMPLETED, actor=self._state.result_desk or "system", note=None)
        # The final transition is written, in-flight Updates have their answers, and
        # webhooks still being retried finish (or fail and are recorded).
        await workflow.wait_condition(
            lambda: not self._events and self._written == self._seq and workflow.all_handlers_finished()
            and all(n.done() for n in self._notifications)
        )
        return DossierResult(dossier_id=state.dossier_id, status=state.status, portal_status=state.portal_status,
                             verdict=state.verdict, completed_at=state.completed_at, last_event_seq=self._seq)

    def _receive(self, desk: str | None, at: datetime, note: str | None) -> None:
        """Received by a desk (status 2): the legal clock starts (the next working day's
        start when the calendar says so)."""
        state = self._state
        state.received_at = at
        state.received_by = desk
        self._received_by = desk
        state.result_desk = state.result_desk or desk
        state.status = DossierStatus.PROCESSING
        state.portal_status = PortalStatus.RECEIVED
        # The procedure's receipt cut-off (if its text has one) wins over the calendar's.
        state.clock_started_at = self._calendar.start_of_clock(at, self._procedure.receipt_cutoff)
        set_due(state, self._due(state.clock_started_at, self._procedure.deadline), original=True)
        self._record("received", actor=desk or "applicant", note=note, portal=PortalStatus.RECEIVED, at=at)

    async def _run_nodes(self, nodes: list[Any]) -> None:
        index = 0
        while index < len(nodes) and not self._ended:
            node = nodes[index]
            if isinstance(node, Step):
                await self._run_step(node)
                target = self._returning.pop(node.id, None)
                if target is not None:
                    # Sent back (a `returns_to` of this list, checked by the loader): run again from there.
                    index = next(i for i, n in enumerate(nodes) if isinstance(n, Step) and n.id == target)
                    self._reset_steps(nodes[index:])
                    continue
            elif isinstance(node, Parallel):
                await asyncio.gather(*(self._run_nodes([branch]) for branch in node.parallel))
            elif isinstance(node, Sequence):
                await self._run_nodes(list(node.sequence))
            index += 1

    def _reset_steps(self, nodes: list[Any]) -> None:
        """Steps a return goes back over start again; their earlier pass stays on the sheet."""
        for step in iter_steps(nodes):
            st = self._step_state(step.id)
            if st.status != StepStatus.PENDING or st.assigned_at is not None:
                self._state.earlier_passes.append(st.model_copy())
            fresh = StepState(id=st.id, name=st.name, deadline=st.deadline, escalate_to=step.escalate_to)
            for name in StepState.model_fields:
                setattr(st, name, getattr(fresh, name))

    async def _run_step(self, step: Step) -> None:
        st = self._step_state(step.id)
        if step.when is not None and not step.when.holds(self._input.data):
            st.status = StepStatus.SKIPPED
            cond = step.when
            self._record("step_skipped", step_id=step.id,
                         note=f"condition on {cond.field!r} ({cond.operator}) is false")
            return
        if self._held_step is not None:
            # A step reached while the applicant holds the dossier starts when they give it back.
            await workflow.wait_condition(lambda: self._ended or self._held_step is None)
        if self._ended:
            return
        state = self._state
        result_step = step.id == self._procedure.result_step
        if result_step:
            self._finish_processing(note=None)
        try:
            st.agency = resolve_agency(step.agency, self._input.data)
            if result_step and state.result_desk:
                st.agency = state.result_desk  # returned where the applicant collects it (Art. 14)
            if step.escalate_to:
                st.escalate_to = resolve_agency(step.escalate_to, self._input.data)
        except UnknownAgencyError as err:  # submission checks this; a bug if it happens
            raise ApplicationError(str(err), type="UnknownAgency", non_retryable=True) from err
        st.status = StepStatus.ASSIGNED
        # Until an agency has finished something, the dossier has been with the
        # receiving desk since receipt; later steps start at their handover.
        first = state.return_count == 0 and not any(s.status == StepStatus.COMPLETED for s in state.steps)
        st.assigned_at = state.received_at if first else workflow.now()
        assert state.clock_started_at is not None
        set_due(st, self._due(max(st.assigned_at, state.clock_started_at), step.deadline), original=True)
        # The first hand-over after receipt moves the portal status from 2 to 4.
        portal = None
        if state.portal_status == PortalStatus.RECEIVED:
            state.portal_status = portal = PortalStatus.IN_PROGRESS
        self._record("step_assigned", step_id=st.id, actor="system", note=f"routed to {st.agency}", portal=portal)
        self._route(st, "assigned")
        await workflow.wait_condition(lambda: self._ended or st.status != StepStatus.ASSIGNED)

    # ----------------------------------------------------------- dues (one timer)

    def _open_dues(self) -> list[tuple[str, datetime]]:
        """The dues whose passing is still to be acted on. While the applicant holds
        the dossier only the supplement deadline runs."""
        state = self._state
        if self._ended or state.status == DossierStatus.SUBMITTED:
            return []  # no clock runs before receipt
        if state.paused_at is not None:
            dues = [(SUPPLEMENT_DUE, state.supplement_due_at)]
        else:
            # Once processing finished (status 9) the dossier is judged: only the return step's due runs.
            dues = [] if state.status == DossierStatus.RESULT_READY else [(DOSSIER_DUE, state.due_at)]
            dues += [(st.id, st.due_at) for st in state.steps if st.status == StepStatus.ASSIGNED]
        return [(key, at) for key, at in dues if at is not None and self._fired.get(key) != at]

    async def _watch_dues(self) -> None:
        """One lazy timer for the earliest open due. It is re-armed only when an
        earlier due appears; a due that moved later (a step done, an extension) is
        looked at when the timer fires, so most changes start or cancel no timer."""
        while True:
            dues = self._open_dues()
            if not dues:
                await workflow.wait_condition(lambda: bool(self._open_dues()))
                continue
            armed = min(at for _, at in dues)
            left = armed - workflow.now()
            if left > timedelta(0):
                try:
                    # Evaluated within this iteration only (wait_condition returns before `armed` changes).
                    await workflow.wait_condition(lambda: any(at < armed for _, at in self._open_dues()),  # noqa: B023
                                                  timeout=left)
                    continue  # an earlier due appeared: arm for it
                except TimeoutError:
                    pass
            now = workflow.now()
            for key, at in self._open_dues():
                if at <= now and not self._ended:
                    self._fired[key] = at
                    self._due_passed(key)

    def _due_passed(self, key: str) -> None:
        state = self._state
        if key == SUPPLEMENT_DUE:
            note = f"the applicant did not supplement within {self._procedure.supplement_deadline}"
            state.notes.append(Note(at=workflow.now(), kind="supplement_expired", text=note,
                                    step_id=self._held_step))
            self._finish(DossierStatus.REJECTED, actor="system", note=note)
        elif key == DOSSIER_DUE:
            assert state.due_at is not None
            state.overdue = True
            self._record("dossier_overdue", actor="system", note=f"due {state.due_at.isoformat()} passed")
        else:
            st = self._step_state(key)
            assert st.due_at is not None and st.agency is not None
            st.overdue = True
            if st.escalate_to:
                st.escalations += 1
            self._record("step_overdue", step_id=st.id, actor="system",
                         note=f"{st.agency} missed due {st.due_at.isoformat()}"
                         + (f"; escalated to {st.escalate_to}" if st.escalate_to else ""))
            if st.escalate_to and st.escalate_to in self._webhooks:
                self._notify(self._notification("escalation", st, recipient=st.escalate_to))

    # -------------------------------------------------------------- updates

    @workflow.update
    async def complete_step(self, request: CompleteStep) -> ChangeAnswer:
        # No await before the change is made: a second completion arriving now is
        # judged against the new state by its validator.
        st = self._step_state(request.step_id)
        outcome = Outcome(request.outcome)
        now = workflow.now()
        st.note = request.note
        if outcome in (Outcome.SUPPLEMENT, Outcome.OBLIGATION):
            self._ask_applicant(st, request, outcome)
        elif outcome == Outcome.REJECTED:
            self._judge_step(st, outcome, now)
            st.status = StepStatus.REJECTED
            self._state.notes.append(Note(at=now, kind="rejected", agency=request.agency,
                                          step_id=st.id, text=request.note or ""))
            self._finish(DossierStatus.REJECTED, actor=request.agency, note=request.note, step_id=st.id)
            self._route(st, "withdrawn")
        else:
            self._judge_step(st, outcome, now)
            st.status = StepStatus.COMPLETED
            self._record("step_completed", step_id=st.id, actor=request.agency,
                         note=f"{st.verdict}" + (f": {request.note}" if request.note else ""))
            self._route(st, "withdrawn")
        return await self._answer(st)

    @complete_step.validator
    def _validate_complete_step(self, request: CompleteStep) -> None:
        self._refuse_if_finished()
        st = self._current_step(request.step_id, request.agency)
        if request.outcome not in {o.value for o in Outcome}:
            *others, last = (o.value for o in Outcome)
            raise refuse("UnknownOutcome", f"unknown outcome {request.outcome!r}: expected "
                         f"{', '.join(others)} or {last}")
        if request.outcome != Outcome.APPROVED and not (request.note or "").strip():
            raise refuse("NoteRequired", f"outcome {request.outcome!r} needs a note saying why"
                         + (" (the amount and what it is for)" if request.outcome == Outcome.OBLIGATION else ""))
        state = self._state
        if state.status == DossierStatus.RESULT_READY and request.outcome != Outcome.APPROVED:
            raise refuse("DecisionMade", f"dossier {state.dossier_id} is decided (status 9, result at the desk); "
                         f"step {st.id!r} returns the result: only outcome approved")
        if self._held_step is not None:
            supplement = state.status == DossierStatus.AWAITING_SUPPLEMENT
            waiting = "supplement" if supplement else "financial obligation"
            kind = "AwaitingSupplement" if supplement else "AwaitingObligation"
            if st.id == self._held_step:
                raise refuse(kind, f"step {st.id!r} waits for the applicant's {waiting}; "
                             "it resumes when the dossier is resubmitted")
            if request.outcome in (Outcome.SUPPLEMENT, Outcome.OBLIGATION):
                raise refuse(kind, f"dossier {state.dossier_id} already waits for the applicant's "
                             f"{waiting} asked at step {self._held_step!r}")
        if request.outcome == Outcome.SUPPLEMENT and state.supplement_count >= self._procedure.max_supplement_requests:
            raise refuse("SupplementLimit", f"dossier {state.dossier_id} was already asked to supplement "
                         f"{state.supplement_count} time(s); procedure {state.procedure_code} allows "
                         f"{self._procedure.max_supplement_requests}")
        if request.outcome == Outcome.OBLIGATION and state.obligation_count >= self._procedure.max_obligation_requests:
            raise refuse("ObligationLimit", f"dossier {state.dossier_id} was already asked to pay "
                         f"{state.obligation_count} time(s); procedure {state.procedure_code} allows "
                         f"{self._procedure.max_obligation_requests}")

    def _judge_step(self, st: StepState, outcome: Outcome, now: datetime) -> None:
        assert st.original_due_at and st.original_due_day_start
        st.completed_at = now
        st.outcome = outcome
        st.verdict = judge(now, st.original_due_at, st.original_due_day_start)

    def _ask_applicant(self, st: StepState, request: CompleteStep, outcome: Outcome) -> None:
        """The applicant's turn: documents to supplement (status 5) or a financial
        obligation to pay (status 6). The step leaves the agency's inbox until the
        dossier is resubmitted; the clocks stop unless the procedure says otherwise."""
        state = self._state
        now = workflow.now()
        supplement = outcome == Outcome.SUPPLEMENT
        state.status = DossierStatus.AWAITING_SUPPLEMENT if supplement else DossierStatus.AWAITING_OBLIGATION
        state.portal_status = PORTAL_STATUS[state.status]
        if supplement or self._procedure.on_obligation == "pause":
            state.paused_at = now
        self._held_step = st.id
        kind = APPLICANT_TURN_OPENED_BY[state.status]
        if supplement:
            state.supplement_count += 1
            if self._procedure.supplement_deadline:
                state.supplement_due_at = self._due(now, self._procedure.supplement_deadline).due_at
        else:
            state.obligation_count += 1
        state.notes.append(Note(at=now, kind=kind, agency=request.agency, step_id=st.id, text=request.note or ""))
        self._record(kind, step_id=st.id, actor=request.agency, note=request.note, portal=state.portal_status)
        self._route(st, "withdrawn")

    @workflow.update
    async def resubmit(self, request: Resubmit) -> ChangeAnswer:
        state = self._state
        now = workflow.now()
        assert state.due_at is not None and state.original_due_at is not None
        supplement = state.status == DossierStatus.AWAITING_SUPPLEMENT
        if state.paused_at is not None:
            # A payment resumes the clocks where they stopped; a supplement as the procedure says.
            mode = self._procedure.on_supplement if supplement else "pause"
            restarted = self._calendar.start_of_clock(now)

            def resumed(due_at: datetime, deadline: str) -> Due:
                return resumed_due(self._calendar, mode, paused_at=state.paused_at,  # type: ignore[arg-type]
                                   restarted_at=restarted, due_at=due_at, deadline=deadline)

            # Each clock is re-applied: the dossier's legal due and its appointment,
            # then every open step's original and current due.
            set_due(state, resumed(state.original_due_at, self._procedure.deadline), current=False, original=True)
            set_due(state, resumed(state.due_at, self._procedure.deadline))
            for st in state.steps:
                if st.status == StepStatus.ASSIGNED:
                    assert st.original_due_at and st.due_at
                    set_due(st, resumed(st.original_due_at, st.deadline), current=False, original=True)
                    set_due(st, resumed(st.due_at, st.deadline))
            if mode == "restart":
                state.clock_started_at = restarted
        state.status = DossierStatus.PROCESSING
        state.portal_status = PORTAL_STATUS[state.status]
        state.paused_at = None
        state.supplement_due_at = None
        step_id, self._held_step = self._held_step, None
        text = request.note or ("documents supplemented" if supplement else "financial obligation paid")
        state.notes.append(Note(at=now, kind="resubmitted", agency=request.agency, step_id=step_id, text=text))
        self._record("resubmitted", step_id=step_id, actor=request.agency,
                     note=f"{text} (relayed by {request.agency})", portal=state.portal_status)
        step = self._step_state(step_id) if step_id is not None else None
        if step is not None:
            self._route(step, "resumed")
        return await self._answer(step)

    @resubmit.validator
    def _validate_resubmit(self, request: Resubmit) -> None:
        self._refuse_if_finished()
        if request.agency != self._received_by and not self._state.involves(request.agency):
            raise refuse("WrongAgency", f"agency {request.agency} has no part in dossier {self._state.dossier_id}; "
                         "the desk that received it or an agency with a step on it relays a supplement")
        if self._state.status not in PAUSED_STATUSES:
            raise refuse("NotAwaitingSupplement",
                         f"dossier {self._state.dossier_id} is not waiting for the applicant (a supplement or a "
                         f"financial obligation); its status is {self._state.status.value}")

    # ------------------------------------------------------- the desk and returns

    @workflow.update
    async def receive(self, request: DeskAction) -> ChangeAnswer:
        """A desk receives a dossier submitted online (status 1 -> 2): its clock starts now."""
        self._receive(request.agency, workflow.now(), note=request.note)
        return await self._answer(None)

    @receive.validator
    def _validate_receive(self, request: DeskAction) -> None:
        self._refuse_if_not_awaiting_receipt(request, "receive")

    @workflow.update
    async def refuse_receipt(self, request: DeskAction) -> ChangeAnswer:
        """A desk refuses to receive it (Mẫu 03, status 3): never received, in no figure."""
        state = self._state
        state.received_by = request.agency
        state.notes.append(Note(at=workflow.now(), kind="not_received", agency=request.agency,
                                text=request.note or ""))
        self._finish(DossierStatus.NOT_RECEIVED, actor=request.agency, note=request.note)
        return await self._answer(None)

    @refuse_receipt.validator
    def _validate_refuse_receipt(self, request: DeskAction) -> None:
        self._refuse_if_not_awaiting_receipt(request, "refuse")
        if not (request.note or "").strip():
            raise refuse("NoteRequired", "a refusal needs a note with the reasons (it goes on Mẫu 03)")

    def _refuse_if_not_awaiting_receipt(self, request: DeskAction, action: str) -> None:
        self._refuse_if_finished()
        state = self._state
        if state.status != DossierStatus.SUBMITTED:
            raise refuse("AlreadyReceived", f"dossier {state.dossier_id} was already received by "
                         f"{state.received_by or 'its desk'} at {state.received_at.isoformat()}; "
                         f"only a dossier waiting for receipt can be {action}d")
        if self._input.received_by and request.agency != self._input.received_by:
            raise refuse("WrongAgency", f"dossier {state.dossier_id} was submitted to desk "
                         f"{self._input.received_by}, not {request.agency}")

    @workflow.update
    async def withdraw(self, request: DeskAction) -> ChangeAnswer:
        """The applicant withdraws (Art. 21, Mẫu 05): status 7, then stopped (8). Every
        open step leaves its agency's inbox."""
        self._state.notes.append(Note(at=workflow.now(), kind="withdrawn", agency=request.agency,
                                      text=request.note or ""))
        self._record("withdrawal_requested", actor=request.agency, note=request.note,
                     portal=PortalStatus.WITHDRAWAL_REQUESTED)
        self._finish(DossierStatus.WITHDRAWN, actor=request.agency, note=request.note)
        return await self._answer(None)

    @withdraw.validator
    def _validate_withdraw(self, request: DeskAction) -> None:
        self._refuse_if_finished()
        state = self._state
        if not (request.note or "").strip():
            raise refuse("NoteRequired", "a withdrawal needs a note: the applicant's request and its date")
        if state.status == DossierStatus.SUBMITTED:
            raise refuse("NotReceived", f"dossier {state.dossier_id} was not received yet: the desk receives it "
                         "or refuses it (Mẫu 03)")
        if state.status == DossierStatus.RESULT_READY:
            raise refuse("DecisionMade", f"dossier {state.dossier_id} is already decided (status 9 since "
                         f"{state.finished_at.isoformat() if state.finished_at else '?'}): a withdrawal is allowed "
                         "only while no decision exists (Decree 118 Art. 21)")
        if request.agency != self._received_by and request.agency not in state.current_agencies:
            raise refuse("WrongAgency", f"agency {request.agency} neither received dossier {state.dossier_id} nor "
                         "holds one of its current steps")

    @workflow.update
    async def return_step(self, request: ReturnStep) -> ChangeAnswer:
        """Send the dossier back to an earlier step: that step is assigned again (its
        agency, a new due by its deadline); the legal total due does not move."""
        state = self._state
        st = self._step_state(request.step_id)
        now = workflow.now()
        state.return_count += 1
        st.note = request.note
        st.status = StepStatus.RETURNED  # its run ends; it is reset with the steps after the target
        self._returning[st.id] = request.to
        state.notes.append(Note(at=now, kind="returned", agency=request.agency, step_id=st.id,
                                text=f"to {request.to}: {request.note}"))
        self._record("step_returned", step_id=st.id, actor=request.agency, note=f"to {request.to}: {request.note}")
        self._route(st, "withdrawn")
        return await self._answer(st)

    @return_step.validator
    def _validate_return_step(self, request: ReturnStep) -> None:
        self._refuse_if_finished()
        state = self._state
        st = self._current_step(request.step_id, request.agency)
        step = next(s for s in self._procedure.iter_steps() if s.id == st.id)
        if not request.note.strip():
            raise refuse("NoteRequired", "a return needs a note saying why")
        if request.to not in step.returns_to:
            allowed = ", ".join(step.returns_to) or "none"
            raise refuse("BadReturn", f"step {st.id!r} may return dossier {state.dossier_id} to: {allowed} "
                         f"(its procedure's returns_to), not {request.to!r}")
        if state.status == DossierStatus.RESULT_READY:
            raise refuse("DecisionMade", f"dossier {state.dossier_id} is decided (status 9); it is not sent back")
        if self._held_step is not None:
            raise refuse("AwaitingApplicant", f"dossier {state.dossier_id} waits for the applicant "
                         f"({state.status.value}); "
                         "it is sent back once resubmitted")
        if state.return_count >= self._procedure.max_returns:
            raise refuse("ReturnLimit", f"dossier {state.dossier_id} was already sent back {state.return_count} "
                         f"time(s); procedure {state.procedure_code} allows {self._procedure.max_returns}")

    @workflow.update
    async def extend(self, request: Extend) -> ChangeAnswer:
        state = self._state
        now = workflow.now()
        steps = self._extendable_steps(request)
        new_due = self._calendar.appointment(request.new_due)
        moved = "" if new_due == request.new_due else f" (asked {request.new_due.isoformat()}: moved into working time)"
        for st in steps:
            st.due_at = new_due
            st.due_basis = None  # an appointment given by a person, not computed
            st.extendable_until = extendable_until(self._calendar, new_due)
            st.extensions += 1
        state.extensions += 1  # one apology letter, whatever the steps it moves
        if state.due_at is None or state.due_at < new_due:
            state.due_at = new_due  # the new appointment for the applicant
            state.due_basis = None
        state.notes.append(Note(at=now, kind="extended", agency=request.agency, step_id=request.step_id,
                                text=f"new appointment {new_due.isoformat()}{moved}: {request.reason}"))
        self._record("extended", step_id=request.step_id, actor=request.agency,
                     note=f"until {new_due.isoformat()}{moved}: {request.reason}")
        return await self._answer(steps[0] if len(steps) == 1 else None)

    @extend.validator
    def _validate_extend(self, request: Extend) -> None:
        self._refuse_if_finished()
        if not request.reason.strip():
            raise refuse("ReasonRequired", "an extension needs a reason (it goes on the apology letter)")
        if request.new_due <= workflow.now():
            raise refuse("BadExtension", f"new due {request.new_due.isoformat()} is in the past")
        steps = self._extendable_steps(request)
        span = self._procedure.max_extension or self._procedure.deadline
        for st in steps:
            assert st.due_at is not None
            latest = self._calendar.add(st.due_at, span)
            if request.new_due > latest:  # also keeps absurd instants (year 9999) out of every later write
                raise refuse("BadExtension", f"new due {request.new_due.isoformat()} is more than {span} of working "
                             f"time after step {st.id!r}'s current due; at most {latest.isoformat()} "
                             f"(procedure max_extension)")
            # Judged as it will be given: an instant outside working time becomes the end of
            # that day's working time (19:00 -> 17:00), which may be no later than the due.
            given = self._calendar.appointment(request.new_due)
            if given <= st.due_at:
                moved = "" if given == request.new_due else f" (in working time: {given.isoformat()})"
                raise refuse("BadExtension", f"new due {request.new_due.isoformat()}{moved} is not after step "
                             f"{st.id!r}'s current due {st.due_at.isoformat()}")

    def _extendable_steps(self, request: Extend) -> list[StepState]:
        """The agency's current steps that may still get a new appointment (Mẫu 04): the
        dossier has one left (`max_extensions`, per dossier), and the step is not overdue
        and at least one working day from its due (`extendable_until`)."""
        state = self._state
        if request.step_id is not None:
            candidates = [self._current_step(request.step_id, request.agency)]
        else:
            candidates = [s for s in state.steps if s.status == StepStatus.ASSIGNED and s.agency == request.agency]
            if not candidates:
                raise refuse("NotCurrent", f"agency {request.agency} holds no current step of dossier "
                             f"{state.dossier_id}")
        allowed = self._procedure.max_extensions
        if state.extensions >= allowed:
            raise refuse("ExtensionLimit", f"dossier {state.dossier_id} already got {state.extensions} new "
                         f"appointment(s); procedure {state.procedure_code} allows {allowed} new "
                         "appointment(s) per dossier")
        now = workflow.now()
        open_ = [s for s in candidates
                 if not s.overdue and s.extendable_until is not None and now <= s.extendable_until]
        if not open_:
            first = candidates[0]
            assert first.due_at is not None
            when = (f"its due {first.due_at.isoformat()} has passed" if first.overdue or now > first.due_at
                    else f"it is due {first.due_at.isoformat()}")
            by = f", i.e. by {first.extendable_until.isoformat()}" if first.extendable_until else ""
            raise refuse("ExtensionTooLate", f"step {first.id!r} can no longer be extended: {when}; an apology and "
                         f"new appointment must be sent at least one working day before the due{by}")
        return open_

    @workflow.update
    async def apply_calendar(self, request: ApplyCalendar) -> ChangeAnswer:
        """Recompute every computed due (not appointments given by extension) on the
        calendar's new snapshot, and record what moved."""
        state = self._state
        self._calendar = calendar_from_snapshot(request.snapshot)
        self._calendar_applications += 1
        # (label, whose due, the original legal due or the current one)
        targets: list[tuple[str, DossierState | StepState, bool]] = [
            ("dossier", state, True), ("dossier", state, False)]
        targets += [(st.id, st, original) for st in state.steps if st.status == StepStatus.ASSIGNED
                    for original in (True, False)]
        moved: list[str] = []
        for name, target, original in targets:
            basis = self._basis(target, original)
            if basis is None:
                continue
            before = target.original_due_at if original else target.due_at
            due = self._due(basis.start, basis.working)
            set_due(target, due, current=not original, original=original)
            if before != due.due_at:
                label = f"{name} {'legal due' if original else 'due'}"
                moved.append(f"{label} {before.isoformat() if before else '-'} → {due.due_at.isoformat()}")
        if moved:
            self._record("calendar_applied", actor="operator", note=f"{request.reason}: " + "; ".join(moved))
        return await self._answer(None)

    @apply_calendar.validator
    def _validate_apply_calendar(self, request: ApplyCalendar) -> None:
        self._refuse_if_finished()
        if request.calendar != self._state.calendar or request.snapshot.name != self._state.calendar:
            raise refuse("WrongCalendar", f"dossier {self._state.dossier_id} uses calendar "
                         f"{self._state.calendar!r}, not {request.snapshot.name!r}")
        if self._calendar_applications >= MAX_CALENDAR_APPLICATIONS:
            raise refuse("CalendarLimit", f"dossier {self._state.dossier_id} already took "
                         f"{self._calendar_applications} calendar changes (at most {MAX_CALENDAR_APPLICATIONS})")

    @staticmethod
    def _basis(target: DossierState | StepState, original: bool) -> DueBasis | None:
        return target.original_due_basis if original else target.due_basis

    # ---------------------------------------------------------------- query

    @workflow.query
    def state(self) -> DossierState:
        return self._state

    # -------------------------------------------------------------- helpers

    def _due(self, start: datetime, deadline: str | timedelta) -> Due:
        return compute_due(self._calendar, start, deadline)

    def _refuse_if_finished(self) -> None:
        if self._ended or self._state.finished:
            raise refuse("DossierFinished", f"dossier {self._state.dossier_id} is "
                         f"{self._state.status.value}; it takes no more changes")

    def _step_state(self, step_id: str) -> StepState:
        st = self._state.step(step_id)
        if st is None:
            known = ", ".join(s.id for s in self._state.steps)
            raise refuse("UnknownStep", f"dossier {self._state.dossier_id} has no step {step_id!r} "
                         f"(its steps: {known})")
        return st

    def _current_step(self, step_id: str, agency: str) -> StepState:
        st = self._step_state(step_id)
        if st.status != StepStatus.ASSIGNED:
            why = {
                StepStatus.PENDING: "it has not been routed to an agency yet",
                StepStatus.COMPLETED: "it is already completed",
                StepStatus.SKIPPED: "it was skipped",
                StepStatus.REJECTED: "it rejected the dossier",
                StepStatus.RETURNED: "it sent the dossier back to an earlier step",
            }[st.status]
            raise refuse("NotCurrent", f"step {step_id!r} of dossier {self._state.dossier_id} is not "
                         f"current: {why}", *([NOT_ROUTED_YET] if st.status == StepStatus.PENDING else []))
        if st.agency != agency:
            raise refuse("WrongAgency", f"step {step_id!r} of dossier {self._state.dossier_id} belongs to "
                         f"{st.agency}, not {agency}")
        return st

    def _judge(self) -> None:
        """Decision 766: the end of handling against the appointment (the legal due,
        supplement time taken out); a dossier that ends while waiting for a supplement
        it was asked for more than once is late."""
        state = self._state
        assert state.original_due_at and state.original_due_day_start
        verdict = judge(workflow.now(), state.original_due_at, state.original_due_day_start)
        asked_again = state.status == DossierStatus.AWAITING_SUPPLEMENT and state.supplement_count > 1
        state.verdict = "late" if asked_again else verdict

    def _finish_processing(self, note: str | None) -> None:
        """Status 9: every step before the result's return is done; judged now."""
        state = self._state
        self._judge()
        state.status = DossierStatus.RESULT_READY
        state.portal_status = PortalStatus.FINISHED
        state.finished_at = workflow.now()
        self._record("result_ready", actor="system", note=note or f"verdict {state.verdict}",
                     portal=PortalStatus.FINISHED)

    def _finish(self, status: DossierStatus, *, actor: str, note: str | None, step_id: str | None = None) -> None:
        state = self._state
        self._ended = True
        now = workflow.now()
        if state.received and state.finished_at is None:
            self._judge()  # stopped before processing finished: judged at the stop
        state.status = status
        state.portal_status = PORTAL_STATUS[status]
        state.completed_at = now
        state.result_note = note
        state.paused_at = None
        withdrawn = [s for s in state.steps if s.status == StepStatus.ASSIGNED]
        for st in withdrawn:
            st.status = StepStatus.SKIPPED
            st.note = f"dossier {status.value} before this step finished"
        self._record(status.value, step_id=step_id, actor=actor, note=note, portal=state.portal_status)
        for st in withdrawn:
            self._route(st, "withdrawn")

    async def _answer(self, st: StepState | None) -> ChangeAnswer:
        """What the caller needs to know of its accepted change. It does not wait for the
        store write: the change is durable in Temporal's history once answered, and the
        write follows, retried until the store takes it. (Waiting would make the answer's
        place in history depend on when the local activity's result reached the workflow,
        which a replay after a worker died can see in another workflow task: the chaos
        test found the nondeterminism.)"""
        seq = self._seq
        state = self._state
        return ChangeAnswer(dossier_id=state.dossier_id, seq=seq, status=state.status,
                            portal_status=state.portal_status, due_at=state.due_at,
                            step_id=st.id if st else None, step_status=st.status if st else None,
                            step_due_at=st.due_at if st else None)

    # ------------------------------------------------------- recording (the store)

    def _record(self, kind: str, *, step_id: str | None = None, actor: str | None = None,
                note: str | None = None, portal: int | None = None, at: datetime | None = None) -> None:
        """Queue an audit-log event; the writer takes everything queued in this activation.
        `portal` is the portal status the event moved the dossier to; `at` the legal
        instant when it is not now (a receipt recorded with its own time)."""
        self._seq += 1
        self._state.last_event_seq = self._seq
        self._events.append(DossierEvent(dossier_id=self._state.dossier_id, seq=self._seq, kind=kind,
                                         at=at or workflow.now(), actor=actor, step_id=step_id, note=note,
                                         portal_status=int(portal) if portal is not None else None))

    def _route(self, st: StepState, reason: str) -> None:
        """An inbox change for the agency holding `st`, written with the events."""
        assert st.agency and st.assigned_at and st.due_at
        state = self._state
        self._routings.append(Routing(
            dossier_id=state.dossier_id, procedure_code=state.procedure_code,
            procedure_version=state.procedure_version, sector=state.sector, step_id=st.id, step_name=st.name,
            agency=st.agency, assigned_at=st.assigned_at, due_at=st.due_at, reason=reason))

    async def _write_changes(self) -> None:
        """The writer: one store write per activation, in order, each retried until the
        store takes it. Nothing else waits on a write but the run's end (see _answer)."""
        while True:
            await workflow.wait_condition(lambda: bool(self._events))
            await self._settle()
            write = self._take_write()
            self._upsert_search_attributes()
            writing = workflow.start_local_activity(
                "write_changes", write, start_to_close_timeout=STORE_TIMEOUT, retry_policy=STORE_RETRY)
            # Webhooks are scheduled with the write, not after it: nothing but the next
            # write may wait on a local activity's result (see _answer). Their activity
            # tasks reach a worker once this workflow task completes, which in the usual
            # case waits for the write.
            for routing in write.routings:
                if routing.agency in self._webhooks:
                    st = self._step_state(routing.step_id)
                    self._notify(self._notification(NOTIFICATION_KINDS[routing.reason], st, recipient=routing.agency))
            try:
                await writing
            except ActivityError as err:
                # The store refused this write for good (a value it cannot hold; the
                # activity says so, non-retryable). The dossier goes on: its history keeps
                # every event, the next write carries the whole state forward, and the
                # failure is logged and counted (`lienthong dossiers resync` rewrites it).
                workflow.logger.error("store write refused for good: %s", err.cause or err)
            self._written = write.events[-1].seq

    async def _settle(self) -> None:
        """Let what this activation set in motion run first. Conditions resolve in
        rounds (a completion wakes its step's wait, which assigns the next step), and
        nothing else can say when the last round is: wait for a few rounds in a row
        that queue no event. No timer, no command: this stays inside the activation."""
        quiet = 0
        while quiet < SETTLE_ROUNDS:
            seen = self._seq
            await workflow.wait_condition(lambda: True)
            quiet = quiet + 1 if self._seq == seen else 0

    def _take_write(self) -> StoreWrite:
        events, self._events = self._events, []
        routings, self._routings = self._routings, []
        changed = []
        for st in self._state.steps:
            row = _row(st)
            if self._written_rows.get(st.id) != row:
                self._written_rows[st.id] = row
                changed.append(st.id)
        # A copy: a retried write must carry the state of its own events (a local
        # activity retried after a backoff has its input serialized again).
        return StoreWrite(events=events, state=_snapshot(self._state), steps=changed, routings=routings,
                          applicant=applicant_name(self._input.data))  # the National Portal's ChuHoSo

    def _upsert_search_attributes(self) -> None:
        """Only the values that changed since the last upsert (or the start)."""
        state = self._state
        wanted: list[tuple[Any, Any]] = [
            (sa.PROCEDURE, f"{state.procedure_code}@{state.procedure_version}"),
            (sa.SECTOR, state.sector),
            (sa.STATUS, state.status.value),
            (sa.DUE_AT, state.due_at),
        ]
        if wanted == self._attributes_checked:
            return  # as at the last check, after which the attributes held these values
        self._attributes_checked = wanted
        current = workflow.info().typed_search_attributes
        updates = [key.value_set(value) for key, value in wanted
                   if value is not None and current.get(key) != value]
        if updates:
            workflow.upsert_search_attributes(updates)

    # ------------------------------------------------------------ notifications

    def _notification(self, kind: str, st: StepState, recipient: str) -> AgencyNotification:
        state = self._state
        return AgencyNotification(
            kind=kind, agency=recipient, dossier_id=state.dossier_id, procedure_code=state.procedure_code,
            procedure_version=state.procedure_version, sector=state.sector, step_id=st.id, step_name=st.name,
            due_at=st.due_at, at=workflow.now(), responsible_agency=st.agency,
        )

    def _notify(self, notification: AgencyNotification) -> None:
        """Webhooks never hold a dossier up: delivered in the background, with
        bounded retries; a delivery that finally fails goes to the audit log."""

        async def deliver() -> None:
            try:
                await workflow.execute_activity(
                    "notify_agency", notification, start_to_close_timeout=NOTIFY_TIMEOUT,
                    retry_policy=NOTIFY_RETRY,
                )
            except ActivityError as err:
                cause = err.cause.message if isinstance(err.cause, ApplicationError) else str(err.cause or err)
                self._record("notification_failed", step_id=notification.step_id, actor="system",
                             note=f"{notification.kind} to {notification.agency}: {cause}")

        self._notifications.append(asyncio.ensure_future(deliver()))
