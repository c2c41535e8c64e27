"""Errors as RFC 9457 `application/problem+json`, with stable `type` URIs.

Every refusal the gateway gives has a `type` an integrator can switch on; the
workflow's refusal kinds (`ApplicationError.type`) map onto them one to one, and the
kind itself is repeated in `kind`. Types are relative URIs served under /problems,
so each one is documented by the gateway that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from config.settings import Settings
from definitions.limits import MAX_BODY_DEPTH, MAX_DATA_BYTES, MAX_JSON_INTEGER, MAX_JSON_NUMBER_CHARS
from services.dossiers import Refusal
from workflows.payloads import DOSSIER_ID_RULE
from workflows.refusals import RefusalKind

log = structlog.get_logger("lienthong.gateway")

MEDIA_TYPE = "application/problem+json"
BASE = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return BASE + self.slug


_DEFAULT = {name: field.default for name, field in Settings.model_fields.items()}
_TYPES = [
    ProblemType("unauthorized", 401, "Missing or invalid bearer token",
                "Send `Authorization: Bearer <token>` with a token issued by "
                "`lienthong agencies issue-token`; revoked tokens are refused."),
    ProblemType("wrong-agency", 403, "The step belongs to another agency",
                "Only the agency the step is routed to may complete, return or extend it; only the desk an online "
                "dossier is addressed to receives or refuses it; only the desk that received a dossier (or an "
                "agency holding one of its current steps) records a withdrawal."),
    ProblemType("wrong-role", 403, "The token's role does not allow this call",
                "Agency tokens act for their agency on /v1; monitoring tokens (`lienthong agencies issue-token "
                "CODE --role monitoring`) read the province's reports (/v1/reports) and nothing else."),
    ProblemType("not-a-receiving-desk", 403, "Your agency does not receive dossiers",
                "Only one-stop desks (`receives_dossiers: true` in agencies.yaml) submit, receive or refuse "
                "dossiers."),
    ProblemType("outside-receiving-scope", 403, "Your desk may not receive this dossier",
                "A desk receives or refuses a dossier only while it is a one-stop desk in service whose receiving "
                "scope (`receives:` in agencies.yaml: its levels and communes, or the province-wide list of "
                "Decree 118/2025 Art. 14) covers the dossier's procedure for its commune; `detail` says which "
                "part does not."),
    ProblemType("unknown-dossier", 404, "Unknown dossier",
                "No dossier has this id that your agency may know: dossiers exist for the agencies that have "
                "or had a step on them and the desk that received them; to any other, every route answers "
                "exactly as for an id that does not exist."),
    ProblemType("unknown-step", 404, "Unknown step", "The dossier's procedure has no step with this id."),
    ProblemType("unknown-problem-type", 404, "Unknown problem type", "No problem type has this name."),
    ProblemType("not-current", 409, "The step is not current",
                "The step has not been routed yet, or is already completed, skipped, rejected or returned."),
    ProblemType("dossier-finished", 409, "The dossier is finished",
                "A completed, rejected, withdrawn or not received dossier takes no changes."),
    ProblemType("awaiting-supplement", 409, "The dossier waits for the applicant",
                "While the applicant supplements documents, the step that asked for them and any "
                "new supplement request wait for the resubmission."),
    ProblemType("awaiting-obligation", 409, "The dossier waits for the applicant to pay",
                "While the applicant pays a financial obligation (portal status 6), the step that asked for it and "
                "any new supplement or obligation request wait for the resubmission."),
    ProblemType("awaiting-applicant", 409, "The dossier is with the applicant",
                "A dossier waiting for a supplement or a payment is not sent back to an earlier step; resubmit it "
                "first."),
    ProblemType("not-awaiting-supplement", 409, "The dossier is not waiting for the applicant",
                "Only a dossier whose status is `awaiting_supplement` or `awaiting_obligation` can be resubmitted."),
    ProblemType("already-received", 409, "The dossier was already received",
                "Only a dossier waiting for receipt (portal status 1) can be received or refused at the desk."),
    ProblemType("not-received", 409, "The dossier was not received yet",
                "A dossier waiting for receipt is received or refused (Mẫu 03) by its desk; it cannot be withdrawn "
                "before."),
    ProblemType("decision-made", 409, "The dossier is decided",
                "Processing finished (portal status 9, the result at the desk): it can no longer be withdrawn "
                "(Decree 118/2025 Art. 21) or sent back, and its result step only completes as approved."),
    ProblemType("return-limit", 409, "Too many returns",
                "The dossier was sent back to an earlier step as many times as its procedure allows "
                "(`max_returns`)."),
    ProblemType("obligation-limit", 409, "Too many financial obligations",
                "The applicant was asked to pay as many times as the procedure allows (`max_obligation_requests`)."),
    ProblemType("supplement-limit", 409, "Too many supplement requests",
                "The applicant was asked to supplement as many times as the procedure allows "
                "(`max_supplement_requests`)."),
    ProblemType("extension-limit", 409, "No more new appointments",
                "The dossier was given as many new appointments as its procedure allows (`max_extensions`, per "
                "dossier; 1 by default)."),
    ProblemType("extension-too-late", 409, "Too late for a new appointment",
                "An apology and new appointment (Mẫu 04) must be sent at least one working day before the "
                "step's due, in the dossier's working time; `detail` gives the last instant. A step past its "
                "due is not extended."),
    ProblemType("unknown-form", 404, "Unknown form",
                "`form` is a number of the forms' edition in use (Circular 03/2025/TT-VPCP by default: 01 receipt, "
                "02 supplement request, 03 refusal, 04 apology, 05 stop notice, 06 process-control sheet) or a "
                "kind's name (receipt, supplement-request, refusal, apology, stop-notice, control-sheet)."),
    ProblemType("not-acceptable", 406, "No acceptable media type",
                "A form is given as `text/html` or `application/pdf`: send an `Accept` header naming one of them."),
    ProblemType("form-not-applicable", 409, "The form does not apply to the dossier",
                "E.g. a refusal for a dossier the desk received, an apology without a new appointment, a stop "
                "notice for a dossier not stopped, a supplement request when none was asked; `detail` says why."),
    ProblemType("form-template-error", 500, "A form's template cannot be rendered",
                "The province's template (LIENTHONG_FORMS_TEMPLATES) has an error; `detail` names the file and line."),
    ProblemType("dossier-exists", 409, "A dossier with this id exists", "Dossier ids are never reused."),
    ProblemType("refused", 409, "Refused by the dossier", "The dossier refused the change; `detail` says why."),
    ProblemType("idempotency-key-in-use", 409, "A request with this Idempotency-Key is in progress",
                "Retry after the `Retry-After` seconds; the first request's answer will be given then."),
    ProblemType("idempotency-key-missing", 400, "Idempotency-Key header required",
                "Every POST carries an `Idempotency-Key` header (e.g. a UUID) chosen by the caller; "
                "a retry with the same key and body is answered with the first answer."),
    ProblemType("idempotency-key-reused", 422, "Idempotency-Key reused with a different request",
                "This key was first used with another body or path; use a new key for a new request."),
    ProblemType("duplicate-header", 400, "A header is sent more than once",
                "`Authorization`, `Idempotency-Key` and `Content-Type` each appear once in a request: the gateway "
                "never chooses between two values."),
    ProblemType("payload-too-large", 413, "The request body is too large",
                "A body above the gateway's limit (`LIENTHONG_GATEWAY_MAX_BODY_BYTES`, "
                f"{_DEFAULT['gateway_max_body_bytes']} bytes by default; `detail` gives it) is refused before it "
                "is read, and the connection is closed. "
                f"A dossier's data is at most {MAX_DATA_BYTES} bytes as JSON (MAX_DATA_BYTES)."),
    ProblemType("too-many-requests", 429, "Too many requests",
                "The public lookup answers each client address `LIENTHONG_PUBLIC_RATE_PER_MINUTE` times a minute "
                f"on average ({_DEFAULT['public_rate_per_minute']} by default) and `LIENTHONG_PUBLIC_BURST` at once "
                f"({_DEFAULT['public_burst']}): wait the `Retry-After` seconds."),
    ProblemType("invalid-request", 422, "Invalid request",
                "The body, a header or a parameter does not match the schema; see `errors`. A JSON body is "
                f"UTF-8, nests at most {MAX_BODY_DEPTH} objects/arrays deep (MAX_BODY_DEPTH), carries no lone "
                "surrogate (`\\ud800` without its pair), no number written longer than "
                f"{MAX_JSON_NUMBER_CHARS} characters (MAX_JSON_NUMBER_CHARS) and no integer beyond "
                f"±{MAX_JSON_INTEGER} (MAX_JSON_INTEGER, I-JSON RFC 7493)."),
    ProblemType("invalid-period", 422, "The report's period is not acceptable",
                "`from` and `to` are the first and last days (YYYY-MM-DD, local), `to` not before `from`, "
                "the period starting by today and at most MAX_REPORT_DAYS long; `detail` says which."),
    ProblemType("unknown-outcome", 422, "Unknown outcome",
                "`outcome` is approved, supplement, obligation or rejected."),
    ProblemType("note-required", 422, "A note is required",
                "Outcomes supplement, obligation (the amount and what it is for) and rejected, a refusal at the "
                "desk, a withdrawal and a return need a note saying why."),
    ProblemType("bad-return", 422, "Not a step this one may return to",
                "A step sends the dossier back only to one of the earlier steps its procedure lists in "
                "`returns_to`; `detail` lists them."),
    ProblemType("reason-required", 422, "A reason is required",
                "An extension needs a reason: it goes on the apology letter."),
    ProblemType("bad-extension", 422, "Bad extension",
                "The new due must be in the future and after the step's current due."),
    ProblemType("submission-refused", 422, "Submission refused",
                "The procedure, an agency the data names, the channel or the receipt time is not acceptable; "
                "`detail` says which."),
    ProblemType("temporal-unavailable", 503, "The workflow engine is unavailable",
                "Retry later with the same Idempotency-Key: the change is applied at most once."),
    ProblemType("store-unavailable", 503, "The gateway's database is unavailable",
                "Retry later with the same Idempotency-Key: the change is applied at most once."),
    ProblemType("internal-error", 500, "Internal error",
                "A bug in the gateway; it is logged. Retry with the same Idempotency-Key."),
    ProblemType("no-worker", 504, "No worker answered in time",
                "Retry with the same Idempotency-Key: the change is applied at most once."),
]
TYPES: dict[str, ProblemType] = {t.slug: t for t in _TYPES}

# The refusal kinds (workflows/refusals.py) → problem types; others are "refused".
KINDS: dict[RefusalKind, str] = {
    RefusalKind.DOSSIER_FINISHED: "dossier-finished",
    RefusalKind.UNKNOWN_STEP: "unknown-step",
    RefusalKind.NOT_CURRENT: "not-current",
    RefusalKind.WRONG_AGENCY: "wrong-agency",
    RefusalKind.UNKNOWN_OUTCOME: "unknown-outcome",
    RefusalKind.NOTE_REQUIRED: "note-required",
    RefusalKind.AWAITING_SUPPLEMENT: "awaiting-supplement",
    RefusalKind.AWAITING_OBLIGATION: "awaiting-obligation",
    RefusalKind.AWAITING_APPLICANT: "awaiting-applicant",
    RefusalKind.NOT_AWAITING_SUPPLEMENT: "not-awaiting-supplement",
    RefusalKind.ALREADY_RECEIVED: "already-received",
    RefusalKind.NOT_RECEIVED: "not-received",
    RefusalKind.DECISION_MADE: "decision-made",
    RefusalKind.BAD_RETURN: "bad-return",
    RefusalKind.RETURN_LIMIT: "return-limit",
    RefusalKind.OBLIGATION_LIMIT: "obligation-limit",
    RefusalKind.SUPPLEMENT_LIMIT: "supplement-limit",
    RefusalKind.EXTENSION_LIMIT: "extension-limit",
    RefusalKind.OUT_OF_SCOPE: "outside-receiving-scope",
    RefusalKind.REASON_REQUIRED: "reason-required",
    RefusalKind.BAD_EXTENSION: "bad-extension",
    RefusalKind.EXTENSION_TOO_LATE: "extension-too-late",
    RefusalKind.UNKNOWN_DOSSIER: "unknown-dossier",
    RefusalKind.DOSSIER_EXISTS: "dossier-exists",
    RefusalKind.NO_WORKER: "no-worker",
    RefusalKind.ENGINE_UNAVAILABLE: "temporal-unavailable",
    RefusalKind.INPUT_REFUSED: "submission-refused",
}



class FieldError(BaseModel):
    location: str = Field(description="where: body.note, header.Idempotency-Key, query.limit, ...")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "type": "/problems/not-current", "title": "The step is not current", "status": 409,
        "detail": "step 'tra-ket-qua' of dossier HS-2026-000123 is not current: it has not been routed "
                  "to an agency yet",
        "instance": "/v1/dossiers/HS-2026-000123/steps/tra-ket-qua/complete", "kind": "NotCurrent",
    }]})

    type: str = Field(description="stable URI of the problem type (see /problems)")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="the request path")
    kind: str | None = Field(default=None, description="the dossier workflow's refusal kind, when it refused")
    errors: list[FieldError] | None = Field(default=None, description="for invalid-request: each field that failed")


class GatewayProblem(Exception):
    """Raised anywhere in a request; rendered by the handler below."""

    def __init__(self, slug: str, detail: str | None = None, *, kind: str | None = None,
                 errors: list[FieldError] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or slug)
        self.type = TYPES[slug]
        self.detail = detail
        self.kind = kind
        self.errors = errors
        self.headers = dict(headers or {})
        if self.type.status == 401:
            self.headers.setdefault("WWW-Authenticate", 'Bearer realm="lienthong"')

    @property
    def status(self) -> int:
        return self.type.status

    def body(self, instance: str | None) -> dict[str, Any]:
        problem = Problem(type=self.type.uri, title=self.type.title, status=self.status, detail=self.detail,
                          instance=instance, kind=self.kind, errors=self.errors)
        return problem.model_dump(mode="json", exclude_none=True)


def problem_of(refusal: Refusal) -> GatewayProblem:
    """A dossier client's refusal as a problem; a retryable one says how to retry."""
    slug = KINDS.get(refusal.kind, "refused")
    if refusal.retryable:
        detail = f"{refusal.message}; retry with the same Idempotency-Key: the change applies at most once"
        return GatewayProblem(slug, detail, headers={"Retry-After": "5"})
    # `kind` is a dossier's word; what the client learnt from Temporal is told by the type alone.
    return GatewayProblem(slug, refusal.message, kind=None if refusal.kind.the_clients else refusal.kind.value)


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayProblem)
    return problem_response(exc.status, exc.body(request.url.path), exc.headers)


