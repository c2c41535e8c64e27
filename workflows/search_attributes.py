"""Custom search attributes, so operators can filter dossiers in the Temporal UI
(e.g. `LienthongSector = "G13-TN01" AND LienthongStatus = "processing"`)."""

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

PROCEDURE = SearchAttributeKey.for_keyword("LienthongProcedure")
SECTOR = SearchAttributeKey.for_keyword("LienthongSector")
STATUS = SearchAttributeKey.for_keyword("LienthongStatus")
CURRENT_AGENCIES = SearchAttributeKey.for_keyword_list("LienthongAgencies")
DUE_AT = SearchAttributeKey.for_datetime("LienthongDueAt")

ALL = [PROCEDURE, SECTOR, STATUS, CURRENT_AGENCIES, DUE_AT]


def at_start(procedure_code: str, procedure_version: int, sector: str) -> TypedSearchAttributes:
    """What a dossier is filed under from its first moment (the workflow upserts only
    what changes later: status, agencies holding it, due)."""
    return TypedSearchAttributes([
        SearchAttributePair(PROCEDURE, f"{procedure_code}@{procedure_version}"),
        SearchAttributePair(SECTOR, sector),
        SearchAttributePair(STATUS, "processing"),
    ])
