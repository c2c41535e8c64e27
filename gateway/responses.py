"""Which problems each endpoint documents (OpenAPI `responses`), built from the catalogue."""

from __future__ import annotations

from typing import Any

from gateway.problems import TYPES, Problem

AGENCY = (401, 422, 503)  # every /v1 call: a token, a well-formed request, a reachable store
POST = (400, 409, 503, 504)  # idempotency and the engine
READ_DOSSIER = (404, 503, 504)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these statuses, each describing its problem types
    (app.py turns their media type into application/problem+json)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        types = [t for t in TYPES.values() if t.status == status]
        described = "; ".join(f"`{t.uri}` {t.title}" for t in types) or "see `type`"
        documented[status] = {"model": Problem, "description": described}
    return documented
