"""How a problem in a definitions file is reported: one ``PATH:LINE: message`` line.

:class:`Problem` is one such line and :class:`DefinitionError` carries every problem
found, so a broken file can be fixed in one pass; the helpers word where in a file a
problem is (``steps[2].parallel[0].agency``) and keep each line once.

Names with a leading underscore here and in the other loader modules
(:mod:`definitions.yaml_source`, :mod:`definitions.shape`, :mod:`definitions.registries`,
:mod:`definitions.procedure_checks`, :mod:`definitions.references`,
:mod:`definitions.deadlines`) are shared inside ``definitions`` only; the public entry
points are in :mod:`definitions.loader`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class DefinitionError(Exception):
    """Definitions that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _dotted(loc: Loc) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return text or "(top level)"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