# What a pattern means, for the fields whose pattern is all pydantic would say.
_PATTERNS = {
    "header.Idempotency-Key": "expected 1 to 255 visible ASCII characters without spaces, e.g. a UUID",
    "body.dossier_id": f"expected {DOSSIER_ID_RULE}",
    "body.procedure": "expected CODE or CODE@VERSION of a deployed procedure, without slashes or spaces",
}
_DATETIME = "expected an ISO 8601 date-time with a UTC offset, e.g. 2026-12-10T16:00:00+07:00"


def _field_error(error: Any) -> FieldError:
    """One validation error as `location: message`, in words an integrator can act on."""
    loc, kind = tuple(error.get("loc", ())), str(error.get("type", ""))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "json_invalid":  # FastAPI puts the character offset into `loc`
        at = f" at character {loc[1]}" if len(loc) > 1 else ""
        reason = (error.get("ctx") or {}).get("error") or message
        return FieldError(location="body", message=f"the body is not valid JSON{at}: {reason}")
    location = _location(loc)
    if location == "body" and kind in ("model_attributes_type", "dict_type"):
        message = "the body must be a JSON object, e.g. {\"outcome\": \"approved\"}"
    elif kind == "string_pattern_mismatch" and location in _PATTERNS:
        message = _PATTERNS[location]
    elif kind.startswith(("datetime_", "timezone_")):
        message = f"{message}; {_DATETIME}"
    return FieldError(location=location, message=message)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(e) for e in exc.errors()]
    if any(e.location.lower() == "header.idempotency-key" and "required" in e.message.lower() for e in errors):
        problem = GatewayProblem("idempotency-key-missing", "send an Idempotency-Key header, e.g. a UUID")
    else:
        detail = "; ".join(f"{e.location}: {e.message}" for e in errors[:5])
        if request.method == "POST" and "json" not in request.headers.get("content-type", ""):
            detail = f"the body must be JSON (Content-Type: application/json); {detail}"
        problem = GatewayProblem("invalid-request", detail, errors=errors)
    return problem_response(problem.status, problem.body(request.url.path))


