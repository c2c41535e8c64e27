"""The calling agency, from `Authorization: Bearer <token>` (one agency per token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.context import GatewayContext, get_context
from gateway.problems import GatewayProblem
from services import tokens

# auto_error=False: a missing header is our 401 problem, not FastAPI's plain 403.
bearer = HTTPBearer(auto_error=False, scheme_name="agencyToken",
                    description="An agency's token from `lienthong agencies issue-token CODE`.")


async def current_agency(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    context: Annotated[GatewayContext, Depends(get_context)],
) -> tokens.Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise GatewayProblem("unauthorized", "no bearer token: send Authorization: Bearer <token>")
    token = credentials.credentials
    caller = await context.read(lambda session: tokens.authenticate(session, token))
    if caller is None:
        why = await context.read(lambda session: tokens.refusal(session, token))
        raise GatewayProblem("unauthorized", why)
    return caller


Agency = Annotated[tokens.Caller, Depends(current_agency)]
