"""Read a definitions folder: procedure files, agency and sector registries.

Everything an operator writes is checked before it can be used, and every problem
is reported as one ``PATH:LINE: field: what was wrong; expected what`` line, so a
broken file can be fixed in one pass.  Checks come in two layers:

* shape — the pydantic models of :mod:`definitions.schema` (types, required and
  unknown keys, durations, ``when`` operators, empty lists);
* meaning — references to the registries (sector, level, calendar, agencies),
  duplicate step ids, step deadlines that cannot fit in the total deadline, and
  the bounds of :mod:`definitions.limits` (how many steps, how deeply nested).

Before either, the YAML itself is bounded: a file nesting far deeper than a
procedure can, or whose aliases (``*name``) expand to an enormous tree, is refused
from the parser's events, without building the tree.

The meaning checks read the raw YAML tree, so they still run when the shape is
wrong elsewhere in the file.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    ScalarEvent,
)
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from definitions.calendar import (
    CalendarFileError,
    UnknownCalendarError,
    available_calendars,
    definitions_root,
    load_calendar,
)
from definitions.durations import EXPECTED as DURATION_EXPECTED
from definitions.durations import is_duration, parse_duration
from definitions.limits import MAX_EXTENSIONS_PER_STEP, MAX_NESTING, MAX_STEPS, MAX_SUPPLEMENT_REQUESTS
from definitions.schema import (
    OPERATORS,
    Agency,
    AgencyRegistry,
    Condition,
    Parallel,
    Procedure,
    ProcedureSnapshot,
    Sector,
    SectorRegistry,
    Sequence,
    Step,
    template_matches,
)
from definitions.yaml_positions import line_of

__all__ = [
    "Catalog",
    "DefinitionError",
    "Problem",
    "find_procedure",
    "load_catalog",
    "load_procedure",
    "load_procedures",
    "validate_paths",
]

AGENCIES_FILE = "agencies.yaml"
SECTORS_FILE = "sectors.yaml"
PROCEDURES_DIR = "procedures"
DEFAULT_CALENDAR = Procedure.model_fields["calendar"].default
# What the reader accepts before building a tree (the tree, pydantic and the checks
# recurse). Far above what MAX_NESTING and MAX_STEPS allow: a step at the deepest
# allowed nesting sits 2 * MAX_NESTING + 3 YAML levels down, its `when` one deeper.
YAML_MAX_DEPTH = 2 * MAX_NESTING + 24
YAML_MAX_VALUES = 1000 * MAX_STEPS  # every key, value and item, aliases expanded

Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------- public types


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


@dataclass
class Catalog:
    """The registries procedures are checked against."""

    root: Path
    agencies: dict[str, Agency] = field(default_factory=dict)
    sectors: dict[str, Sector] = field(default_factory=dict)
    levels: set[str] = field(default_factory=set)
    calendars: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- public functions


def load_catalog(root: Path | None = None) -> Catalog:
    catalog, problems = _read_catalog(Path(root) if root is not None else definitions_root())
    if problems:
        raise DefinitionError(problems)
    return catalog


def load_procedure(path: Path, catalog: Catalog) -> ProcedureSnapshot:
    result = _check_procedure(Path(path), catalog)
    if result.snapshot is None:
        raise DefinitionError(result.problems)
    return result.snapshot


def load_procedures(catalog: Catalog) -> list[ProcedureSnapshot]:
    results = [_check_procedure(p, catalog) for p in _procedure_files(catalog.root / PROCEDURES_DIR)]
    problems = [p for r in results for p in r.problems] + _duplicate_refs(results)
    if problems:
        raise DefinitionError(problems)
    return [r.snapshot for r in results if r.snapshot is not None]


def find_procedure(ref: str, catalog: Catalog, today: date) -> ProcedureSnapshot:
    """A procedure by file path, ``CODE`` (the version in effect ``today``) or ``CODE@VERSION``."""
    if _looks_like_path(ref):
        path = Path(ref)
        if not path.is_file():
            raise LookupError(f"no procedure file {ref}")
        return load_procedure(path, catalog)
    code, _, version_text = ref.partition("@")
    snapshots = load_procedures(catalog)
    versions = sorted(
        (s for s in snapshots if s.procedure.code == code),
        key=lambda s: s.procedure.version,
        reverse=True,
    )
    if not versions:
        known = ", ".join(sorted({s.procedure.code for s in snapshots})) or "(none)"
        raise LookupError(f"unknown procedure {code}: known codes are {known}")
    if version_text:
        return _exact_version(code, version_text, versions)
    return _version_in_effect(code, versions, today)


def validate_paths(paths: list[Path], root: Path | None = None) -> tuple[int, list[Problem]]:
    """Check procedure files, folders and registries; returns (files checked, problems)."""
    plan = _plan(paths, root)
    catalog, problems = _read_catalog(plan.catalog_root)
    checked: set[Path] = set()
    for registry in plan.registries:
        checked.add(registry)
        if registry.parent.resolve() != plan.catalog_root.resolve():
            problems += _read_registry(registry)[1]  # the catalog's own were read above
    results = []
    for path in plan.procedures:
        checked.add(path)
        results.append(_check_procedure(path, catalog))
    problems += [p for r in results for p in r.problems] + _duplicate_refs(results)
    return len(checked), plan.missing + _unique(problems)


# --------------------------------------------------------------------------- yaml with positions


@dataclass
class _Document:
    """A parsed YAML file that remembers where each node came from."""

    path: Path
    content: bytes
    data: Any

    def line_of(self, loc: Loc) -> int:
        return line_of(self.data, loc)

    def node(self, loc: Loc) -> Any:
        node = self.data
        for part in loc:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                return None
        return node

    def source_text(self, loc: Loc) -> str | None:
        """The scalar exactly as written (``1.0120`` stays ``1.0120``, unlike the float)."""
        parent = self.node(loc[:-1])
        if not loc or not isinstance(parent, CommentedMap) or loc[-1] not in parent:
            return None
        line, column = parent.lc.value(loc[-1])
        lines = self.content.decode("utf-8", errors="replace").splitlines()
        if line >= len(lines):
            return None
        return lines[line][column:].split(" #")[0].strip() or None

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(str(self.path), self.line_of(loc), message)


def _read_yaml(path: Path) -> _Document | Problem:
    try:
        content = path.read_bytes()
    except OSError as exc:
        return Problem(str(path), 1, f"cannot read the file: {exc.strerror or exc}")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"the file is not UTF-8 text (byte 0x{content[exc.start]:02x} cannot be decoded); save it as UTF-8"
        return Problem(str(path), _line_at_byte(content, exc.start), message)
    if too_big := _yaml_too_big(path, text):
        return too_big
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return Problem(str(path), line, f"YAML syntax error: {_yaml_reason(exc)}")
    except YAMLError as exc:
        return Problem(str(path), 1, f"YAML syntax error: {_one_line(str(exc))}")
    except ValueError as exc:  # ruamel raises a bare ValueError for a date that is none (2025-13-01)
        return _bad_scalar(path, text, exc)
    return _Document(path, content, data)


def _yaml_too_big(path: Path, text: str) -> Problem | None:
    """A file nesting deeper than YAML_MAX_DEPTH or expanding to more than
    YAML_MAX_VALUES values, found from the parser's events (which do not recurse).
    Syntax errors are left to the loader, which reports them with their reason."""
    open_sizes: list[int] = []  # values inside each open mapping / list so far
    anchored: dict[str, int] = {}  # what an alias to each anchor expands to
    anchors: list[str | None] = []
    total = 0
    try:
        for event in YAML(typ="rt").parse(text):
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            if isinstance(event, CollectionStartEvent):
                open_sizes.append(1)
                anchors.append(event.anchor)
                if len(open_sizes) > YAML_MAX_DEPTH:
                    return Problem(str(path), line, (
                        f"the YAML nests more than {YAML_MAX_DEPTH} levels deep here; a procedure nests parallel: "
                        f"and sequence: at most {MAX_NESTING} deep (MAX_NESTING); expected a flatter procedure"))
                continue
            if isinstance(event, CollectionEndEvent):
                size, anchor = open_sizes.pop(), anchors.pop()
            elif isinstance(event, AliasEvent):
                size, anchor = anchored.get(event.anchor, 1), None
            elif isinstance(event, ScalarEvent):
                size, anchor = 1, event.anchor
            else:
                continue
            if anchor:
                anchored[anchor] = size
            if open_sizes:
                open_sizes[-1] += size
            total = sum(open_sizes) if open_sizes else total + size
            if total > YAML_MAX_VALUES:
                return Problem(str(path), line, (
                    f"the file expands to more than {YAML_MAX_VALUES} values here (aliases *name repeat what &name "
                    f"marks); a procedure has at most {MAX_STEPS} steps (MAX_STEPS); expected a smaller procedure"))
    except (YAMLError, ValueError):
        return None
    return None


def _bad_scalar(path: Path, text: str, error: ValueError) -> Problem:
    """The scalar YAML resolved as a date or time but could not build, with its line and key."""
    try:
        root = YAML(typ="rt").compose(text)
    except (YAMLError, ValueError):
        root = None
    pending: list[tuple[Any, Loc]] = [(root, ())] if root is not None else []
    while pending:
        node, loc = pending.pop(0)
        if isinstance(node, MappingNode):
            pending += [(value, (*loc, str(key.value))) for key, value in node.value]
        elif isinstance(node, SequenceNode):
            pending += [(item, (*loc, index)) for index, item in enumerate(node.value)]
        elif isinstance(node, ScalarNode) and str(node.tag).endswith(":timestamp"):
            try:
                YAML(typ="rt").load(node.value)
            except ValueError as exc:
                message = f"{_dotted(loc)}: {node.value!r} is not a date ({exc}); expected a date like 2025-07-01"
                return Problem(str(path), node.start_mark.line + 1, message)
    return Problem(str(path), 1, f"YAML value error: {_one_line(str(error))}")


def _yaml_reason(exc: MarkedYAMLError) -> str:
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    started, at = exc.context_mark, exc.problem_mark
    if context and started is not None and at is not None and started.line != at.line:
        context += f" started on line {started.line + 1}"  # e.g. where an unclosed [ opened
    reason = f"{problem} ({context})" if problem and context else problem or context or str(exc)
    if "<block end>" in problem or "mapping values are not allowed" in problem:
        reason += "; check the indentation of this line and the lines above it (spaces only, siblings lined up)"
    one_line = started is None or at is None or started.line == at.line
    if "flow mapping" in context and "'{'" in problem and one_line:
        # `{id: a, agency: bpmc-xa-{commune}}`: a template inside a flow mapping.
        reason += '; inside {...} quote values with braces, e.g. agency: "bpmc-xa-{commune}"'
    return _one_line(reason)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _line_at_byte(content: bytes, offset: int) -> int:
    return content.count(b"\n", 0, offset) + 1


def _plain(node: Any) -> Any:
    """ruamel's round-trip types as plain Python values, for pydantic."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    if isinstance(node, datetime):
        return datetime(*node.timetuple()[:6], node.microsecond, node.tzinfo)
    return node


