"""Custom search attributes, so operators can filter dossiers in the Temporal UI
(e.g. `LienthongSector = "G13-TN01" AND LienthongStatus = "processing"`)."""

from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

PROCEDURE = SearchAttributeKey.for_keyword("LienthongProcedure")
SECTOR = SearchAttributeKey.for_keyword("LienthongSector")
STATUS = SearchAttributeKey.for_keyword("LienthongStatus")
DUE_AT = SearchAttributeKey.for_datetime("LienthongDueAt")

# Which agency holds a dossier is its inbox (`lienthong inbox`, GET /v1/inbox), not a
# search attribute: keeping one current cost a visibility write per hand-over, which
# measured as a quarter of the Temporal server's CPU per dossier (docs/performance.md).
ALL: list[SearchAttributeKey[Any]] = [PROCEDURE, SECTOR, STATUS, DUE_AT]


def at_start(procedure_code: str, procedure_version: int, sector: str,
             due_at: datetime | None = None) -> TypedSearchAttributes:
    """What a dossier is filed under from its first moment; the workflow upserts only
    what changes later (its status, its due after an extension or a supplement)."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(PROCEDURE, f"{procedure_code}@{procedure_version}"),
        SearchAttributePair(SECTOR, sector),
        SearchAttributePair(STATUS, "processing"),
    ]
    if due_at is not None:
        pairs.append(SearchAttributePair(DUE_AT, due_at))
    return TypedSearchAttributes(pairs)
