"""Shape checks: a document read against a pydantic model of :mod:`definitions.schema`,
each validation error worded as one ``PATH:LINE: field: what was wrong; expected what``
line (types, required and unknown keys, durations, ``when`` operators, empty lists).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from definitions.durations import EXPECTED as DURATION_EXPECTED
from definitions.folders import AGENCIES_FILE, SECTORS_FILE
from definitions.limits import MAX_EXTENSIONS, MAX_OBLIGATION_REQUESTS, MAX_RETURNS, MAX_SUPPLEMENT_REQUESTS
from definitions.problems import Loc, Problem, _dotted
from definitions.schema import COMMUNE_FIELD, OPERATORS, Agency, Condition, Parallel, Receives, Sector, Sequence, Step
from definitions.yaml_source import Document, _plain

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
    "max_extension": DURATION_EXPECTED,
    "on_supplement": "pause or restart",
    "max_extensions": f"a whole number from 0 to {MAX_EXTENSIONS} (MAX_EXTENSIONS)",
    "receipt_cutoff": 'a local time like "15:00" (quoted)',
    "max_supplement_requests": f"a whole number from 1 to {MAX_SUPPLEMENT_REQUESTS} (MAX_SUPPLEMENT_REQUESTS)",
    "on_obligation": "pause or continue",
    "max_obligation_requests": f"a whole number from 0 to {MAX_OBLIGATION_REQUESTS} (MAX_OBLIGATION_REQUESTS)",
    "max_returns": f"a whole number from 0 to {MAX_RETURNS} (MAX_RETURNS)",
    "returns_to": "a list of ids of steps that come earlier in the same list, e.g. [tham-dinh]",
    "returns_result": "true or false",
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
    "receives": "a desk's receiving scope, e.g. {levels: [xa], communes: [xa-tan-lap]}",
    "levels": f"a list of levels used in {AGENCIES_FILE}, e.g. [xa]",
    "communes": f"a list of the dossier data's `{COMMUNE_FIELD}` values, e.g. [xa-tan-lap]",
    "province_wide": "true or false",
    "province_wide_procedures": "a list of procedure codes, e.g. [\"3.000722\"]",
    "agencies": "a list of agencies",
    "sectors": "a list of sectors",
}
_DURATION_KEYS = {"deadline", "supplement_deadline", "max_extension"}
# Tags pydantic puts into `loc` for the members of a discriminated union.
_UNION_TAGS = {"step", "parallel", "sequence"}
_NODE_LISTS = {"steps", "parallel", "sequence"}


def _validate_shape(doc: Document, model: type[BaseModel]) -> tuple[Any, list[Problem]]:
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



def _describe(doc: Document, model: type[BaseModel], loc: Loc, error: Any) -> str:
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
    if kind.startswith("time_"):
        return f"{where}: {doc.source_text(loc) or _shown(value)} is not a time of day; expected {expected}"
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


def _describe_unknown_key(doc: Document, model: type[BaseModel], loc: Loc) -> str:
    parent = _model_at(doc, model, loc[:-1])
    key = loc[-1]
    if parent is Condition:
        return f"{_dotted(loc[:-1])}: unknown `when` operator {key!r}; expected one of {', '.join(OPERATORS)}"
    known = [f.alias or name for name, f in parent.model_fields.items()] if parent else []
    expected = f"; expected one of {', '.join(known)}" if known else ""
    return f"{_dotted(loc)}: unknown key {key!r}{expected}"


def _model_at(doc: Document, root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """Which model the mapping at ``loc`` is read as (for listing its keys)."""
    if not loc:
        return root
    if loc[-1] == "when":
        return Condition
    if loc[-1] == "receives":
        return Receives
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