# --------------------------------------------------------------------------- shape: pydantic errors as lines

# What each key holds, for "missing" and "bad type" messages.
_EXPECTED: dict[str, str] = {
    "code": 'a code as text; quote numbers, e.g. code: "1.012756"',
    "name": "a name (text)",
    "sector": f"a sector code from {SECTORS_FILE}",
    "level": f"a level used in {AGENCIES_FILE} (e.g. tinh, xa)",
    "version": "a whole number >= 1, e.g. version: 1",
    "effective_from": "a date like 2025-07-01",
    "calendar": "a calendar name, e.g. vn-gov",
    "deadline": DURATION_EXPECTED,
    "supplement_deadline": DURATION_EXPECTED,
    "on_supplement": "pause or restart",
    "max_extensions_per_step": f"a whole number from 0 to {MAX_EXTENSIONS_PER_STEP} (MAX_EXTENSIONS_PER_STEP)",
    "max_supplement_requests": f"a whole number from 1 to {MAX_SUPPLEMENT_REQUESTS} (MAX_SUPPLEMENT_REQUESTS)",
    "steps": "a list of steps",
    "parallel": "a list of branches (a step or a sequence)",
    "sequence": "a list of steps",
    "id": "a step id like tiep-nhan (lowercase letters, digits, - and _)",
    "agency": f"an agency code from {AGENCIES_FILE}",
    "escalate_to": f"an agency code from {AGENCIES_FILE}",
    "when": f"a condition like {{field: area_m2, gt: 500}} with one of {', '.join(OPERATORS)}",
    "field": "the name of a field of the dossier's data",
    "in": "a list of values, e.g. in: [a, b]",
    "webhook": "a URL",
    "receives_dossiers": "true or false",
    "agencies": "a list of agencies",
    "sectors": "a list of sectors",
}
_DURATION_KEYS = {"deadline", "supplement_deadline"}
# Tags pydantic puts into `loc` for the members of a discriminated union.
_UNION_TAGS = {"step", "parallel", "sequence"}
_NODE_LISTS = {"steps", "parallel", "sequence"}


