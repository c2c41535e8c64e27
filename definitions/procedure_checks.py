"""Checking one procedure file, and the check across files.

:func:`_check_procedure` reads the file once (:mod:`definitions.yaml_source`), checks
its shape (:mod:`definitions.shape`) and its meaning — duplicate step ids, the bounds
of :mod:`definitions.limits` (how many steps, how deeply nested), references to the
catalog (:mod:`definitions.references`), deadlines (:mod:`definitions.deadlines`) and
return edges and the result step (:mod:`definitions.returns`) — and returns a
:class:`ProcedureFile`: the problems, or the snapshot (with the default result step
marked) together with the document it was made from. Across files, each
``code@version`` may be declared once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from definitions.deadlines import _deadline_overruns
from definitions.limits import MAX_NESTING, MAX_STEPS
from definitions.problems import Loc, Problem, _dotted, _unique
from definitions.references import _unknown_references
from definitions.registries import Catalog
from definitions.returns import _return_problems, with_result_step
from definitions.schema import Procedure, ProcedureSnapshot
from definitions.shape import _validate_shape
from definitions.step_tree import _raw_blocks, _raw_steps
from definitions.yaml_source import Document, _read_yaml


@dataclass
class ProcedureFile:
    """One procedure file, read and checked once: its snapshot (None when it has
    problems) and the document it came from, whose text is what deploy stores."""

    path: Path
    snapshot: ProcedureSnapshot | None
    problems: list[Problem] = field(default_factory=list)
    doc: Document | None = None

    @property
    def body(self) -> str:
        """The file's text, exactly as read (its sha256 is the snapshot's ``content_hash``)."""
        assert self.doc is not None, f"{self.path} could not be read"
        return self.doc.text


def _check_procedure(path: Path, catalog: Catalog) -> ProcedureFile:
    doc = _read_yaml(path)
    if isinstance(doc, Problem):
        return ProcedureFile(path, None, [doc])
    if not isinstance(doc.data, CommentedMap):
        what = "empty" if doc.data is None else "not a mapping"
        message = f"the file is {what}; expected a procedure (code, name, sector, level, version, deadline, steps)"
        return ProcedureFile(path, None, [doc.problem((), message)], doc)
    procedure, problems = _validate_shape(doc, Procedure)
    problems += _duplicate_step_ids(doc)
    problems += _too_many_steps(doc)
    problems += _too_deeply_nested(doc)
    problems += _unknown_references(doc, catalog)
    problems += _deadline_overruns(doc, catalog)
    problems += _return_problems(doc)
    problems = sorted(_unique(problems), key=lambda p: p.line)
    if problems:
        return ProcedureFile(path, None, problems, doc)
    snapshot = ProcedureSnapshot(
        procedure=with_result_step(procedure, catalog),
        content_hash=doc.sha256,
        source=str(path),
    )
    return ProcedureFile(path, snapshot, [], doc)


def _duplicate_step_ids(doc: Document) -> list[Problem]:
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


def _too_many_steps(doc: Document) -> list[Problem]:
    """At most MAX_STEPS steps, every branch of every parallel counted (a `when` step too)."""
    steps = [loc for loc, _ in _raw_steps(doc.data.get("steps"), ("steps",))]
    if len(steps) <= MAX_STEPS:
        return []
    first = steps[MAX_STEPS]
    message = (f"steps: {len(steps)} steps (every branch counted), more than {MAX_STEPS} (MAX_STEPS); step "
               f"{MAX_STEPS + 1} is {_dotted(first)} on line {doc.line_of(first)}; expected at most {MAX_STEPS} "
               "steps: split the procedure")
    return [doc.problem(("steps",), message)]


def _too_deeply_nested(doc: Document) -> list[Problem]:
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


def _duplicate_refs(results: list[ProcedureFile]) -> list[Problem]:
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
