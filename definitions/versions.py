"""Which version of a procedure a reference means: exactly ``CODE@VERSION``, or the
newest version in effect on a day (no ``effective_from``, or one not after it).

One rule for every place that picks a version: the files of a definitions folder
(:func:`definitions.loader.find_procedure`) and the deployed registry
(``store.registry.effective_definition``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Protocol, TypeVar


class Dated(Protocol):
    """A procedure version: a :class:`~definitions.schema.Procedure` or a deployed row."""

    @property
    def version(self) -> int: ...

    @property
    def effective_from(self) -> date | None: ...


V = TypeVar("V", bound=Dated)


def newest_in_effect(versions: Iterable[V], today: date) -> V | None:
    """The newest of ``versions`` already in effect ``today``, or None."""
    in_effect = [v for v in versions if v.effective_from is None or v.effective_from <= today]
    return max(in_effect, key=lambda v: v.version, default=None)


def choose_version(code: str, versions: Sequence[V], version: int | str | None, today: date,
                   which: str = "") -> V:
    """``version`` of ``code`` exactly, or (None) the newest in effect ``today``.
    ``versions`` are those of ``code``; ``which`` words them in refusals (``"deployed "``).
    Raises `LookupError` saying which versions there are."""
    oldest_first = sorted(versions, key=lambda v: v.version)
    if version is not None:
        for candidate in oldest_first:
            if str(candidate.version) == str(version):
                return candidate
        known = ", ".join(str(v.version) for v in oldest_first)
        raise LookupError(f"procedure {code} has no {which}version {version}: {which or 'known '}versions are {known}")
    current = newest_in_effect(oldest_first, today)
    if current is None:
        upcoming = ", ".join(f"v{v.version} from {v.effective_from}" for v in oldest_first)
        raise LookupError(f"procedure {code} has no {which}version in effect on {today} ({upcoming})")
    return current