def _validate_shape(doc: _Document, model: type[BaseModel]) -> tuple[Any, list[Problem]]:
    try:
        return model.model_validate(_plain(doc.data)), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _yaml_loc(error["loc"])
            problems.append(doc.problem(loc, _describe(doc, model, loc, error)))
        return None, problems


def _yaml_loc(loc: Iterable[str | int]) -> Loc:
    """Pydantic's error path without union tags: the path into the YAML tree."""
    loc = tuple(loc)
    return tuple(
        part
        for i, part in enumerate(loc)
        # A tag directly follows the index of an item in steps / parallel / sequence.
        if not (part in _UNION_TAGS and i >= 2 and isinstance(loc[i - 1], int) and loc[i - 2] in _NODE_LISTS)
    )


def _dotted(loc: Loc) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return text or "(top level)"


def _describe(doc: _Document, model: type[BaseModel], loc: Loc, error: Any) -> str:
    kind: str = error["type"]
    value = error.get("input")
    key = next((p for p in reversed(loc) if isinstance(p, str)), "")
    expected = _EXPECTED.get(key, "")
    where = _dotted(loc)
    if kind == "missing":
        return f"{where}: required key missing; expected {expected or 'a value'}"
    if kind == "extra_forbidden":
        return _describe_unknown_key(doc, model, loc)
    if value is None and kind not in ("value_error", "too_short"):
        return f"{where}: is empty; expected {expected or 'a value'}"
    if key in _DURATION_KEYS and kind in ("string_type", "string_pattern_mismatch"):
        return f"{where}: {_shown(value)} is not a duration; expected {DURATION_EXPECTED}"
    if kind.startswith(("date_", "datetime_")) and (written := doc.source_text(loc)):
        return f"{where}: {_shown(written)} is not a date; expected a date like 2025-07-01"
    if key == "code" and loc == ("code",) and isinstance(value, (int, float)):
        written = doc.source_text(loc) or str(value)
        return f'{where}: {written} is read as a number; procedure codes are text, quote it: code: "{written}"'
    in_parallel = len(loc) >= 2 and loc[-2] == "parallel" and isinstance(loc[-1], int)
    return f"{where}: {_describe_value(kind, value, key, expected, error, in_parallel)}"


