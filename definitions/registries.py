"""The registries procedures are checked against: ``agencies.yaml`` and ``sectors.yaml``
read into a :class:`Catalog`, with the calendars the folder has. When a whole folder
is read, every code of the province-wide list must be a procedure of the folder.

A registry file is checked like a procedure (every problem as one line): its shape,
duplicate codes, and agency codes written as templates (``{field}`` belongs in
procedures; a registry lists the real agencies templates resolve to). A broken entry
is reported and left out; the other entries stay usable.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap

from definitions.calendar import available_calendars, definitions_root
from definitions.folders import AGENCIES_FILE, SECTORS_FILE
from definitions.problems import DefinitionError, Problem, _dotted, _unique
from definitions.schema import Agency, AgencyRegistry, Sector, SectorRegistry
from definitions.shape import _validate_shape
from definitions.yaml_positions import line_of
from definitions.yaml_source import Document, _plain, _read_yaml


@dataclass(frozen=True)
class Listed:
    """A code of agencies.yaml's ``province_wide_procedures``, where it is written."""

    code: str
    index: int
    line: int


@dataclass
class Catalog:
    """The registries procedures are checked against."""

    root: Path
    agencies: dict[str, Agency] = field(default_factory=dict)
    sectors: dict[str, Sector] = field(default_factory=dict)
    levels: set[str] = field(default_factory=set)
    calendars: set[str] = field(default_factory=set)
    province_wide: list[str] = field(default_factory=list)  # the Art. 14 list (agencies.yaml)
    province_wide_at: list[Listed] = field(default_factory=list)  # where each code of it is written


def load_catalog(root: Path | None = None) -> Catalog:
    catalog, problems = _read_catalog(Path(root) if root is not None else definitions_root())
    if problems:
        raise DefinitionError(problems)
    return catalog


@dataclass(frozen=True)
class _RegistryKind:
    model: type[BaseModel]
    item: type[BaseModel]
    key: str


_REGISTRIES = {
    AGENCIES_FILE: _RegistryKind(AgencyRegistry, Agency, "agencies"),
    SECTORS_FILE: _RegistryKind(SectorRegistry, Sector, "sectors"),
}


def _read_registry(path: Path) -> tuple[list[Any], list[Problem], Any]:
    """The usable entries of agencies.yaml / sectors.yaml, every problem found, and the
    document's data (for its top-level keys)."""
    kind = _REGISTRIES[path.name]
    doc = _read_yaml(path)
    if isinstance(doc, Problem):
        return [], [doc], None
    if not isinstance(doc.data, CommentedMap):
        return [], [doc.problem((), f"the file is not a mapping; expected `{kind.key}:` with a list of entries")], None
    _, problems = _validate_shape(doc, kind.model)
    entries = _valid_entries(doc.data.get(kind.key), kind.item)
    problems += _duplicate_codes(doc, kind.key)
    if kind.item is Agency:
        problems += _templated_agency_codes(doc)
        problems += _receiving_scopes(doc, {a.level for a in entries})
    return entries, sorted(_unique(problems), key=lambda p: p.line), doc.data


def _province_wide(data: Any) -> list[str]:
    """The registry's top-level Art. 14 list (its codes that are text)."""
    listed = data.get("province_wide_procedures") if isinstance(data, CommentedMap) else None
    return [code for code in listed if isinstance(code, str)] if isinstance(listed, list) else []


def _province_wide_at(data: Any) -> list[Listed]:
    listed = data.get("province_wide_procedures") if isinstance(data, CommentedMap) else None
    if not isinstance(listed, list):
        return []
    key = ("province_wide_procedures",)
    return [Listed(code, index, line_of(data, (*key, index))) for index, code in enumerate(listed)
            if isinstance(code, str)]


