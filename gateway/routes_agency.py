"""/v1: what an agency's system does, always as exactly one agency (its token's)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sqlalchemy.orm import Session

from definitions.calendar import CalendarFileError, UnknownCalendarError, load_calendar
from definitions.loader import looks_like_path
from gateway import dossiers
from gateway.auth import Agency, Caller
from gateway.context import GatewayContext, get_context
from gateway.idempotency import HEADER, KEY_PATTERN, Answer, run_once, update_id
from gateway.problems import GatewayProblem, problem_of
from gateway.responses import AGENCY, POST, READ_DOSSIER, problems
from gateway.schemas import (
    AgencyInfo,
    CompleteStepBody,
    ExtendBody,
    ReasonBody,
    Receipt,
    ReceiveBody,
    ResubmitBody,
    ReturnBody,
    SubmitDossier,
)
from services import documents
from services.documents import FormTemplateError, NotApplicable, UnknownForm
from services.dossiers import DossierUpdate, Refusal
from services.inbox import InboxPage, read_page
from services.instants import in_utc
from services.sheet import Sheet, build_sheet
from services.submission import (
    StoreRegistry,
    SubmissionError,
    local_today,
    prepare_dossier,
)
from services.timeline import MEDIA_TYPE as SVG
from services.timeline import render_timeline
from workflows.dossier import DossierWorkflow
from workflows.payloads import (
    CompleteStep,
    DeskAction,
    DossierInput,
    DossierState,
    Extend,
    Resubmit,
    ReturnStep,
)

router = APIRouter(prefix="/v1", responses=problems(*AGENCY))

Context = Annotated[GatewayContext, Depends(get_context)]
IdempotencyKey = Annotated[str, Header(
    alias=HEADER, pattern=KEY_PATTERN,
    description="chosen by the caller (e.g. a UUID), one per intended change: a retry with the same key and "
                "body gets the first answer and changes nothing; the same key with another body is refused (422)",
)]
DossierId = Annotated[str, Path(description="the dossier code", examples=["HS-2026-000123"])]
StepId = Annotated[str, Path(description="a step id of the dossier's procedure", examples=["tiep-nhan"])]
SOURCE_HEADER = "Lienthong-Source"  # workflow (live) or projection (stored copy)
# OpenAPI links: where a receipt's dossier id leads (clients and stateful testers follow them).
_ID = {"dossier_id": "$response.body#/dossier_id"}
LINKS = {
    "readDossier": {"operationId": "readDossier", "parameters": _ID},
    "readSheet": {"operationId": "readSheet", "parameters": _ID},
    "readTimeline": {"operationId": "readTimeline", "parameters": _ID},
    "resubmitDossier": {"operationId": "resubmitDossier", "parameters": _ID},
    "extendDossier": {"operationId": "extendDossier", "parameters": _ID},
    "receiveDossier": {"operationId": "receiveDossier", "parameters": _ID},
    "refuseDossier": {"operationId": "refuseDossier", "parameters": _ID},
    "withdrawDossier": {"operationId": "withdrawDossier", "parameters": _ID},
    "publicStatus": {"operationId": "publicStatus", "parameters": _ID},
}


def _known(step_id: str) -> None:
    if not dossiers.plausible_id(step_id):
        raise GatewayProblem("unknown-step", dossiers.implausible("step", step_id))


# ----------------------------------------------------------------------------- reading


@router.get("/agency", operation_id="readAgency", response_model=AgencyInfo, tags=["inbox"],
            summary="Who your token acts as")
async def whoami(caller: Caller) -> AgencyInfo:
    """A cheap call to check a token (of either role)."""
    return AgencyInfo(code=caller.agency, name=caller.name, receives_dossiers=caller.receives_dossiers,
                      token_id=caller.token_id, role=caller.role)


@router.get("/inbox", operation_id="readInbox", response_model=InboxPage, tags=["inbox"],
            summary="Your agency's open steps")
async def read_inbox(caller: Agency, context: Context,
                     limit: Annotated[int, Query(ge=1, le=200)] = 50,
                     offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> InboxPage:
    """Steps routed to your agency and not yet done or taken back, most urgent first.
    Page with `offset`; `next_offset` is null on the last page."""
    now = datetime.now(UTC)
    return await context.read(lambda s: read_page(s, caller.agency, limit, offset, now))


@router.get("/dossiers/{dossier_id}", operation_id="readDossier", response_model=DossierState,
            tags=["dossiers"],
            summary="A dossier's full state", responses=problems(*READ_DOSSIER))
async def read_dossier(dossier_id: DossierId, caller: Agency, context: Context, response: Response) -> DossierState:
    """For agencies that have or had a step on the dossier (and the desk that received it).
    Live from the workflow; from the stored projection once Temporal no longer keeps it
    (header `Lienthong-Source`)."""
    found = await dossiers.visible(context, dossier_id, caller.agency)
    response.headers[SOURCE_HEADER] = found.source
    return in_utc(found.state)


@router.get("/dossiers/{dossier_id}/sheet", operation_id="readSheet", response_model=Sheet, tags=["dossiers"],
            summary="The process-control sheet", responses=problems(*READ_DOSSIER))
async def read_sheet(dossier_id: DossierId, caller: Agency, context: Context) -> Sheet:
    """Phiếu kiểm soát quá trình giải quyết hồ sơ: one row per handover, with dues and verdicts."""
    found = await dossiers.visible(context, dossier_id, caller.agency)
    return build_sheet(found.state, found.source)


@router.get("/dossiers/{dossier_id}/timeline", operation_id="readTimeline", tags=["dossiers"],
            summary="The dossier's timeline, as a picture (SVG)", response_class=Response,
            responses=problems(*READ_DOSSIER, 500) | {200: {
                "description": "an SVG document (UTF-8)", "content": {SVG: {"schema": {"type": "string"}}}}})
async def read_timeline(dossier_id: DossierId, caller: Agency, context: Context) -> Response:
    """Each hand-over as a bar on a working-time axis (the dossier's calendar: nights,
    weekends and days off take no width): assigned, due (and the legal due once
    extended), completed; the part past the legal due marked late; the applicant's
    turns (supplement, financial obligation) shaded; receipt, the appointment, status 9
    and the end marked. For the agencies that may read the dossier (as its sheet)."""
    found = await dossiers.visible(context, dossier_id, caller.agency)
    state = found.state

    def draw() -> str:
        try:
            calendar = load_calendar(state.calendar, context.definitions)
        except (UnknownCalendarError, CalendarFileError) as err:  # an operator's broken file: 500, said so
            raise GatewayProblem("internal-error", f"calendar {state.calendar!r} of dossier {dossier_id} cannot be "
                                                   f"read: {' '.join(str(err).split())}") from err
        return render_timeline(state, calendar, datetime.now(UTC))

    svg = await asyncio.to_thread(draw)  # a long dossier's working-time walk is CPU work
    return Response(svg, media_type=SVG, headers={SOURCE_HEADER: found.source})


FormId = Annotated[str, Path(description="a form's number in the edition in use (01-06), or its kind's name",
                             examples=["01", "receipt"], max_length=40)]
HTML, PDF = "text/html", "application/pdf"
DOCUMENT_CONTENT = {HTML: {"schema": {"type": "string"}}, PDF: {"schema": {"type": "string", "format": "binary"}}}


@router.get("/dossiers/{dossier_id}/documents/{form}", operation_id="readDocument", tags=["documents"],
            summary="A printed form of the dossier (HTML or PDF)", response_class=Response,
            responses=problems(*READ_DOSSIER, 406, 409, 500) | {200: {"content": DOCUMENT_CONTENT,
                                                                       "description": "the form, on A4"}})
async def read_document(dossier_id: DossierId, form: FormId, caller: Agency, context: Context,
                        accept: Annotated[str | None, Header(
                            description="`text/html` (the default) or `application/pdf`")] = None) -> Response:
    """The forms of Circular 03/2025/TT-VPCP for this dossier: receipt slip (01), supplement
    request (02), refusal (03), apology with the new appointment (04), stop notice (05),
    process-control sheet (06), in the numbering the province configured. For agencies with
    a part in the dossier, as every read; a form that does not apply to it (yet) is 409.
    Blank lines are left where lienthong does not know a field (README "Documents")."""
    try:
        kind = documents.form_kind(context.forms, form)
    except UnknownForm as err:
        raise GatewayProblem("unknown-form", str(err)) from err
    media = negotiate(accept)
    if media is None:
        raise GatewayProblem("not-acceptable", f"Accept {accept[:100]!r} names neither {HTML} nor {PDF}"
                             if accept else "no media type")
    found = await dossiers.visible(context, dossier_id, caller.agency)
    try:
        document = await documents.dossier_form(context.dossiers, found, kind, context.forms)
    except Refusal as refusal:
        raise problem_of(refusal) from refusal
    except NotApplicable as err:
        raise GatewayProblem("form-not-applicable", str(err)) from err
    except FormTemplateError as err:
        raise GatewayProblem("form-template-error", str(err)) from err
    disposition = f'inline; filename="{document.name}.{"pdf" if media == PDF else "html"}"'
    headers = {SOURCE_HEADER: found.source, "Content-Disposition": disposition}
    if media == PDF:
        return Response(await asyncio.to_thread(document.pdf), media_type=PDF, headers=headers)
    return Response(document.html, media_type=f"{HTML}; charset=utf-8", headers=headers)


def negotiate(accept: str | None) -> str | None:
    """text/html or application/pdf, whichever `accept` prefers (HTML on a tie, on */* and
    without the header); None when it accepts neither."""
    if accept is None or not accept.strip():
        return HTML
    best: tuple[float, int, str] | None = None
    for part in accept.split(",")[:20]:  # a bounded list: nobody prefers among more
        media, *params = (item.strip() for item in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        offers = {HTML: [HTML], PDF: [PDF], "text/*": [HTML], "application/*": [PDF], "*/*": [HTML]}.get(media, [])
        for offer in offers:
            rank = (quality, 1 if offer == HTML else 0, offer)
            if quality > 0 and (best is None or rank[:2] > best[:2]):
                best = rank
    return best[2] if best else None


# ----------------------------------------------------------------------------- changing


@router.post("/dossiers", operation_id="submitDossier", status_code=201, response_model=Receipt,
             tags=["dossiers"], summary="Submit a dossier (one-stop desks)",
             responses=problems(403, *POST) | {201: {"links": LINKS}})
async def submit_dossier(body: SubmitDossier, caller: Agency, key: IdempotencyKey, context: Context,
                         request: Request) -> Response:
    """Start a dossier received by your desk. Only agencies that receive dossiers may.
    The procedure, every agency its steps name (none retired), the calendar, your desk's
    receiving scope (`receives:` in agencies.yaml: its levels and communes, or the
    province-wide list of Decree 118/2025 Art. 14) and the `result_desk` (a one-stop desk)
    are checked first: a refused submission starts nothing. An online dossier (or one with
    `await_receipt`) waits for your desk to receive it (`/receive`, portal status 1 → 2:
    its legal clock starts then) or refuse it (`/refuse`)."""
    if not caller.receives_dossiers:
        raise GatewayProblem("not-a-receiving-desk", f"agency {caller.agency} does not receive dossiers")
    if looks_like_path(body.procedure):
        raise GatewayProblem("submission-refused", "procedure is a CODE or CODE@VERSION, not a file")

    async def operation() -> Answer:
        dossier = await context.read(lambda s: _prepare(s, context, body, caller.agency))
        state = await dossiers.start(context, dossier, update_id(caller.agency, key))
        receipt = Receipt(dossier_id=dossier.dossier_id, procedure=dossier.snapshot.ref,
                          procedure_name=dossier.snapshot.procedure.name,
                          received_at=state.received_at if state else dossier.received_at,
                          due_at=state.due_at if state else None,
                          status=state.status if state else ("submitted" if dossier.awaits_receipt
                                                              else "processing"))
        return Answer(201, receipt.model_dump(mode="json"), {"Location": f"/v1/dossiers/{dossier.dossier_id}"})

    return await run_once(context, caller.agency, key, "POST", request.url.path, body.model_dump(mode="json"),
                          operation)


def _prepare(session: Session, context: GatewayContext, body: SubmitDossier, agency: str) -> DossierInput:
    try:
        return prepare_dossier(body.procedure, body.dossier_id, body.data, StoreRegistry(session, context.definitions),
                               local_today(), body.channel, body.received_at, agency,
                               await_receipt=body.await_receipt, result_desk=body.result_desk)
    except SubmissionError as err:
        raise GatewayProblem("submission-refused", str(err)) from err


@router.post("/dossiers/{dossier_id}/steps/{step_id}/complete", operation_id="completeStep",
             response_model=DossierState, tags=["steps"],
             summary="Report your step done", responses=problems(403, 404, *POST))
async def complete_step(dossier_id: DossierId, step_id: StepId, body: CompleteStepBody, caller: Agency,
                        key: IdempotencyKey, context: Context, request: Request) -> Response:
    """`approved` moves the dossier on; `supplement` (portal status 5) and `obligation` (6:
    the applicant pays fees or taxes, Decree 118 Art. 24) stop the clocks until the
    dossier is resubmitted (a procedure with `on_obligation: continue` keeps them running
    while the applicant pays); `rejected` ends the dossier. All but `approved` need a note
    (for an obligation: the amount and what it is for). Refused, with nothing changed, when
    the dossier is not one your agency has a part in (404, exactly as for an id that does
    not exist), the step is another agency's (403), unknown (404), not current, the dossier
    is finished, decided (status 9: only `approved`) or waits for the applicant (409)."""
    _known(step_id)
    change = CompleteStep(step_id=step_id, agency=caller.agency, outcome=body.outcome.value, note=body.note)
    return await _apply(context, caller.agency, key, request, body.model_dump(mode="json"), dossier_id,
                        DossierWorkflow.complete_step, change)


@router.post("/dossiers/{dossier_id}/steps/{step_id}/return", operation_id="returnStep",
             response_model=DossierState, tags=["steps"],
             summary="Send the dossier back to an earlier step", responses=problems(403, 404, *POST))
async def return_step(dossier_id: DossierId, step_id: StepId, body: ReturnBody, caller: Agency,
                      key: IdempotencyKey, context: Context, request: Request) -> Response:
    """From your current step, back to an earlier one its procedure lists in `returns_to`
    (an approved internal procedure's "if not approved, send back to step 3"): that step is
    handed over again, with a new due by its deadline, and the steps between run again;
    what happened before stays on the sheet. The dossier's legal due does not move (returns
    are the agencies' time). Refused when `to` is not in `returns_to` (422), the procedure's
    `max_returns` is reached, the dossier waits for the applicant or is decided (409)."""
    _known(step_id)
    change = ReturnStep(step_id=step_id, agency=caller.agency, to=body.to, note=body.note)
    return await _apply(context, caller.agency, key, request, body.model_dump(mode="json"), dossier_id,
                        DossierWorkflow.return_step, change)


@router.post("/dossiers/{dossier_id}/receive", operation_id="receiveDossier", response_model=DossierState,
             tags=["desk"], summary="Receive a dossier submitted online (one-stop desks)",
             responses=problems(403, 404, *POST))
async def receive(dossier_id: DossierId, body: ReceiveBody, caller: Agency, key: IdempotencyKey,
                  context: Context, request: Request) -> Response:
    """Your desk has checked the dossier submitted to it and receives it (portal status
    1 → 2, then 4 once handed over): its legal clock starts now (the next working day's
    start after the receipt cut-off). Your desk must still be a one-stop desk whose
    receiving scope covers the dossier (403 otherwise); a dossier already received or
    refused is 409."""
    return await _at_desk(context, caller, key, request, body.model_dump(mode="json"), dossier_id,
                          DossierWorkflow.receive, DeskAction(agency=caller.agency, note=body.note), receiving=True)


@router.post("/dossiers/{dossier_id}/refuse", operation_id="refuseDossier", response_model=DossierState,
             tags=["desk"], summary="Refuse to receive a dossier (Mẫu 03; one-stop desks)",
             responses=problems(403, 404, *POST))
async def refuse(dossier_id: DossierId, body: ReasonBody, caller: Agency, key: IdempotencyKey,
                 context: Context, request: Request) -> Response:
    """Your desk refuses a dossier submitted to it, before receiving it (portal status 3,
    the reasons on Mẫu 03): it ends, never counted as received. A dossier already received
    is 409."""
    return await _at_desk(context, caller, key, request, body.model_dump(mode="json"), dossier_id,
                          DossierWorkflow.refuse_receipt, DeskAction(agency=caller.agency, note=body.note),
                          receiving=False)


@router.post("/dossiers/{dossier_id}/withdraw", operation_id="withdrawDossier", response_model=DossierState,
             tags=["desk"], summary="The applicant withdraws the dossier (Mẫu 05)",
             responses=problems(403, 404, *POST))
async def withdraw(dossier_id: DossierId, body: ReasonBody, caller: Agency, key: IdempotencyKey,
                   context: Context, request: Request) -> Response:
    """Recorded by the desk that received the dossier (or an agency holding one of its
    current steps) at the applicant's request (Decree 118/2025 Art. 21): portal status 7,
    then stopped (8); every open step leaves its agency's inbox. Allowed until a decision
    exists: once processing finished (status 9) it is refused (409 `decision-made`), as it
    is before receipt (409 `not-received`)."""
    change = DeskAction(agency=caller.agency, note=body.note)
    return await _apply(context, caller.agency, key, request, body.model_dump(mode="json"), dossier_id,
                        DossierWorkflow.withdraw, change)


@router.post("/dossiers/{dossier_id}/resubmit", operation_id="resubmitDossier", response_model=DossierState,
             tags=["steps"],
             summary="The applicant supplemented the documents or paid", responses=problems(403, 404, *POST))
async def resubmit(dossier_id: DossierId, body: ResubmitBody, caller: Agency, key: IdempotencyKey,
                   context: Context, request: Request) -> Response:
    """The applicant supplemented the documents (portal status 5 → 4) or paid the financial
    obligation (6 → 4): clocks resume with the working time they had left. For agencies on
    the dossier (the desk that received it, or one with a step on it), recorded as the one
    that relayed it."""
    return await _apply(context, caller.agency, key, request, body.model_dump(mode="json"), dossier_id,
                        DossierWorkflow.resubmit, Resubmit(agency=caller.agency, note=body.note))


@router.post("/dossiers/{dossier_id}/extend", operation_id="extendDossier", response_model=DossierState,
             tags=["steps"],
             summary="A new appointment, with an apology", responses=problems(403, 404, *POST))
async def extend(dossier_id: DossierId, body: ExtendBody, caller: Agency, key: IdempotencyKey,
                 context: Context, request: Request) -> Response:
    """An apology and new appointment (Mẫu 04): move the due of your current steps to `until`, at least one
    working day before their due; once per dossier unless its procedure allows more (`max_extensions`)."""
    if body.step_id is not None:
        _known(body.step_id)
    change = Extend(agency=caller.agency, new_due=body.until, reason=body.reason, step_id=body.step_id)
    return await _apply(context, caller.agency, key, request, body.model_dump(mode="json"), dossier_id,
                        DossierWorkflow.extend, change)


async def _at_desk(context: GatewayContext, caller: Caller, key: str, request: Request, body: dict[str, Any],
                   dossier_id: str, update: DossierUpdate, change: DeskAction, *, receiving: bool) -> Response:
    """Receipt and refusal: for one-stop desks, checked against the registry before the Update."""
    if not caller.receives_dossiers:
        raise GatewayProblem("not-a-receiving-desk", f"agency {caller.agency} does not receive dossiers")

    async def operation() -> Answer:
        state = await dossiers.at_desk(context, dossier_id, update, change, update_id(caller.agency, key),
                                       caller.agency, receiving=receiving)
        return Answer(200, in_utc(state).model_dump(mode="json"))

    return await run_once(context, caller.agency, key, "POST", request.url.path, body, operation)


async def _apply(context: GatewayContext, agency: str, key: str, request: Request, body: dict[str, Any],
                 dossier_id: str, update: DossierUpdate, change: Any) -> Response:
    """One Update per (agency, key): sent for a new key, answered from the store for a replay."""

    async def operation() -> Answer:
        state = await dossiers.change(context, dossier_id, update, change, update_id(agency, key), agency)
        return Answer(200, in_utc(state).model_dump(mode="json"))

    return await run_once(context, agency, key, "POST", request.url.path, body, operation)
