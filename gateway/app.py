"""The FastAPI application: routers, RFC 9457 error handlers, the published OpenAPI
document and one log line per request."""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import Settings, get_settings
from gateway import problems, routes_agency, routes_codec, routes_public, routes_reports
from gateway.context import GatewayContext
from gateway.docs_assets import offline_fastapi
from gateway.guard import AGENCY_PREFIX, PUBLIC_PREFIX, GatewayLimits, RequestGuard
from gateway.responses import problems as documented

log = structlog.get_logger("lienthong.gateway")

TITLE = "lienthong agency gateway"
VERSION = "1.0.0"
DESCRIPTION = """\
HTTP API for agencies' systems to receive and finish their work on dossiers routed by
lienthong (một cửa liên thông), and a public status lookup for applicants.

**Authentication.** Every `/v1` call carries `Authorization: Bearer <token>`, one token
per agency, issued by an operator with `lienthong agencies issue-token CODE` (shown
once, stored hashed) and revoked with `lienthong agencies revoke-token ID`. A call acts
as exactly that agency. A monitoring token (`--role monitoring`) reads the reports
under `/v1/reports` and nothing else.

**Idempotency.** Every POST carries an `Idempotency-Key` header chosen by the caller
(a UUID per intended change). Retrying with the same key and body returns the first
answer (header `Idempotent-Replayed: true`) and changes nothing; the same key with a
different body is refused with 422. The key is also the Temporal Update id
(`AGENCY:KEY`), so a change is applied once whichever path a retry takes.

**Errors** are `application/problem+json` (RFC 9457) with a stable `type`
(listed at `/problems`): 401 token, 403 another agency's step, 404 unknown dossier
or step, 409 the step is not current or the dossier finished, 422 invalid body.
A refused call changes nothing. 503/504 mean the engine or its worker did not
answer: retry with the same key.

**Limits.** Checked before any work: a body above the gateway's limit is refused
with 413 before it is read (and the connection closed); a `/v1` call's token is
checked before its body is read; `Authorization`, `Idempotency-Key` and
`Content-Type` sent twice are refused with 400; a JSON body that is not UTF-8, nests
too deep, carries a lone surrogate or a number beyond I-JSON's range gets 422;
`/public` answers each client address a bounded number of times a minute (429 with
`Retry-After`).
"""
TAGS = [
    {"name": "inbox", "description": "What is waiting for your agency."},
    {"name": "dossiers", "description": "Submit and read dossiers."},
    {"name": "steps", "description": "Finish, resubmit and extend: the changes agencies make."},
    {"name": "documents", "description": "The printed forms of Circular 03/2025/TT-VPCP, as HTML or PDF."},
    {"name": "reports", "description": "The province's periodic reports (Biểu 06), for monitoring tokens."},
    {"name": "public", "description": "No token needed; no personal data."},
    {"name": "meta", "description": "Problem types and health."},
]


def create_app(context: GatewayContext, settings: Settings | None = None) -> FastAPI:
    """The app; its limits come from `settings` (read once here when not given)."""
    limits = GatewayLimits.of(settings or get_settings())
    app = offline_fastapi(title=TITLE, version=VERSION, description=DESCRIPTION, openapi_tags=TAGS)
    app.state.context = context
    app.state.limits = limits
    problems.install(app)
    app.include_router(routes_agency.router)
    app.include_router(routes_reports.router)
    app.include_router(routes_public.router)
    app.include_router(routes_codec.router)  # operators' codec endpoint for the Temporal UI
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(RequestGuard, context=context, limits=limits)  # inside the access log: refusals are logged
    app.add_middleware(_AccessLog)
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI documents error bodies as application/json and adds its own 422 model;
    the gateway answers every error as application/problem+json with `Problem`."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         tags=app.openapi_tags)
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            # The request guard's refusals (gateway/guard.py), on the operations it gives them.
            guarded = [400, 413] + ([429] if path.startswith(PUBLIC_PREFIX) else [])
            guarded += [401, 422] if path.startswith(AGENCY_PREFIX) or "requestBody" in operation else []
            for status, response in documented(*guarded).items():
                operation.setdefault("responses", {}).setdefault(str(status), {"description": response["description"]})
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {problems.MEDIA_TYPE: {"schema": problem}}
                    if int(status) == 401:
                        response.setdefault("headers", {})["WWW-Authenticate"] = {"schema": {"type": "string"}}
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema


class _AccessLog:
    """One structured line per request: method, path, status, milliseconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            log.info("gateway_request", method=scope["method"], path=scope["path"], status=status,
                     ms=round((time.perf_counter() - started) * 1000, 1))