def _province_wide_without_procedure(agencies: Path, listed: list[Listed], declared: set[str],
                                     folder: Path) -> list[Problem]:
    """Codes of the Art. 14 list that no procedure file of the folder declares (checked
    when a whole definitions folder is read: a typo would make desks receive nothing)."""
    problems = []
    for entry in listed:
        if entry.code in declared:
            continue
        field = _dotted(("province_wide_procedures", entry.index))
        close = difflib.get_close_matches(entry.code, sorted(declared), n=3, cutoff=0.6)
        hint = f", e.g. {', '.join(close)}" if close else (" (it has none)" if not declared else "")
        message = (f"{field}: {entry.code!r} is declared by no procedure file in {folder}; expected the code "
                   f"of a procedure there{hint}")
        problems.append(Problem(str(agencies), entry.line, message))
    return problems


def _valid_entries(raw: Any, item: type[BaseModel]) -> list[Any]:
    # A broken entry is reported by the shape check; the others stay usable.
    entries = []
    for node in raw if isinstance(raw, list) else []:
        try:
            entries.append(item.model_validate(_plain(node)))
        except ValidationError:
            continue
    return entries


def _duplicate_codes(doc: Document, key: str) -> list[Problem]:
    first_seen: dict[str, int] = {}
    problems = []
    entries = doc.data.get(key)
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        code = entry.get("code") if isinstance(entry, dict) else None
        if not isinstance(code, str):
            continue
        loc = (key, index, "code")
        if code in first_seen:
            message = f"duplicate code {code!r}, already defined on line {first_seen[code]}; expected unique codes"
            problems.append(doc.problem(loc, f"{_dotted(loc)}: {message}"))
        else:
            first_seen[code] = doc.line_of(loc)
    return problems


def _templated_agency_codes(doc: Document) -> list[Problem]:
    # Templates belong in procedures; a registry lists the real agencies they resolve to.
    problems = []
    entries = doc.data.get("agencies")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        code = entry.get("code") if isinstance(entry, dict) else None
        if isinstance(code, str) and ("{" in code or "}" in code):
            loc = ("agencies", index, "code")
            problems.append(doc.problem(loc, f"{_dotted(loc)}: {code!r} has braces; expected a concrete agency code"))
    return problems


def _receiving_scopes(doc: Document, levels: set[str]) -> list[Problem]:
    """A desk's `receives.levels` are levels some agency has; `province_wide` needs the list."""
    problems = []
    listed = doc.data.get("province_wide_procedures")
    entries = doc.data.get("agencies")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        scope = entry.get("receives") if isinstance(entry, dict) else None
        if not isinstance(scope, dict):
            continue
        for position, level in enumerate(scope.get("levels") or [] if isinstance(scope.get("levels"), list) else []):
            if isinstance(level, str) and levels and level not in levels:
                loc: tuple[str | int, ...] = ("agencies", index, "receives", "levels", position)
                problems.append(doc.problem(loc, f"{_dotted(loc)}: unknown level {level!r}; expected one of "
                                                 f"{', '.join(sorted(levels))}"))
        if scope.get("province_wide") is True and not listed:
            loc = ("agencies", index, "receives", "province_wide")
            problems.append(doc.problem(loc, f"{_dotted(loc)}: true, but the registry has no "
                                             "province_wide_procedures; expected the province's list "
                                             "(Decree 118/2025 Art. 14) at the top of the file"))
    return problems


def _read_catalog(root: Path) -> tuple[Catalog, list[Problem]]:
    agencies, problems, agencies_data = _read_registry(root / AGENCIES_FILE)
    sectors, sector_problems, _ = _read_registry(root / SECTORS_FILE)
    catalog = Catalog(
        root=root,
        agencies={a.code: a for a in agencies},
        province_wide=_province_wide(agencies_data),
        province_wide_at=_province_wide_at(agencies_data),
        sectors={s.code: s for s in sectors},
        levels={a.level for a in agencies},
        calendars=set(available_calendars(root)),
    )
    return catalog, problems + sector_problems
