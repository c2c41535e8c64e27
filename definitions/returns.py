"""Return edges and the result step: ``returns_to`` and ``returns_result``.

* ``returns_to`` (the back-edges of an approved internal procedure: "if not approved,
  send back to step 3") may name only steps that come *earlier in the same list* as the
  returning step: the same ``sequence:``, or the top-level ``steps:``. The interpreter
  re-runs the nodes of that list from the target on, so the target is a step that ran
  before the returning one on its path; a step inside a parallel, in another branch,
  outside the returning step's sequence, later, the step itself, or an unknown id is
  refused, saying which steps it may name.
* ``returns_result: true`` (the step that hands the result to the applicant: status 9
  when it starts, 10 when it is done) only on the last node of the top-level ``steps:``,
  and that node must be a step; so at most one step has it.
* By default (:func:`with_result_step`), when no step says ``returns_result``, the last
  top-level node is the result step if it is a step whose agency is a one-stop desk
  (every agency its code or ``{field}`` template can be is ``receives_dossiers: true``
  in agencies.yaml); ``returns_result: false`` on it opts out.

The checks read the raw YAML tree (like :mod:`definitions.references`), so they run
even when the shape is wrong elsewhere and name the file, line and field.
"""

from __future__ import annotations

import difflib
from typing import Any

from definitions.problems import Loc, Problem, _dotted
from definitions.registries import Catalog
from definitions.schema import Procedure, Step, template_matches
from definitions.step_tree import _raw_steps
from definitions.yaml_source import Document


def _return_problems(doc: Document) -> list[Problem]:
    steps = doc.data.get("steps")
    where = {step["id"]: loc for loc, step in _raw_steps(steps, ("steps",)) if isinstance(step.get("id"), str)}
    return _returns_to_problems(doc, steps, ("steps",), where, sequential=True) + _result_step_problems(doc, steps)


def _returns_to_problems(doc: Document, nodes: Any, loc: Loc, where: dict[str, Loc], *,
                         sequential: bool) -> list[Problem]:
    """Check each step's ``returns_to`` in the list ``nodes`` (at ``loc``); a parallel's
    branches are no sequence, so a step directly under ``parallel:`` has no earlier step."""
    if not isinstance(nodes, list):
        return []
    problems: list[Problem] = []
    earlier: list[str] = []  # ids of the steps before the current node in this list
    for index, node in enumerate(nodes):
        here = (*loc, index)
        if not isinstance(node, dict):
            continue
        if "parallel" in node:
            problems += _returns_to_problems(doc, node["parallel"], (*here, "parallel"), where, sequential=False)
        elif "sequence" in node:
            problems += _returns_to_problems(doc, node["sequence"], (*here, "sequence"), where, sequential=True)
        else:
            targets = node.get("returns_to")
            for position, target in enumerate(targets if isinstance(targets, list) else []):
                if not isinstance(target, str):
                    continue  # the shape check reports it
                reason = _why_not(target, node.get("id"), here, where)
                if reason is not None:
                    field = (*here, "returns_to", position)
                    allowed = ", ".join(earlier) if earlier else (
                        f"none: no step comes before {_dotted(here)} in its list"
                        + ("" if sequential else " (the branches of a parallel run side by side)"))
                    message = (f"{_dotted(field)}: {reason}; expected a step that comes earlier in the same list "
                               f"(the interpreter re-runs that list from the target on): {allowed}")
                    problems.append(doc.problem(field, message))
            step_id = node.get("id")
            if sequential and isinstance(step_id, str):
                earlier.append(step_id)
    return problems


def _why_not(target: str, step_id: Any, here: Loc, where: dict[str, Loc]) -> str | None:
    """Why ``target`` cannot be returned to from the step at ``here``; None when it can."""
    if target == step_id:
        return f"{target!r} is this step itself"
    found = where.get(target)
    if found is None:
        close = difflib.get_close_matches(target, list(where), n=3, cutoff=0.6)
        hint = f" (close: {', '.join(close)})" if close else ""
        return f"unknown step {target!r}{hint}"
    mine = here[:-1]
    parallel = _enclosing_parallel(here, found)
    if parallel is not None:
        return f"{target!r} ({_dotted(found)}) is in another branch of the parallel at {_dotted(parallel)}"
    if found[:-1] == mine:
        before = int(found[-1]) < int(here[-1])  # both are indexes into the same list
        return None if before else f"{target!r} ({_dotted(found)}) comes later, not before this step"
    if found[:len(mine)] == mine:  # inside a block of this step's list
        block = found[:len(mine) + 2]
        return f"{target!r} ({_dotted(found)}) is inside the {block[-1]} at {_dotted(block[:-1])}"
    return f"{target!r} ({_dotted(found)}) is not in the list this step is in ({_dotted(mine)})"


def _enclosing_parallel(here: Loc, found: Loc) -> Loc | None:
    """The parallel whose different branches hold the two steps, if any."""
    size = 0
    while size < min(len(here), len(found)) and here[size] == found[size]:
        size += 1
    # Both paths go through `..., <index>, "parallel"` and part at the branch index.
    return here[:size - 1] if size >= 2 and here[size - 1] == "parallel" else None


def _result_step_problems(doc: Document, steps: Any) -> list[Problem]:
    """``returns_result: true`` only on the last top-level node, and only if it is a step."""
    if not isinstance(steps, list) or not steps:
        return []
    last = ("steps", len(steps) - 1)
    last_node = steps[-1]
    last_is_block = isinstance(last_node, dict) and ("parallel" in last_node or "sequence" in last_node)
    problems = []
    for loc, step in _raw_steps(steps, ("steps",)):
        if step.get("returns_result") is not True or loc == last:
            continue
        field = (*loc, "returns_result")
        if last_is_block:
            ending = (f"the procedure ends with a {'parallel' if 'parallel' in last_node else 'sequence'} "
                      f"({_dotted(last)}), so no step can return the result; expected returns_result: true only on "
                      "a step that is the last of the top-level steps: add the desk's return step after it")
        else:
            ending = (f"expected it only on the last of the top-level steps ({_dotted(last)}), the step that hands "
                      "the result to the applicant; at most one step returns the result")
        problems.append(doc.problem(field, f"{_dotted(field)}: true, but this step is not the procedure's last "
                                           f"step; {ending}"))
    return problems


def with_result_step(procedure: Procedure, catalog: Catalog) -> Procedure:
    """The procedure with its default result step marked (module docstring): when no step
    says ``returns_result``, the last top-level node, if it is a step at a one-stop desk."""
    if any(step.returns_result is not None for step in procedure.iter_steps()):
        return procedure
    last = procedure.steps[-1]
    if not isinstance(last, Step) or not is_desk(last.agency, catalog):
        return procedure
    steps = [*procedure.steps[:-1], last.model_copy(update={"returns_result": True})]
    return procedure.model_copy(update={"steps": steps})


def is_desk(agency: str, catalog: Catalog) -> bool:
    """Whether every agency ``agency`` (a code or a ``{field}`` template) can resolve to
    in the registry is a one-stop desk (and there is at least one)."""
    if "{" not in agency:
        found = catalog.agencies.get(agency)
        return found is not None and found.receives_dossiers
    matches = [a for code, a in catalog.agencies.items() if template_matches(agency, code)]
    return bool(matches) and all(a.receives_dossiers for a in matches)