async def _on_store_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("gateway_store_error", path=request.url.path, error=" ".join(str(exc).split())[:300])
    problem = GatewayProblem("store-unavailable", f"the database did not answer: {type(exc).__name__}",
                             headers={"Retry-After": "5"})
    return problem_response(problem.status, problem.body(request.url.path), problem.headers)


async def _on_temporal_error(request: Request, exc: Exception) -> JSONResponse:
    problem = GatewayProblem("temporal-unavailable", f"the workflow engine did not answer: {type(exc).__name__}",
                             headers={"Retry-After": "5"})
    return problem_response(problem.status, problem.body(request.url.path), problem.headers)


async def _on_bug(request: Request, exc: Exception) -> JSONResponse:
    # Still a problem document, so clients parse one format; the traceback goes to the log.
    log.error("gateway_internal_error", path=request.url.path, exc_info=exc)
    problem = GatewayProblem("internal-error", type(exc).__name__)
    return problem_response(problem.status, problem.body(request.url.path))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    # Routing errors (no such path, method not allowed): no extra semantics, so about:blank.
    assert isinstance(exc, StarletteHTTPException)
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    body = Problem(type="about:blank", title=title, status=exc.status_code, detail=detail,
                   instance=request.url.path).model_dump(mode="json", exclude_none=True)
    return problem_response(exc.status_code, body, dict(exc.headers or {}))


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayProblem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(SQLAlchemyError, _on_store_error)
    app.add_exception_handler(RPCError, _on_temporal_error)
    app.add_exception_handler(Exception, _on_bug)
