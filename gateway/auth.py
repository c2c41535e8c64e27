"""The calling agency, from `Authorization: Bearer <token>` (one agency per token), and
the token's role: an agency token acts for its agency, a monitoring token reads reports.

The request guard (gateway/guard.py) authenticates every /v1 request before its body
is read and leaves the caller in the request's state; the dependency below returns it
(and authenticates itself when the app runs without the guard)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.context import GatewayContext, get_context
from gateway.problems import GatewayProblem
from services import tokens

# auto_error=False: a missing header is our 401 problem, not FastAPI's plain 403.
bearer = HTTPBearer(auto_error=False, scheme_name="agencyToken",
                    description="An agency's token from `lienthong agencies issue-token CODE` (a monitoring "
                                "token, `--role monitoring`, for /v1/reports).")
CALLER = "caller"  # the key of the authenticated caller in the ASGI scope's state


async def authenticate(context: GatewayContext, authorization: str | None) -> tokens.Caller:
    """The agency holding the bearer token of this `Authorization` value, else a 401 problem."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise GatewayProblem("unauthorized", "no bearer token: send Authorization: Bearer <token>")
    caller = await context.read(lambda session: tokens.authenticate(session, token))
    if caller is None:
        why = await context.read(lambda session: tokens.refusal(session, token))
        raise GatewayProblem("unauthorized", why)
    return caller


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],  # documents the scheme
    context: Annotated[GatewayContext, Depends(get_context)],
) -> tokens.Caller:
    """The token's holder, whatever its role."""
    known = request.scope.get("state", {}).get(CALLER)
    if isinstance(known, tokens.Caller):
        return known
    return await authenticate(context, request.headers.get("authorization"))


async def current_agency(caller: Annotated[tokens.Caller, Depends(current_caller)]) -> tokens.Caller:
    """An agency token: it acts for its agency (a monitoring token acts for nobody)."""
    if caller.role != tokens.AGENCY:
        raise GatewayProblem("wrong-role", f"token {caller.token_id} is a {caller.role} token: it reads reports "
                                           "(/v1/reports) and acts for no agency; use the agency's own token")
    return caller


async def current_monitor(caller: Annotated[tokens.Caller, Depends(current_caller)]) -> tokens.Caller:
    """A monitoring token: it reads the province's reports."""
    if caller.role != tokens.MONITORING:
        raise GatewayProblem("wrong-role", f"token {caller.token_id} of {caller.agency} is an agency token: "
                                           "reports are read with a monitoring token (`lienthong agencies "
                                           "issue-token CODE --role monitoring`)")
    return caller


Caller = Annotated[tokens.Caller, Depends(current_caller)]
Agency = Annotated[tokens.Caller, Depends(current_agency)]
Monitor = Annotated[tokens.Caller, Depends(current_monitor)]
