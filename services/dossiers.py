"""The typed dossier client: start, change and read a dossier's workflow, with one set
of timeouts and one vocabulary of refusals (`workflows.refusals.RefusalKind`).

Every failure is a `Refusal`: the workflow's refusals keep their kind; an unknown,
closed or existing dossier, an engine that does not answer and a dossier no worker
answers for get the client's kinds. The CLI and the gateway turn a `Refusal` into
their own words (a line on stderr, a problem+json document); nothing else of
Temporal's errors reaches them.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from services.codec import CodecError
from services.submission import StoreDesks, SubmissionError, check_desk
from services.temporal import execute_change, inbox_check, start_attributes, wait_for_first_state
from store import identity, involvement, projection
from workflows import search_attributes as sa
from workflows.dossier import DossierWorkflow
from workflows.payloads import MAX_DOSSIER_ID, ChangeAnswer, DeskAction, DossierInput, DossierState
from workflows.refusals import RefusalKind

UPDATE_TIMEOUT = 30.0  # seconds for a worker to accept or refuse a change
QUERY_TIMEOUT = timedelta(seconds=10)  # a query needs a worker; don't hang without one
FIRST_STATE_WAIT = 10.0  # seconds a submission waits for the worker to compute the due
MAX_ID_LENGTH = MAX_DOSSIER_ID  # a step id is never longer either
# Memo keys on the workflow: who received it (may read it), and which request started it.
MEMO_RECEIVED_BY = "lienthong.received_by"
MEMO_REQUEST = "lienthong.request"

Handle = WorkflowHandle[Any, Any]
# A DossierWorkflow Update method (complete_step, resubmit, receive, withdraw, return_step, extend, ...).
DossierUpdate = UpdateMethodMultiParam[..., ChangeAnswer]
Source = Literal["workflow", "projection"]


class Refusal(Exception):
    """A dossier operation that did not happen; `kind` says why in one vocabulary."""

    def __init__(self, kind: RefusalKind, message: str, *, by_workflow: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.by_workflow = by_workflow  # the dossier's validator refused (not Temporal, not the client)

    @property
    def retryable(self) -> bool:
        """The same request (same idempotency key) may succeed later."""
        return self.kind in (RefusalKind.NO_WORKER, RefusalKind.ENGINE_UNAVAILABLE)


@dataclass(frozen=True)
class Found:
    state: DossierState
    source: Source
    received_by: str | None = None

    def involves(self, agency: str) -> bool:
        """Agencies that have or had a step on it, were escalated to, received it (or an
        online dossier is addressed to them), or return its result."""
        return agency in (self.received_by, self.state.received_by, self.state.result_desk) or \
            self.state.involves(agency)


def plausible_id(value: str) -> bool:
    """Ids no dossier or step can have (control characters, too long) are unknown without
    asking: the databases refuse NUL bytes, and Temporal refuses long ids with another error."""
    return 0 < len(value) <= MAX_ID_LENGTH and not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def implausible(what: str, value: str) -> str:
    """Why an id no dossier or step can have is unknown, naming it (shortened, escaped)."""
    shown = repr(value[:40]) + ("…" if len(value) > 40 else "")
    return (f"no {what} has the id {shown}: ids are 1 to {MAX_ID_LENGTH} characters without control characters "
            f"(this one has {len(value)})")


def unknown_dossier(dossier_id: str) -> Refusal:
    """The refusal for a dossier that does not exist, and for one the caller has no part in
    (the same words: a stranger learns nothing of it)."""
    return Refusal(RefusalKind.UNKNOWN_DOSSIER, f"unknown dossier {dossier_id}")


def _unavailable(err: BaseException) -> Refusal:
    return Refusal(RefusalKind.ENGINE_UNAVAILABLE, f"the workflow engine did not answer: {type(err).__name__}")


class DossierClient:
    """One Temporal client, the store's sessions (inbox checks, the projection when
    Temporal no longer knows a dossier) and the task queue dossiers start on."""

    def __init__(self, client: Client, sessions: sessionmaker[Session], task_queue: str) -> None:
        self.client = client
        self.sessions = sessions
        self.task_queue = task_queue

    def handle(self, dossier_id: str) -> Handle:
        return self.client.get_workflow_handle_for(DossierWorkflow.run, dossier_id)

    # ------------------------------------------------------------------------- starting

    async def start(self, dossier: DossierInput, *, request: str | None = None,
                    memo: dict[str, Any] | None = None) -> DossierState | None:
        """Reserve the dossier's id in the store, start its workflow and wait (bounded)
        for its first due; None if no worker computed it in time.

        The store decides whether the id is new (store/identity.py), whatever Temporal
        remembers: an id once received is refused ever after. With `request`, a retry of
        the same request after a lost answer is not "dossier exists": it gets the run it
        started, or starts it when the first attempt reserved the id but could not."""
        reservation = await asyncio.to_thread(self._reserve, dossier, request)
        if not reservation.mine:
            raise Refusal(RefusalKind.DOSSIER_EXISTS,
                          f"dossier {dossier.dossier_id} already exists ({await self._taken(reservation)})")
        if reservation.run_id is not None or reservation.status is not None:
            # This request started it already (the projection has it): that run, never another.
            # Temporal may have forgotten it since: the store's copy then answers.
            run: Handle = self.client.get_workflow_handle_for(DossierWorkflow.run, dossier.dossier_id,
                                                              run_id=reservation.run_id)
            state = await wait_for_first_state(run, FIRST_STATE_WAIT)
            return state if state is not None else await asyncio.to_thread(self._stored, dossier.dossier_id)
        memo = {**(memo or {}), MEMO_RECEIVED_BY: dossier.received_by}
        if request is not None:
            memo[MEMO_REQUEST] = request
        try:
            handle: Handle = await self.client.start_workflow(
                DossierWorkflow.run, dossier, id=dossier.dossier_id, task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE, memo=memo,
                search_attributes=start_attributes(dossier),
            )
            run_id = handle.first_execution_run_id or handle.result_run_id
        except WorkflowAlreadyStartedError as err:
            # Temporal has a workflow the store did not record: this request's own start
            # (its answer, or the recording of its run, was lost), or one started elsewhere.
            handle = self.handle(dossier.dossier_id)
            started_by, run_id = await self._started_by(handle)
            if request is None or started_by != request:
                raise Refusal(RefusalKind.DOSSIER_EXISTS, f"dossier {dossier.dossier_id} already exists "
                                                         f"(status {await self._status_of(handle)})") from err
        except RPCError as err:  # reserved, not started: a retry of this request may start it
            if err.status == RPCStatusCode.INVALID_ARGUMENT:  # e.g. "Blob data size exceeds limit": for good
                raise Refusal(RefusalKind.INPUT_REFUSED, f"Temporal refused dossier {dossier.dossier_id}'s input: "
                                                         f"{' '.join(err.message.split())}") from err
            raise _unavailable(err) from err
        if run_id:
            await asyncio.to_thread(self._record_run, dossier.dossier_id, run_id)
        return await wait_for_first_state(handle, FIRST_STATE_WAIT)

    def _reserve(self, dossier: DossierInput, request: str | None) -> identity.Reservation:
        # A store that does not answer fails like any other store read before a start.
        with self.sessions.begin() as session:
            return identity.reserve(session, dossier.dossier_id, request=request, received_by=dossier.received_by)

    def _record_run(self, dossier_id: str, run_id: str) -> None:
        # Started: a failure here loses only the record (a retry of the request finds the
        # run through Temporal and records it then).
        try:
            with self.sessions.begin() as session:
                identity.record_run(session, dossier_id, run_id)
        except SQLAlchemyError:
            pass

    async def _taken(self, reservation: identity.Reservation) -> str:
        """Why a reserved id is another dossier's, in a few words."""
        if reservation.status is not None:
            return f"status {reservation.status}"
        if reservation.run_id is None:
            return "reserved by another request; its workflow has not started"
        handle: Handle = self.client.get_workflow_handle_for(DossierWorkflow.run, reservation.dossier_id,
                                                             run_id=reservation.run_id)
        status = await self._status_of(handle)
        return f"status {status}" if status != "unknown" else "received before; dossier ids are never reused"

    @staticmethod
    async def _started_by(handle: Handle) -> tuple[str | None, str]:
        """The request that started the workflow (memo), and its run id."""
        try:
            description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
            value = await description.memo_value(MEMO_REQUEST, None)
        except RPCError as err:
            raise _unavailable(err) from err
        return (value if isinstance(value, str) else None), description.run_id

    @staticmethod
    async def _status_of(handle: Handle) -> str:
        """The dossier's status if the workflow recorded one, else the run's status."""
        try:
            description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
        except RPCError:
            return "unknown"
        recorded = description.typed_search_attributes.get(sa.STATUS)
        if recorded:
            return recorded
        return description.status.name.lower() if description.status else "unknown"

    # ------------------------------------------------------------------------- changing

    async def change(self, dossier_id: str, update: DossierUpdate, arg: Any,
                     key: str, *, caller: str | None = None) -> DossierState:
        """Send an Update whose id is the caller's idempotency key (so it applies once)
        and answer with the dossier's whole state. With `caller` (an agency acting for
        itself), a dossier it has no part in is unknown, exactly as one that does not
        exist, and nothing is sent."""
        if not plausible_id(dossier_id):
            raise Refusal(RefusalKind.UNKNOWN_DOSSIER, implausible("dossier", dossier_id))
        if caller is not None:
            await self.require_involved(dossier_id, caller)
        handle = self.handle(dossier_id)
        try:
            await asyncio.wait_for(execute_change(handle, update, arg, key,
                                                  inbox_check(self.sessions, dossier_id, arg)), UPDATE_TIMEOUT)
            # The Update answers briefly; the state query has the whole dossier to answer with.
            return await handle.query(DossierWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            raise _unavailable(err) from err
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise Refusal(RefusalKind.of(cause.type), cause.message, by_workflow=True) from err
            raise Refusal(RefusalKind.REFUSED, " ".join(str(cause or err).split()), by_workflow=True) from err
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise await self._why_not_found(handle) from err
            if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise self._no_worker(UPDATE_TIMEOUT) from err
            raise _unavailable(err) from err
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            raise self._no_worker(UPDATE_TIMEOUT) from err

    async def at_desk(self, dossier_id: str, update: DossierUpdate, action: DeskAction, key: str, *,
                      caller: str | None = None, receiving: bool = True) -> DossierState:
        """A desk receives (`receive`) or refuses (`refuse_receipt`, `receiving=False`) a
        dossier waiting for receipt. The desk is checked against the registry first, as at
        submission: to receive, a one-stop desk in service whose receiving scope covers the
        dossier's procedure for its commune (Decree 118/2025 Art. 14); to refuse, a one-stop
        desk (`services.submission.check_desk`). The workflow then checks it is the desk the
        dossier is addressed to."""
        if not plausible_id(dossier_id):
            raise Refusal(RefusalKind.UNKNOWN_DOSSIER, implausible("dossier", dossier_id))
        if caller is not None:
            await self.require_involved(dossier_id, caller)
        dossier = await self.input_of(dossier_id)
        if dossier is not None:
            why = await asyncio.to_thread(self._desk_problem, dossier, action.agency, receiving)
            if why is not None:
                raise Refusal(RefusalKind.OUT_OF_SCOPE, why)
        return await self.change(dossier_id, update, action, key)

    def _desk_problem(self, dossier: DossierInput, agency: str, receiving: bool) -> str | None:
        with self.sessions() as session:
            try:
                check_desk(agency, dossier, StoreDesks(session), receiving=receiving)
            except SubmissionError as err:
                return f"dossier {dossier.dossier_id}: {err}"
        return None

    async def input_of(self, dossier_id: str) -> DossierInput | None:
        """What the dossier was started with (its procedure snapshot and data), from the
        first event of its history; None when Temporal has forgotten it."""
        handle = self.handle(dossier_id)
        try:
            async for event in handle.fetch_history_events(page_size=1, rpc_timeout=QUERY_TIMEOUT):
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                decoded = await self.client.data_converter.decode(payloads, [DossierInput])
                return decoded[0] if decoded and isinstance(decoded[0], DossierInput) else None
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                return None
            raise _unavailable(err) from err
        return None

    @staticmethod
    def _no_worker(seconds: float) -> Refusal:
        return Refusal(RefusalKind.NO_WORKER, f"no worker answered within {seconds:.0f}s")

    async def _why_not_found(self, handle: Handle) -> Refusal:
        # An Update on a closed workflow is NOT_FOUND too: tell the two apart.
        try:
            description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
        except RPCError:
            return unknown_dossier(handle.id)
        if description.status != WorkflowExecutionStatus.RUNNING:
            return Refusal(RefusalKind.DOSSIER_FINISHED, f"dossier {handle.id} is finished; it takes no more changes")
        return unknown_dossier(handle.id)

    # ------------------------------------------------------------------------- who may know it

    async def require_involved(self, dossier_id: str, agency: str) -> None:
        """Nothing when `agency` has a part in the dossier (a step, an escalation, its
        receipt); otherwise the refusal an unknown dossier gets, word for word. The store
        answers first (the hand-over path: the completing agency's inbox holds the step);
        the workflow (or the projection, when Temporal has forgotten it) decides when the
        store shows no part, since the store may lag the workflow."""
        try:
            shown = await asyncio.to_thread(self._involved_in_store, dossier_id, agency)
        except SQLAlchemyError:
            shown = None  # the store cannot say: the workflow will
        if shown:
            return
        try:
            found = await self.load(dossier_id)
        except Refusal as refusal:
            if refusal.kind == RefusalKind.UNKNOWN_DOSSIER:
                raise unknown_dossier(dossier_id) from None
            raise
        if not found.involves(agency):
            raise unknown_dossier(dossier_id)

    def _involved_in_store(self, dossier_id: str, agency: str) -> bool | None:
        with self.sessions() as session:
            return involvement.involved(session, agency, dossier_id)

    # ------------------------------------------------------------------------- reading

    async def state(self, dossier_id: str) -> DossierState:
        """The workflow's `state` query (a finished dossier answers it too: a worker
        replays its history)."""
        return (await self._from_workflow(dossier_id, describe=False)).state

    async def state_of_run(self, dossier_id: str) -> tuple[DossierState, str]:
        """The workflow's `state` and the id of the run that answered it (`dossiers
        resync` compares it with the run the projection describes)."""
        handle = self.handle(dossier_id)
        try:
            run_id = (await handle.describe(rpc_timeout=QUERY_TIMEOUT)).run_id
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise Refusal(RefusalKind.UNKNOWN_DOSSIER, f"unknown dossier {dossier_id}") from err
            raise _unavailable(err) from err
        return (await self._from_workflow(dossier_id, describe=False, run_id=run_id)).state, run_id

    async def load(self, dossier_id: str) -> Found:
        """The workflow's own state; the projection when Temporal has forgotten the
        dossier (retention), cannot be reached, or no worker answers a query."""
        if not plausible_id(dossier_id):
            raise Refusal(RefusalKind.UNKNOWN_DOSSIER, implausible("dossier", dossier_id))
        try:
            return await self._from_workflow(dossier_id, describe=True)
        except Refusal as refusal:
            stored = await asyncio.to_thread(self._stored_with_desk, dossier_id)
            if stored is not None:
                return Found(stored[0], "projection", stored[1])
            raise refusal from None

    def _stored(self, dossier_id: str) -> DossierState | None:
        with self.sessions() as session:
            return projection.get_dossier(session, dossier_id)

    def _stored_with_desk(self, dossier_id: str) -> tuple[DossierState, str | None] | None:
        """The projection's copy and the desk that received it (the store's reservation)."""
        with self.sessions() as session:
            state = projection.get_dossier(session, dossier_id)
            return None if state is None else (state, identity.received_by(session, dossier_id))

    async def data(self, dossier_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """The dossier's data (the applicant's part of its workflow input), decrypted by this
        client's codec from the first event of its history: the store never holds it. (None,
        why) when Temporal no longer has the history (retention) or the configured keys do
        not decrypt it; the engine not answering is a Refusal like any other read's."""
        handle = self.handle(dossier_id)
        try:
            async for event in handle.fetch_history_events(page_size=1, rpc_timeout=QUERY_TIMEOUT):
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                [dossier] = await self.client.data_converter.decode(payloads, [DossierInput])
                return (dossier.data, None) if isinstance(dossier, DossierInput) else (None, "unexpected input")
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                return None, "Temporal no longer keeps its history"
            raise _unavailable(err) from err
        except CodecError as err:
            return None, " ".join(str(err).split())
        return None, "its history has no start event"

    async def _from_workflow(self, dossier_id: str, *, describe: bool, run_id: str | None = None) -> Found:
        handle: Handle = self.client.get_workflow_handle_for(DossierWorkflow.run, dossier_id, run_id=run_id)
        received_by = None
        try:
            if describe:  # who received it, and whether it ended normally
                description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
                received_by = await description.memo_value(MEMO_RECEIVED_BY, None)
                status = description.status
                if status not in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
                    how = status.name.lower() if status else "unknown"
                    raise Refusal(RefusalKind.UNKNOWN_DOSSIER, f"dossier {dossier_id} did not finish normally ({how})")
            state = await handle.query(DossierWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise Refusal(RefusalKind.UNKNOWN_DOSSIER, f"unknown dossier {dossier_id}") from err
            if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise Refusal(RefusalKind.NO_WORKER, f"no worker answered for dossier {dossier_id} within "
                                                     f"{QUERY_TIMEOUT.seconds}s") from err
            raise _unavailable(err) from err
        except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
            raise Refusal(RefusalKind.ENGINE_UNAVAILABLE,
                          f"dossier {dossier_id} cannot answer: {' '.join(str(err).split())}") from err
        return Found(state, "workflow", received_by if isinstance(received_by, str) else None)
