"""Dossiers as the gateway sees them: the dossier client's answers, and its refusals
as problem documents (services/dossiers.py does the talking to Temporal)."""

from __future__ import annotations

from typing import Any

from gateway.context import GatewayContext
from gateway.problems import problem_of
from services.dossiers import DossierUpdate, Found, Refusal, implausible, plausible_id
from workflows.payloads import DossierInput, DossierState

__all__ = ["Found", "change", "implausible", "load", "plausible_id", "start"]


async def load(context: GatewayContext, dossier_id: str) -> Found:
    """The workflow's own state; the projection when Temporal no longer knows it."""
    try:
        return await context.dossiers.load(dossier_id)
    except Refusal as refusal:
        raise problem_of(refusal) from refusal


async def change(context: GatewayContext, dossier_id: str, update: DossierUpdate,
                 arg: Any, update_id: str) -> DossierState:
    """Send an Update; its id is the caller's idempotency key, so it applies once."""
    try:
        return await context.dossiers.change(dossier_id, update, arg, update_id)
    except Refusal as refusal:
        raise problem_of(refusal) from refusal


async def start(context: GatewayContext, dossier: DossierInput, request: str) -> DossierState | None:
    """Start the dossier; a retry of the same request reuses its start."""
    try:
        return await context.dossiers.start(dossier, request=request)
    except Refusal as refusal:
        raise problem_of(refusal) from refusal
