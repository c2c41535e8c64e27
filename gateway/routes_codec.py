"""The codec endpoint the Temporal UI (and `temporal --codec-endpoint`) calls to show
operators the encrypted payloads of dossiers' histories: POST /codec/decode and
/codec/encode with `{"payloads": [...]}` (protobuf JSON), as Temporal's codec server
protocol says.

Operators only: the credentials are LIENTHONG_CODEC_OPERATORS' tokens (never an
agency's token: an agency reads its own dossiers through /v1, and decoding a history
would show it any dossier). Either `Authorization: Bearer <token>` (the CLI's
`--codec-auth`) or HTTP Basic with the operator's name and token (a browser: open
/codec once, then the UI sends the remembered credentials when
TEMPORAL_CODEC_INCLUDE_CREDENTIALS is true). Browsers may call it only from the
LIENTHONG_CODEC_UI_ORIGINS (CORS). Each use is logged with the operator's name.
Not in the agencies' OpenAPI document.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from gateway.context import GatewayContext, get_context
from gateway.problems import GatewayProblem
from services.codec import CodecAccess, CodecError, EncryptionCodec, operator_for

log = structlog.get_logger("lienthong.gateway.codec")

router = APIRouter(prefix="/codec", include_in_schema=False)
REALM = 'Basic realm="lienthong codec", charset="UTF-8"'
MAX_PAYLOADS = 1000


def cors_headers(request: Request, access: CodecAccess) -> dict[str, str]:
    origin = request.headers.get("origin", "").rstrip("/")
    if not origin or origin not in access.ui_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "authorization, content-type, x-namespace",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _refuse(request: Request, access: CodecAccess, why: str) -> GatewayProblem:
    return GatewayProblem("unauthorized", why, headers={"WWW-Authenticate": REALM, **cors_headers(request, access)})


async def current_operator(request: Request, context: Annotated[GatewayContext, Depends(get_context)]) -> str:
    access = context.codec_access
    if not access.operators:
        raise _refuse(request, access, "no codec operator is configured (LIENTHONG_CODEC_OPERATORS)")
    if request.headers.get("origin") and not cors_headers(request, access):
        raise _refuse(request, access, "this origin is not an allowed Temporal UI (LIENTHONG_CODEC_UI_ORIGINS)")
    values = request.headers.getlist("authorization")
    if len(values) != 1:
        raise _refuse(request, access, "send one Authorization header with an operator's codec token")
    scheme, _, credentials = values[0].partition(" ")
    operator = None
    if scheme.lower() == "bearer":
        operator = operator_for(access.operators, credentials.strip())
    elif scheme.lower() == "basic":
        try:
            name, _, token = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name, token = "", ""
        operator = operator_for(access.operators, token, name) if name and token else None
    if operator is None:
        log.warning("codec_refused", path=request.url.path, client=request.client.host if request.client else None)
        raise _refuse(request, access, "not a codec operator's token")
    return operator


Operator = Annotated[str, Depends(current_operator)]


@router.options("/{action}")
async def preflight(action: str, request: Request,
                    context: Annotated[GatewayContext, Depends(get_context)]) -> Response:
    """CORS preflight (browsers send it without credentials)."""
    return Response(status_code=204, headers=cors_headers(request, context.codec_access))


@router.get("")
async def whoami(operator: Operator) -> PlainTextResponse:
    """Opened once in the browser: it asks for the operator's name and token and then
    sends them with the Temporal UI's codec calls."""
    return PlainTextResponse(f"codec operator {operator}: the Temporal UI can decode dossiers in this browser\n")


@router.post("/decode")
async def decode(request: Request, operator: Operator,
                 context: Annotated[GatewayContext, Depends(get_context)]) -> Response:
    return await _apply(request, operator, context, "decode")


@router.post("/encode")
async def encode(request: Request, operator: Operator,
                 context: Annotated[GatewayContext, Depends(get_context)]) -> Response:
    return await _apply(request, operator, context, "encode")


async def _apply(request: Request, operator: str, context: GatewayContext, action: str) -> Response:
    codec = context.client.data_converter.payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise GatewayProblem("internal-error", "the gateway's Temporal client has no encryption codec")
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except (json_format.ParseError, UnicodeDecodeError) as err:
        raise GatewayProblem("invalid-request", f"expected {{\"payloads\": [...]}} as protobuf JSON: {err}",
                             headers=cors_headers(request, context.codec_access)) from None
    if len(payloads.payloads) > MAX_PAYLOADS:
        raise GatewayProblem("invalid-request", f"at most {MAX_PAYLOADS} payloads per call",
                             headers=cors_headers(request, context.codec_access))
    out: list[Payload] = []
    undecryptable = 0
    for payload in payloads.payloads:
        if action == "encode":
            out.append(codec.encrypt(payload))
            continue
        try:
            out.append(codec.decrypt(payload))
        except CodecError as err:  # shown still encrypted; the reason is logged
            undecryptable += 1
            log.warning("codec_undecryptable", operator=operator, error=str(err))
            out.append(payload)
    log.info("codec_used", operator=operator, action=action, payloads=len(out), undecryptable=undecryptable,
             namespace=request.headers.get("x-namespace"))
    return Response(json_format.MessageToJson(Payloads(payloads=out)), media_type="application/json",
                    headers=cors_headers(request, context.codec_access))
