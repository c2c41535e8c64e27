"""How answers show instants, one rule for both front ends:

* every JSON answer (the gateway's bodies, the CLI's `--json`) gives instants in UTC,
  written with a `Z` (`2026-12-03T10:00:00Z`);
* human CLI output shows Vietnam time (`2026-12-03 17:00`), the clock deadlines are read on.

The rule is applied at the edges, when an answer is built: the workflow's payloads
keep the offsets they were given (a `--received-at` with `+07:00`, a due computed on
the calendar's time zone), so recorded histories do not change. `UtcInstant` is the
field type of the answer models defined here and in the front ends; `in_utc` copies a
payload (e.g. the `state` query's `DossierState`) with every instant in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, cast

from pydantic import AfterValidator, AwareDatetime, BaseModel

T = TypeVar("T")


def utc(at: datetime) -> datetime:
    """The same instant in UTC (pydantic writes it with a `Z`)."""
    return at.astimezone(UTC)


UtcInstant = Annotated[AwareDatetime, AfterValidator(utc)]


def in_utc(value: T) -> T:
    """A copy of `value` (a pydantic model, or lists/dicts of them) with every aware
    instant in UTC; nothing else changes."""
    return cast(T, _convert(value))


def _convert(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value) if value.tzinfo is not None else value
    if isinstance(value, BaseModel):
        return value.model_copy(update={name: _convert(getattr(value, name)) for name in type(value).model_fields})
    if isinstance(value, list):
        return [_convert(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_convert(item) for item in value)
    if isinstance(value, dict):
        return {key: _convert(item) for key, item in value.items()}
    return value
