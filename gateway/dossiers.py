"""Dossiers as the gateway sees them: the dossier client's answers, and its refusals
as problem documents (services/dossiers.py does the talking to Temporal)."""

from __future__ import annotations

from typing import Any

from gateway.context import GatewayContext
from gateway.problems import problem_of
from services.dossiers import DossierUpdate, Found, Refusal, implausible, plausible_id, unknown_dossier
from workflows.payloads import DeskAction, DossierInput, DossierState

__all__ = ["Found", "at_desk", "change", "implausible", "load", "plausible_id", "start", "visible"]


async def load(context: GatewayContext, dossier_id: str) -> Found:
    """The workflow's own state; the projection when Temporal no longer knows it."""
    try:
        return await context.dossiers.load(dossier_id)
    except Refusal as refusal:
        raise problem_of(refusal) from refusal


async def visible(context: GatewayContext, dossier_id: str, agency: str) -> Found:
    """The dossier, for an agency with a part in it; for any other, the unknown-dossier
    problem of an id that does not exist (same status, type and detail)."""
    found = await load(context, dossier_id)
    if not found.involves(agency):
        raise problem_of(unknown_dossier(dossier_id))
    return found


async def change(context: GatewayContext, dossier_id: str, update: DossierUpdate,
                 arg: Any, update_id: str, caller: str) -> DossierState:
    """Send an Update as `caller`, its id the caller's idempotency key (so it applies
    once); a dossier the caller has no part in is unknown and nothing is sent."""
    try:
        return await context.dossiers.change(dossier_id, update, arg, update_id, caller=caller)
    except Refusal as refusal:
        raise problem_of(refusal) from refusal


async def at_desk(context: GatewayContext, dossier_id: str, update: DossierUpdate, action: DeskAction,
                  update_id: str, caller: str, *, receiving: bool) -> DossierState:
    """Receipt or refusal by `caller`'s desk: checked against the registry (one-stop desk,
    and to receive, its receiving scope) before the Update; a dossier the caller has no
    part in is unknown."""
    try:
        return await context.dossiers.at_desk(dossier_id, update, action, update_id, caller=caller,
                                              receiving=receiving)
    except Refusal as refusal:
        raise problem_of(refusal) from refusal


async def start(context: GatewayContext, dossier: DossierInput, request: str) -> DossierState | None:
    """Start the dossier; a retry of the same request reuses its start."""
    try:
        return await context.dossiers.start(dossier, request=request)
    except Refusal as refusal:
        raise problem_of(refusal) from refusal