def _describe_value(kind: str, value: Any, key: str, expected: str, error: Any, in_parallel: bool = False) -> str:
    shown = _shown(value)
    if kind == "string_type":
        hint = "; quote it" if isinstance(value, (int, float)) else ""
        return f"expected text, got {shown}{hint}"
    if kind == "string_pattern_mismatch" and key == "id":
        return f"{shown} is not a valid step id; expected lowercase letters, digits, - and _ (e.g. tiep-nhan)"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{shown} is not a whole number; expected {expected or 'a whole number'}"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not a number; expected a number"
    if kind.startswith(("greater_than", "less_than")):
        return f"{shown} is out of range; expected {expected or error['msg'].lower()}"
    if kind in ("too_short", "string_too_short"):
        return f"must not be empty; expected {expected or 'at least one item'}"
    if kind == "literal_error":
        return f"{shown} is not allowed; expected {error['ctx']['expected']}"
    if kind.startswith(("date_", "datetime_")):
        return f"{shown} is not a date; expected a date like 2025-07-01"
    if kind.startswith("bool_"):
        return f"{shown} is not true or false; expected true or false"
    if kind in ("union_tag_not_found", "union_tag_invalid") and in_parallel:
        got = "a parallel: (put it in a sequence: to nest it)" if kind == "union_tag_invalid" else shown
        return f"a branch of a parallel is a step (id, agency, deadline) or a sequence:, got {got}"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        return f"expected a step (id, agency, deadline), a parallel: or a sequence:, got {shown}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value), got {shown}"
    if kind == "list_type":
        return f"expected {expected or 'a list'}, got {shown}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{message}; expected {expected}" if kind != "value_error" and expected else message


