"""DossierWorkflow: one dossier (hồ sơ), interpreted from its procedure snapshot.

Deterministic and I/O-free: calendar arithmetic, routing and recording are
activities, called by name so this module depends on `definitions` and the
payload models only.

Shape of a run: compute the total due from the receipt, walk the steps
(sequence / parallel / when), and for each step wait for its completion Update
or its due instant. A passed due marks the step overdue and escalates; the wait
goes on (Decision 3: overdue never fails a dossier). A supplement request stops
every clock until the applicant resubmits (Decision 4).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from definitions.schema import Parallel, Sequence, Step, UnknownAgencyError, resolve_agency
    from workflows import search_attributes as sa
    from workflows.payloads import (
        PORTAL_STATUS,
        AgencyNotification,
        ApplyCalendar,
        DueBasis,
        RecomputeRequest,
        ClockRequest,
        CompleteStep,
        DossierClock,
        DossierEvent,
        DossierInput,
        DossierState,
        DossierStatus,
        Due,
        Escalation,
        Extend,
        Note,
        Outcome,
        RecordAndRoute,
        ResumedClock,
        ResumeRequest,
        Resubmit,
        Routed,
        Routing,
        StepDueRequest,
        StepState,
        StepStatus,
        judge,
    )

T = TypeVar("T")

# Agencies' systems and databases come back eventually: retry without a cap,
# backing off to once every 5 minutes.
ACTIVITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=5))
ACTIVITY_TIMEOUT = timedelta(seconds=30)
LOCAL_ACTIVITY_TIMEOUT = timedelta(seconds=10)
# Webhooks: about an hour of retries (1 s doubling to 5 min), then recorded as failed.
NOTIFY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                           maximum_interval=timedelta(minutes=5), maximum_attempts=20,
                           non_retryable_error_types=["MissingSecret"])
NOTIFY_TIMEOUT = timedelta(seconds=20)
# workflow.patched ids: each marks a change that dossiers in flight must not see.
NOTIFICATIONS_PATCH = "agency-webhooks"
# A hand-over's event and inbox change in one activity (`record_and_route`), and a
# webhook notification only for an agency that has a webhook: 2 activities per
# hand-over instead of 3 (record_event, route_step, notify_agency).
RECORD_WITH_ROUTE_PATCH = "record-with-route"
NOTIFICATION_KINDS = {"assigned": "step_assigned", "resumed": "step_resumed", "withdrawn": "step_withdrawn"}


def set_due(target: DossierState | StepState, due: Due, *, current: bool = True, original: bool = False) -> None:
    """Set the current due (what the wait arms) and/or the original one (what
    verdicts are judged against); an extension changes only the current one."""
    if current:
        target.due_at = due.due_at
        target.due_basis = due.basis
        if isinstance(target, StepState):
            target.extendable_from = due.extendable_from
    if original:
        target.original_due_at = due.due_at
        target.original_due_day_start = due.due_day_start
        target.original_due_basis = due.basis


async def wait_until(instant: datetime, woken: Callable[[], bool]) -> bool:
    """Wait for `woken()` or for `instant` (a durable timer); True when `instant` came first."""
    left = instant - workflow.now()
    if left > timedelta(0):
        try:
            await workflow.wait_condition(woken, timeout=left)
            return False
        except asyncio.TimeoutError:
            pass
    return not woken()


def refuse(kind: str, message: str) -> ApplicationError:
    """A refusal an agency's system can act on: `kind` is stable, the message says why."""
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn(name="DossierWorkflow")
class DossierWorkflow:
    @workflow.init
    def __init__(self, input: DossierInput) -> None:
        procedure = input.snapshot.procedure
        self._input = input
        self._procedure = procedure
        self._steps: dict[str, Step] = {step.id: step for step in procedure.iter_steps()}
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
            received_at=input.received_at or workflow.info().workflow_start_time,
            steps=[
                StepState(id=step.id, name=step.title, deadline=step.deadline, escalate_to=step.escalate_to)
                for step in procedure.iter_steps()
            ],
        )
        self._seq = 0
        # Bumped whenever a due instant changes or the clock stops/starts: waits re-arm.
        self._clock_version = 0
        self._pause_epoch = 0
        self._supplement_step: str | None = None
        self._resuming = False
        self._ended = False
        self._closed = False  # the final transition is recorded
        self._notifications: list[asyncio.Future[None]] = []
        # Due instants whose passing was already acted on (step id or "" for the dossier).
        self._overdue_fired: dict[str, datetime] = {}

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, input: DossierInput) -> DossierState:
        state = self._state
        clock = await self._local(
            "start_clock",
            ClockRequest(calendar=state.calendar, received_at=state.received_at,
                         deadline=self._procedure.deadline),
            DossierClock,
        )
        state.clock_started_at = clock.clock_started_at
        set_due(state, clock.due, original=True)
        self._upsert_search_attributes()
        await self._record("received", actor=input.received_by or "applicant",
                           note=f"channel {input.channel}")

        watcher = asyncio.ensure_future(self._watch_dossier_due())
        await self._run_nodes(list(self._procedure.steps))
        if not self._ended:
            await self._finish(DossierStatus.COMPLETED, actor="system", note=None)
        await watcher
        # Let the final transition be recorded (it may come from an Update or the
        # supplement watcher) and in-flight Updates return their answers.
        await workflow.wait_condition(lambda: self._closed and workflow.all_handlers_finished())
        # Webhooks still being retried finish (or fail and are recorded) before the run closes.
        while not all(n.done() for n in self._notifications):
            await asyncio.gather(*self._notifications)
        return state

    async def _run_nodes(self, nodes: list[Any]) -> None:
        for node in nodes:
            if self._ended:
                return
            if isinstance(node, Step):
                await self._run_step(node)
            elif isinstance(node, Parallel):
                await asyncio.gather(*(self._run_nodes([branch]) for branch in node.parallel))
            elif isinstance(node, Sequence):
                await self._run_nodes(list(node.sequence))

    async def _run_step(self, step: Step) -> None:
        st = self._step_state(step.id)
        if step.when is not None and not step.when.holds(self._input.data):
            st.status = StepStatus.SKIPPED
            cond = step.when
            await self._record("step_skipped", step_id=step.id,
                               note=f"condition on {cond.field!r} ({cond.operator}) is false")
            return
        # A step reached while the applicant holds the dossier starts when they give it back.
        await workflow.wait_condition(lambda: self._ended or self._state.paused_at is None)
        if self._ended:
            return
        try:
            st.agency = resolve_agency(step.agency, self._input.data)
            if step.escalate_to:
                st.escalate_to = resolve_agency(step.escalate_to, self._input.data)
        except UnknownAgencyError as err:  # submission checks this; a bug if it happens
            raise ApplicationError(str(err), type="UnknownAgency", non_retryable=True) from err
        st.status = StepStatus.ASSIGNED
        # Until an agency has finished something, the dossier has been with the
        # receiving desk since receipt; later steps start at their handover.
        first = not any(s.status == StepStatus.COMPLETED for s in self._state.steps)
        st.assigned_at = self._state.received_at if first else workflow.now()
        assert self._state.clock_started_at is not None
        due = await self._local(
            "step_due",
            StepDueRequest(calendar=self._state.calendar, deadline=step.deadline,
                           assigned_at=max(st.assigned_at, self._state.clock_started_at)),
            Due,
        )
        set_due(st, due, original=True)
        self._upsert_search_attributes()
        await self._record_and_route("step_assigned", st, "assigned", actor="system", note=f"routed to {st.agency}")
        await self._wait_for_step(st)

    async def _wait_for_step(self, st: StepState) -> None:
        while not self._ended and st.status == StepStatus.ASSIGNED:
            assert st.due_at is not None
            version = self._clock_version
            fired = await self._wait_until_due(
                st.id, st.due_at,
                lambda: self._ended or st.status != StepStatus.ASSIGNED or self._clock_version != version,
            )
            if fired:
                await self._step_overdue(st)

    async def _watch_dossier_due(self) -> None:
        while not self._ended:
            assert self._state.due_at is not None
            version = self._clock_version
            fired = await self._wait_until_due(
                "", self._state.due_at, lambda: self._ended or self._clock_version != version
            )
            if fired:
                self._state.overdue = True
                await self._record("dossier_overdue", actor="system",
                                   note=f"due {self._state.due_at.isoformat()} passed")

    async def _wait_until_due(self, key: str, due_at: datetime, woken: Callable[[], bool]) -> bool:
        """Wait for `woken` or for `due_at`; True when the due passed (once per due)."""
        if self._state.paused_at is not None or self._overdue_fired.get(key) == due_at:
            await workflow.wait_condition(woken)  # clock stopped, or already acted on
            return False
        if not await wait_until(due_at, woken):
            return False
        self._overdue_fired[key] = due_at
        return True

    async def _step_overdue(self, st: StepState) -> None:
        assert st.due_at is not None and st.agency is not None
        st.overdue = True
        if st.escalate_to:
            st.escalations += 1
        await self._record("step_overdue", step_id=st.id, actor="system",
                           note=f"{st.agency} missed due {st.due_at.isoformat()}"
                           + (f"; escalated to {st.escalate_to}" if st.escalate_to else ""))
        if st.escalate_to and workflow.patched(NOTIFICATIONS_PATCH):
            self._notify(self._notification("escalation", st, recipient=st.escalate_to))
        elif st.escalate_to:  # dossiers started before webhooks: a blocking log-only activity
            await workflow.execute_activity(
                "notify_escalation",
                Escalation(dossier_id=self._state.dossier_id, sector=self._state.sector, step_id=st.id,
                           agency=st.agency, escalate_to=st.escalate_to, due_at=st.due_at,
                           overdue_since=st.due_at),
                start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
            )

    # -------------------------------------------------------------- updates

    @workflow.update
    async def complete_step(self, request: CompleteStep) -> DossierState:
        # Everything up to the first await happens at once, so a second completion
        # arriving now is judged against the new state by its validator.
        st = self._step_state(request.step_id)
        outcome = Outcome(request.outcome)
        now = workflow.now()
        st.note = request.note
        if outcome == Outcome.SUPPLEMENT:
            return await self._request_supplement(st, request)
        st.completed_at = now
        st.outcome = outcome
        assert st.original_due_at and st.original_due_day_start
        st.verdict = judge(now, st.original_due_at, st.original_due_day_start)
        if outcome == Outcome.REJECTED:
            st.status = StepStatus.REJECTED
            self._state.notes.append(Note(at=now, kind="rejected", agency=request.agency,
                                          step_id=st.id, text=request.note or ""))
            await self._finish(DossierStatus.REJECTED, actor=request.agency, note=request.note,
                               step_id=st.id)
            await self._route(st, "withdrawn")
            return self._state
        st.status = StepStatus.COMPLETED
        self._upsert_search_attributes()
        await self._record_and_route("step_completed", st, "withdrawn", actor=request.agency,
                                     note=f"{st.verdict}" + (f": {request.note}" if request.note else ""))
        return self._state

    @complete_step.validator
    def _validate_complete_step(self, request: CompleteStep) -> None:
        self._refuse_if_finished()
        st = self._current_step(request.step_id, request.agency)
        if request.outcome not in {o.value for o in Outcome}:
            raise refuse("UnknownOutcome", f"unknown outcome {request.outcome!r}: expected approved, "
                         "supplement or rejected")
        if request.outcome != Outcome.APPROVED and not (request.note or "").strip():
            raise refuse("NoteRequired", f"outcome {request.outcome!r} needs a note saying why")
        if self._state.paused_at is not None or self._resuming:
            if st.id == self._supplement_step:
                raise refuse("AwaitingSupplement", f"step {st.id!r} waits for the applicant's supplement; "
                             "it resumes when the dossier is resubmitted")
            if request.outcome == Outcome.SUPPLEMENT:
                raise refuse("AwaitingSupplement", f"dossier {self._state.dossier_id} already awaits a "
                             f"supplement requested at step {self._supplement_step!r}")

    async def _request_supplement(self, st: StepState, request: CompleteStep) -> DossierState:
        state = self._state
        now = workflow.now()
        state.status = DossierStatus.AWAITING_SUPPLEMENT
        state.portal_status = PORTAL_STATUS[state.status]
        state.paused_at = now
        state.supplement_count += 1
        self._supplement_step = st.id
        self._pause_epoch += 1
        epoch = self._pause_epoch
        self._clock_version += 1
        state.notes.append(Note(at=now, kind="supplement_requested", agency=request.agency, step_id=st.id,
                                text=request.note or ""))
        event = self._record("supplement_requested", step_id=st.id, actor=request.agency, note=request.note)
        self._upsert_search_attributes()
        if self._procedure.supplement_deadline:
            due = await self._local(
                "step_due",
                StepDueRequest(calendar=state.calendar, assigned_at=now,
                               deadline=self._procedure.supplement_deadline),
                Due,
            )
            if self._pause_epoch == epoch:  # not resubmitted meanwhile
                state.supplement_due_at = due.due_at
                asyncio.ensure_future(self._watch_supplement(self._pause_epoch, due.due_at))
        await event
        await self._route(st, "withdrawn")
        return state

    async def _watch_supplement(self, epoch: int, due_at: datetime) -> None:
        def resumed() -> bool:
            return self._ended or self._pause_epoch != epoch or self._resuming

        if not await wait_until(due_at, resumed):
            return
        note = f"the applicant did not supplement within {self._procedure.supplement_deadline}"
        self._state.notes.append(Note(at=workflow.now(), kind="supplement_expired", text=note,
                                      step_id=self._supplement_step))
        await self._finish(DossierStatus.REJECTED, actor="system", note=note)

    @workflow.update
    async def resubmit(self, request: Resubmit) -> DossierState:
        state = self._state
        self._resuming = True
        now = workflow.now()
        assert state.paused_at is not None and state.due_at is not None
        assert state.original_due_at is not None
        open_steps = [s for s in state.steps if s.status == StepStatus.ASSIGNED]
        # Each clock is re-applied: the dossier's legal due and its appointment,
        # then every open step's original and current due.
        dues: list[datetime] = [state.original_due_at, state.due_at]
        deadlines = [self._procedure.deadline] * 2
        for st in open_steps:
            assert st.original_due_at and st.due_at
            dues += [st.original_due_at, st.due_at]
            deadlines += [st.deadline] * 2
        clock = await self._local(
            "resume_clock",
            ResumeRequest(calendar=state.calendar, mode=self._procedure.on_supplement,
                          paused_at=state.paused_at, resumed_at=now, dues=dues, deadlines=deadlines),
            ResumedClock,
        )
        if self._ended:  # the supplement deadline passed meanwhile
            raise refuse("DossierFinished", f"dossier {state.dossier_id} is {state.status.value}")
        set_due(state, clock.dues[0], current=False, original=True)
        set_due(state, clock.dues[1])
        for i, st in enumerate(open_steps):
            set_due(st, clock.dues[2 + 2 * i], current=False, original=True)
            set_due(st, clock.dues[3 + 2 * i])
        if self._procedure.on_supplement == "restart":
            state.clock_started_at = clock.clock_started_at
        state.status = DossierStatus.PROCESSING
        state.portal_status = PORTAL_STATUS[state.status]
        state.paused_at = None
        state.supplement_due_at = None
        step_id, self._supplement_step = self._supplement_step, None
        self._resuming = False
        self._pause_epoch += 1
        self._clock_version += 1
        state.notes.append(Note(at=now, kind="resubmitted", step_id=step_id,
                                text=request.note or "documents supplemented"))
        self._upsert_search_attributes()
        await self._record("resubmitted", step_id=step_id, actor="applicant", note=request.note)
        if step_id is not None:
            await self._route(self._step_state(step_id), "resumed")
        return state

    @resubmit.validator
    def _validate_resubmit(self, request: Resubmit) -> None:
        self._refuse_if_finished()
        if self._state.status != DossierStatus.AWAITING_SUPPLEMENT or self._resuming:
            raise refuse("NotAwaitingSupplement",
                         f"dossier {self._state.dossier_id} is not waiting for a supplement "
                         f"(status {self._state.status.value})")

    @workflow.update
    async def extend(self, request: Extend) -> DossierState:
        state = self._state
        now = workflow.now()
        for st in self._extendable_steps(request):
            st.due_at = request.new_due
            st.due_basis = None  # an appointment given by a person, not computed
            st.extensions += 1
        if state.due_at is None or state.due_at < request.new_due:
            state.due_at = request.new_due  # the new appointment for the applicant
            state.due_basis = None
        self._clock_version += 1
        state.notes.append(Note(at=now, kind="extended", agency=request.agency, step_id=request.step_id,
                                text=f"new appointment {request.new_due.isoformat()}: {request.reason}"))
        self._upsert_search_attributes()
        await self._record("extended", step_id=request.step_id, actor=request.agency,
                           note=f"until {request.new_due.isoformat()}: {request.reason}")
        return state

    @extend.validator
    def _validate_extend(self, request: Extend) -> None:
        self._refuse_if_finished()
        if not request.reason.strip():
            raise refuse("ReasonRequired", "an extension needs a reason (it goes on the apology letter)")
        steps = self._extendable_steps(request)
        if request.new_due <= workflow.now():
            raise refuse("BadExtension", f"new due {request.new_due.isoformat()} is in the past")
        for st in steps:
            assert st.due_at is not None
            if request.new_due <= st.due_at:
                raise refuse("BadExtension", f"new due {request.new_due.isoformat()} is not after step "
                             f"{st.id!r}'s current due {st.due_at.isoformat()}")

    def _extendable_steps(self, request: Extend) -> list[StepState]:
        """The agency's current steps that are late or have less than a working day left."""
        if request.step_id is not None:
            candidates = [self._current_step(request.step_id, request.agency)]
        else:
            candidates = [s for s in self._state.steps
                          if s.status == StepStatus.ASSIGNED and s.agency == request.agency]
            if not candidates:
                raise refuse("NotCurrent", f"agency {request.agency} holds no current step of dossier "
                             f"{self._state.dossier_id}")
        now = workflow.now()
        late = [s for s in candidates
                if s.overdue or (s.extendable_from is not None and now >= s.extendable_from)]
        if not late:
            first = candidates[0]
            raise refuse("NotLate", f"step {first.id!r} is neither late nor about to be late "
                         f"(extensions open at {first.extendable_from.isoformat() if first.extendable_from else '?'})")
        return late

    @workflow.update
    async def apply_calendar(self, request: ApplyCalendar) -> DossierState:
        """Recompute every computed due (not appointments given by extension) on
        the calendar as it is now, and record what moved."""
        state = self._state
        # (label, whose due, the original legal due or the current one)
        targets: list[tuple[str, DossierState | StepState, bool]] = [
            ("dossier", state, True), ("dossier", state, False)]
        targets += [(st.id, st, original) for st in state.steps if st.status == StepStatus.ASSIGNED
                    for original in (True, False)]
        targets = [t for t in targets if self._basis(t[1], t[2]) is not None]
        if not targets:
            return state
        dues = await self._local(
            "recompute_dues",
            RecomputeRequest(calendar=state.calendar, bases=[self._basis(t, o) for _, t, o in targets]),
            list[Due],
        )
        if self._ended:
            return state
        moved: list[str] = []
        for (name, target, original), due in zip(targets, dues, strict=True):
            before = target.original_due_at if original else target.due_at
            set_due(target, due, current=not original, original=original)
            if before != due.due_at:
                label = f"{name} {'legal due' if original else 'due'}"
                moved.append(f"{label} {before.isoformat() if before else '-'} → {due.due_at.isoformat()}")
        if moved:
            self._clock_version += 1
            self._upsert_search_attributes()
            await self._record("calendar_applied", actor="operator",
                               note=f"{request.reason}: " + "; ".join(moved))
        return state

    @apply_calendar.validator
    def _validate_apply_calendar(self, request: ApplyCalendar) -> None:
        self._refuse_if_finished()
        if request.calendar != self._state.calendar:
            raise refuse("WrongCalendar", f"dossier {self._state.dossier_id} uses calendar "
                         f"{self._state.calendar!r}, not {request.calendar!r}")

    @staticmethod
    def _basis(target: DossierState | StepState, original: bool) -> DueBasis | None:
        return target.original_due_basis if original else target.due_basis

    # ---------------------------------------------------------------- query

    @workflow.query
    def state(self) -> DossierState:
        return self._state

    # -------------------------------------------------------------- helpers

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
            }[st.status]
            raise refuse("NotCurrent", f"step {step_id!r} of dossier {self._state.dossier_id} is not "
                         f"current: {why}")
        if st.agency != agency:
            raise refuse("WrongAgency", f"step {step_id!r} of dossier {self._state.dossier_id} belongs to "
                         f"{st.agency}, not {agency}")
        return st

    async def _finish(self, status: DossierStatus, *, actor: str, note: str | None,
                      step_id: str | None = None) -> None:
        state = self._state
        self._ended = True
        now = workflow.now()
        state.status = status
        state.portal_status = PORTAL_STATUS[status]
        state.completed_at = now
        state.result_note = note
        state.paused_at = None
        assert state.original_due_at and state.original_due_day_start
        verdict = judge(now, state.original_due_at, state.original_due_day_start)
        # Decision 766: asking the applicant to supplement more than once counts as late.
        state.verdict = "late" if state.supplement_count > 1 else verdict
        withdrawn = [s for s in state.steps if s.status == StepStatus.ASSIGNED]
        for st in withdrawn:
            st.status = StepStatus.SKIPPED
            st.note = f"dossier {status.value} before this step finished"
        self._upsert_search_attributes()
        await self._record(status.value, step_id=step_id, actor=actor, note=note)
        for st in withdrawn:
            await self._route(st, "withdrawn")
        self._closed = True

    def _event(self, kind: str, *, step_id: str | None = None, actor: str | None = None,
               note: str | None = None) -> DossierEvent:
        """The next audit-log event, with a snapshot of the state now (so events are
        ordered as they happened)."""
        self._seq += 1
        self._state.last_event_seq = self._seq
        return DossierEvent(dossier_id=self._state.dossier_id, seq=self._seq, kind=kind, at=workflow.now(),
                            actor=actor, step_id=step_id, note=note, state=self._state.model_copy(deep=True))

    def _record(self, kind: str, *, step_id: str | None = None, actor: str | None = None,
                note: str | None = None) -> Awaitable[None]:
        """Snapshot the state now and log it."""
        event = self._event(kind, step_id=step_id, actor=actor, note=note)
        return workflow.start_activity("record_event", event, start_to_close_timeout=ACTIVITY_TIMEOUT,
                                       retry_policy=ACTIVITY_RETRY)

    async def _record_and_route(self, kind: str, st: StepState, reason: str, *, actor: str,
                                note: str | None) -> None:
        """A hand-over: the event and the agency's inbox in one transaction, then its
        webhook if it has one. Dossiers started before RECORD_WITH_ROUTE_PATCH keep
        their three activities (record_event, route_step, notify_agency)."""
        if not workflow.patched(RECORD_WITH_ROUTE_PATCH):
            await self._record(kind, step_id=st.id, actor=actor, note=note)
            await self._route(st, reason)
            return
        event = self._event(kind, step_id=st.id, actor=actor, note=note)
        routed = await workflow.execute_activity(
            "record_and_route", RecordAndRoute(event=event, routing=self._routing(st, reason)),
            result_type=Routed, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        )
        if routed.webhook:
            self._notify(self._notification(NOTIFICATION_KINDS[reason], st, recipient=st.agency))  # type: ignore[arg-type]

    def _routing(self, st: StepState, reason: str) -> Routing:
        assert st.agency and st.assigned_at and st.due_at
        state = self._state
        return Routing(dossier_id=state.dossier_id, procedure_code=state.procedure_code,
                       procedure_version=state.procedure_version, sector=state.sector, step_id=st.id,
                       step_name=st.name, agency=st.agency, assigned_at=st.assigned_at, due_at=st.due_at,
                       reason=reason)  # type: ignore[arg-type]

    async def _route(self, st: StepState, reason: str) -> None:
        """The agency's inbox first (awaited: its order matters), then its webhook."""
        await workflow.execute_activity(
            "route_step", self._routing(st, reason),
            start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=ACTIVITY_RETRY,
        )
        if workflow.patched(NOTIFICATIONS_PATCH):
            self._notify(self._notification(NOTIFICATION_KINDS[reason], st, recipient=st.agency))

    def _notification(self, kind: str, st: StepState, recipient: str) -> AgencyNotification:
        state = self._state
        return AgencyNotification(
            kind=kind, agency=recipient, dossier_id=state.dossier_id, procedure_code=state.procedure_code,
            procedure_version=state.procedure_version, sector=state.sector, step_id=st.id, step_name=st.name,
            due_at=st.due_at, at=workflow.now(), responsible_agency=st.agency,
        )  # type: ignore[arg-type]

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
                await self._record("notification_failed", step_id=notification.step_id, actor="system",
                                   note=f"{notification.kind} to {notification.agency}: {cause}")

        self._notifications.append(asyncio.ensure_future(deliver()))

    async def _local(self, name: str, arg: Any, result_type: type[T]) -> T:
        return await workflow.execute_local_activity(name, arg, result_type=result_type,
                                                     start_to_close_timeout=LOCAL_ACTIVITY_TIMEOUT)

    def _upsert_search_attributes(self) -> None:
        state = self._state
        updates = [
            sa.PROCEDURE.value_set(f"{state.procedure_code}@{state.procedure_version}"),
            sa.SECTOR.value_set(state.sector),
            sa.STATUS.value_set(state.status.value),
            sa.CURRENT_AGENCIES.value_set(state.current_agencies),
        ]
        if state.due_at is not None:
            updates.append(sa.DUE_AT.value_set(state.due_at))
        workflow.upsert_search_attributes(updates)