def _describe_unknown_key(doc: _Document, model: type[BaseModel], loc: Loc) -> str:
    parent = _model_at(doc, model, loc[:-1])
    key = loc[-1]
    if parent is Condition:
        return f"{_dotted(loc[:-1])}: unknown `when` operator {key!r}; expected one of {', '.join(OPERATORS)}"
    known = [f.alias or name for name, f in parent.model_fields.items()] if parent else []
    expected = f"; expected one of {', '.join(known)}" if known else ""
    return f"{_dotted(loc)}: unknown key {key!r}{expected}"


def _model_at(doc: _Document, root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """Which model the mapping at ``loc`` is read as (for listing its keys)."""
    if not loc:
        return root
    if loc[-1] == "when":
        return Condition
    if len(loc) >= 2 and isinstance(loc[-1], int):
        owner = loc[-2]
        if owner == "agencies":
            return Agency
        if owner == "sectors":
            return Sector
        if owner in _NODE_LISTS:
            return _node_model(doc.node(loc))
    return None


def _node_model(node: Any) -> type[BaseModel]:
    if isinstance(node, dict) and "parallel" in node:
        return Parallel
    if isinstance(node, dict) and "sequence" in node:
        return Sequence
    return Step


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- meaning: procedure checks


@dataclass
class _Result:
    path: Path
    snapshot: ProcedureSnapshot | None
    problems: list[Problem]
    doc: _Document | None = None


def _check_procedure(path: Path, catalog: Catalog) -> _Result:
    doc = _read_yaml(path)
    if isinstance(doc, Problem):
        return _Result(path, None, [doc])
    if not isinstance(doc.data, CommentedMap):
        what = "empty" if doc.data is None else "not a mapping"
        message = f"the file is {what}; expected a procedure (code, name, sector, level, version, deadline, steps)"
        return _Result(path, None, [doc.problem((), message)], doc)
    procedure, problems = _validate_shape(doc, Procedure)
    problems += _duplicate_step_ids(doc)
    problems += _too_many_steps(doc)
    problems += _too_deeply_nested(doc)
    problems += _unknown_references(doc, catalog)
    problems += _deadline_overruns(doc, catalog)
    problems = sorted(_unique(problems), key=lambda p: p.line)
    if problems:
        return _Result(path, None, problems, doc)
    snapshot = ProcedureSnapshot(
        procedure=procedure,
        content_hash=hashlib.sha256(doc.content).hexdigest(),
        source=str(path),
    )
    return _Result(path, snapshot, [], doc)


def _raw_steps(nodes: Any, loc: Loc) -> Iterator[tuple[Loc, CommentedMap]]:
    """Every step mapping in the raw tree with its path, whatever else is malformed."""
    if not isinstance(nodes, list):
        return
    for index, node in enumerate(nodes):
        here = (*loc, index)
        if not isinstance(node, dict):
            continue
        if "parallel" in node:
            yield from _raw_steps(node["parallel"], (*here, "parallel"))
        elif "sequence" in node:
            yield from _raw_steps(node["sequence"], (*here, "sequence"))
        else:
            yield here, node


def _duplicate_step_ids(doc: _Document) -> list[Problem]:
    first_seen: dict[str, Loc] = {}
    problems = []
    for loc, step in _raw_steps(doc.data.get("steps"), ("steps",)):
        step_id = step.get("id")
        if not isinstance(step_id, str):
            continue
        if step_id in first_seen:
            first = first_seen[step_id]
            problems.append(
                doc.problem(
                    (*loc, "id"),
                    f"{_dotted((*loc, 'id'))}: duplicate step id {step_id!r}, already used by "
                    f"{_dotted(first)} on line {doc.line_of(first)}; expected ids unique within the procedure",
                )
            )
        else:
            first_seen[step_id] = loc
    return problems


def _too_many_steps(doc: _Document) -> list[Problem]:
    """At most MAX_STEPS steps, every branch of every parallel counted (a `when` step too)."""
    steps = [loc for loc, _ in _raw_steps(doc.data.get("steps"), ("steps",))]
    if len(steps) <= MAX_STEPS:
        return []
    first = steps[MAX_STEPS]
    message = (f"steps: {len(steps)} steps (every branch counted), more than {MAX_STEPS} (MAX_STEPS); step "
               f"{MAX_STEPS + 1} is {_dotted(first)} on line {doc.line_of(first)}; expected at most {MAX_STEPS} "
               "steps: split the procedure")
    return [doc.problem(("steps",), message)]


def _too_deeply_nested(doc: _Document) -> list[Problem]:
    """parallel: and sequence: inside one another at most MAX_NESTING deep; reported
    on each outermost block that goes deeper."""
    problems = []
    for loc, depth in _raw_blocks(doc.data.get("steps"), ("steps",), 1):
        if depth != MAX_NESTING + 1:
            continue
        deepest = max((d for _, d in _raw_blocks(doc.node(loc), loc, depth + 1)), default=depth)
        message = (f"{_dotted(loc)}: nested {deepest} deep here (parallel: and sequence: inside one another), "
                   f"more than {MAX_NESTING} (MAX_NESTING); expected at most {MAX_NESTING} levels: flatten the steps")
        problems.append(doc.problem(loc, message))
    return problems


def _raw_blocks(nodes: Any, loc: Loc, depth: int) -> Iterator[tuple[Loc, int]]:
    """Every parallel: / sequence: block in the raw tree: the path to its key, and how
    many blocks (itself included) it is inside."""
    if not isinstance(nodes, list):
        return
    for index, node in enumerate(nodes):
        if not isinstance(node, dict):
            continue
        key = "parallel" if "parallel" in node else "sequence" if "sequence" in node else None
        if key is not None:
            here = (*loc, index, key)
            yield here, depth
            yield from _raw_blocks(node[key], here, depth + 1)


def _unknown_references(doc: _Document, catalog: Catalog) -> list[Problem]:
    data = doc.data
    problems = []
    sector = data.get("sector")
    if isinstance(sector, str) and sector and sector not in catalog.sectors:
        expected = _choices(sector, catalog.sectors, SECTORS_FILE)
        problems.append(doc.problem(("sector",), f"sector: unknown sector {sector!r}; expected {expected}"))
    level = data.get("level")
    if isinstance(level, str) and level and level not in catalog.levels:
        known = ", ".join(sorted(catalog.levels)) or "(none)"
        message = f"level: unknown level {level!r}; expected one of the levels used in {AGENCIES_FILE}: {known}"
        problems.append(doc.problem(("level",), message))
    problems += _calendar_problems(doc, catalog)
    for loc, step in _raw_steps(data.get("steps"), ("steps",)):
        for key in ("agency", "escalate_to"):
            problem = _agency_problem(step.get(key), catalog)
            if problem:
                problems.append(doc.problem((*loc, key), f"{_dotted((*loc, key))}: {problem}"))
    return problems


def _calendar_problems(doc: _Document, catalog: Catalog) -> list[Problem]:
    """The calendar (named, or the default) must exist and load: deadlines are counted in it."""
    name = doc.data.get("calendar", DEFAULT_CALENDAR)
    if not isinstance(name, str):
        return []  # the shape check reports it
    which = "calendar" if "calendar" in doc.data else f"calendar (default {DEFAULT_CALENDAR})"
    known = ", ".join(sorted(catalog.calendars)) or "(none)"
    if name not in catalog.calendars:
        message = f"{which}: unknown calendar {name!r}; expected one of {known}"
        return [doc.problem(("calendar",), message)]
    try:
        load_calendar(name, catalog.root)
    except (UnknownCalendarError, CalendarFileError) as exc:
        reason = _one_line("; ".join(str(exc).splitlines()))
        return [doc.problem(("calendar",), f"{which}: calendar {name!r} cannot be used: {reason}")]
    return []


def _choices(value: str, known: Iterable[str], registry: str) -> str:
    close = difflib.get_close_matches(value, list(known), n=3, cutoff=0.6)
    hint = f", e.g. {', '.join(close)}" if close else ""
    return f"a code from {registry}{hint}"


def _agency_problem(value: Any, catalog: Catalog) -> str | None:
    """Why ``value`` names no agency, or None. Templates need one code to match."""
    if not isinstance(value, str) or not value:
        return None  # the shape check reports it
    codes = list(catalog.agencies)
    if "{" in value:
        if any(template_matches(value, code) for code in codes):
            return None
        # Compare the fixed start of the template with the same length of each code.
        prefix = value.split("{", 1)[0]
        close = _close_by_prefix(prefix, codes) if prefix else []
        hint = f"; close known codes: {', '.join(close)}" if close else ""
        return (
            f"no agency in {AGENCIES_FILE} matches {value!r} "
            f"({{field}} parts are filled from the dossier's data){hint}"
        )
    if value in catalog.agencies:
        return None
    close = difflib.get_close_matches(value, codes, n=3, cutoff=0.6)
    hint = f"; close known codes: {', '.join(close)}" if close else ""
    return f"unknown agency {value!r}; expected a code from {AGENCIES_FILE}{hint}"


def _close_by_prefix(prefix: str, codes: list[str]) -> list[str]:
    heads: dict[str, str] = {}
    for code in codes:
        heads.setdefault(code[: len(prefix)], code)
    return [heads[h] for h in difflib.get_close_matches(prefix, list(heads), n=3, cutoff=0.6)]


# --------------------------------------------------------------------------- meaning: timing


@dataclass(frozen=True)
class _Span:
    """The longest way through part of a procedure: its working time and the steps on it."""

    time: timedelta
    steps: tuple[str, ...]


def _deadline_overruns(doc: _Document, catalog: Catalog) -> list[Problem]:
    data = doc.data
    total = data.get("deadline")
    day_length = _day_length(data.get("calendar", DEFAULT_CALENDAR), catalog)
    if day_length is None or not is_duration(total):
        return []
    longest = _longest_sequence(data.get("steps"), day_length)
    if longest is None or longest.time <= parse_duration(total, day_length):
        return []
    path = " → ".join(longest.steps)
    taken = _in_days(longest.time, day_length)
    message = f"deadline: steps take up to {taken} along {path}, longer than the total deadline {total}"
    return [doc.problem(("deadline",), message)]


def _day_length(name: Any, catalog: Catalog) -> timedelta | None:
    if not isinstance(name, str) or name not in catalog.calendars:
        return None
    try:
        return load_calendar(name, catalog.root).day_length
    except (UnknownCalendarError, CalendarFileError):
        return None  # reported by the calendar check


def _longest_sequence(nodes: Any, day_length: timedelta) -> _Span | None:
    """Steps one after another add up. None when the tree is too malformed to time."""
    if not isinstance(nodes, list) or not nodes:
        return None
    time, steps = timedelta(0), ()
    for node in nodes:
        span = _longest_node(node, day_length)
        if span is None:
            return None
        time, steps = time + span.time, steps + span.steps
    return _Span(time, steps)


def _longest_node(node: Any, day_length: timedelta) -> _Span | None:
    if not isinstance(node, dict):
        return None
    if "parallel" in node:
        # Every branch must finish: the slowest one sets the pace.
        branches = node["parallel"]
        if not isinstance(branches, list) or not branches:
            return None
        spans = [span for branch in branches if (span := _longest_node(branch, day_length)) is not None]
        if len(spans) != len(branches):
            return None
        return max(spans, key=lambda s: s.time)
    if "sequence" in node:
        return _longest_sequence(node["sequence"], day_length)
    # A `when` step counts as if it runs: the deadline must hold either way.
    deadline, step_id = node.get("deadline"), node.get("id")
    if not is_duration(deadline):
        return None
    return _Span(parse_duration(deadline, day_length), (str(step_id),))


def _in_days(time: timedelta, day_length: timedelta) -> str:
    days = time / day_length
    return f"{days:.3f}".rstrip("0").rstrip(".") + "d"


# --------------------------------------------------------------------------- registries


@dataclass(frozen=True)
class _RegistryKind:
    model: type[BaseModel]
    item: type[BaseModel]
    key: str


_REGISTRIES = {
    AGENCIES_FILE: _RegistryKind(AgencyRegistry, Agency, "agencies"),
    SECTORS_FILE: _RegistryKind(SectorRegistry, Sector, "sectors"),
}


def _read_registry(path: Path) -> tuple[list[Any], list[Problem]]:
    """The usable entries of agencies.yaml / sectors.yaml, and every problem found."""
    kind = _REGISTRIES[path.name]
    doc = _read_yaml(path)
    if isinstance(doc, Problem):
        return [], [doc]
    if not isinstance(doc.data, CommentedMap):
        return [], [doc.problem((), f"the file is not a mapping; expected `{kind.key}:` with a list of entries")]
    _, problems = _validate_shape(doc, kind.model)
    entries = _valid_entries(doc.data.get(kind.key), kind.item)
    problems += _duplicate_codes(doc, kind.key)
    if kind.item is Agency:
        problems += _templated_agency_codes(doc)
    return entries, sorted(_unique(problems), key=lambda p: p.line)


def _valid_entries(raw: Any, item: type[BaseModel]) -> list[Any]:
    # A broken entry is reported by the shape check; the others stay usable.
    entries = []
    for node in raw if isinstance(raw, list) else []:
        try:
            entries.append(item.model_validate(_plain(node)))
        except ValidationError:
            continue
    return entries


def _duplicate_codes(doc: _Document, key: str) -> list[Problem]:
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


def _templated_agency_codes(doc: _Document) -> list[Problem]:
    # Templates belong in procedures; a registry lists the real agencies they resolve to.
    problems = []
    entries = doc.data.get("agencies")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        code = entry.get("code") if isinstance(entry, dict) else None
        if isinstance(code, str) and ("{" in code or "}" in code):
            loc = ("agencies", index, "code")
            problems.append(doc.problem(loc, f"{_dotted(loc)}: {code!r} has braces; expected a concrete agency code"))
    return problems


def _read_catalog(root: Path) -> tuple[Catalog, list[Problem]]:
    agencies, problems = _read_registry(root / AGENCIES_FILE)
    sectors, sector_problems = _read_registry(root / SECTORS_FILE)
    catalog = Catalog(
        root=root,
        agencies={a.code: a for a in agencies},
        sectors={s.code: s for s in sectors},
        levels={a.level for a in agencies},
        calendars=set(available_calendars(root)),
    )
    return catalog, problems + sector_problems


# --------------------------------------------------------------------------- across files


def _procedure_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def _duplicate_refs(results: list[_Result]) -> list[Problem]:
    """Each code@version may be declared by one file only (reported on the later one)."""
    owners: dict[str, Path] = {}
    problems = []
    for result in results:
        if result.snapshot is None or result.doc is None:
            continue
        ref = result.snapshot.ref
        if ref in owners:
            message = f"code: {ref} is already declared in {owners[ref]}; expected a new version number"
            problems.append(result.doc.problem(("code",), message))
        else:
            owners[ref] = result.path
    return problems


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


@dataclass
class _Plan:
    catalog_root: Path
    registries: list[Path]
    procedures: list[Path]
    missing: list[Problem]


def _plan(paths: list[Path], root: Path | None) -> _Plan:
    """Sort what was given into registries and procedure files, and pick the catalog."""
    registries: list[Path] = []
    procedures: list[Path] = []
    missing: list[Problem] = []
    definition_roots: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and _is_definitions_folder(path):
            definition_roots.append(path)
            registries += [path / name for name in _REGISTRIES if (path / name).is_file()]
            procedures += _procedure_files(path / PROCEDURES_DIR)
        elif path.is_dir():
            procedures += _procedure_files(path)
        elif path.is_file() and path.name in _REGISTRIES:
            registries.append(path)
            definition_roots.append(path.parent)
        elif path.is_file():
            procedures.append(path)
        else:
            missing.append(Problem(str(path), 1, "no such file or folder"))
    catalog_root = Path(root) if root is not None else (definition_roots[0] if definition_roots else definitions_root())
    return _Plan(catalog_root, list(dict.fromkeys(registries)), list(dict.fromkeys(procedures)), missing)


def _is_definitions_folder(path: Path) -> bool:
    return (path / PROCEDURES_DIR).is_dir() or (path / AGENCIES_FILE).is_file()


# --------------------------------------------------------------------------- lookup helpers


def _looks_like_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref


def _exact_version(code: str, version_text: str, versions: list[ProcedureSnapshot]) -> ProcedureSnapshot:
    for snapshot in versions:
        if str(snapshot.procedure.version) == version_text:
            return snapshot
    known = ", ".join(str(s.procedure.version) for s in reversed(versions))
    raise LookupError(f"procedure {code} has no version {version_text}: known versions are {known}")


def _version_in_effect(code: str, versions: list[ProcedureSnapshot], today: date) -> ProcedureSnapshot:
    """The newest version already in effect ``today``."""
    for snapshot in versions:
        starts = snapshot.procedure.effective_from
        if starts is None or starts <= today:
            return snapshot
    upcoming = ", ".join(f"v{s.procedure.version} from {s.procedure.effective_from}" for s in reversed(versions))
    raise LookupError(f"procedure {code} has no version in effect on {today} ({upcoming})")
