"""The one refusal vocabulary (workflows/refusals.py) and the problem catalogue: every
kind the dossier workflow raises is in the vocabulary, and every kind but the catch-all
has a problem type of its own (a documented `type`, title and status)."""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.problems import KINDS, TYPES, problem_of
from services.dossiers import Refusal
from workflows.refusals import RefusalKind

WORKFLOW = Path(__file__).resolve().parents[2] / "workflows" / "dossier.py"
# Refusals of operators' changes (`lienthong calendars apply`): no gateway route sends them.
OPERATORS_ONLY = {RefusalKind.CALENDAR_LIMIT, RefusalKind.WRONG_CALENDAR, RefusalKind.REFUSED}


def _raised_kinds() -> set[str]:
    """The kinds written in `refuse("Kind", ...)` calls and `kind = "A" if ... else "B"`."""
    tree = ast.parse(WORKFLOW.read_text(encoding="utf-8"))
    kinds: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "refuse" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant):
                kinds.add(first.value)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "kind" for t in node.targets) \
                and isinstance(node.value, ast.IfExp):
            kinds |= {v.value for v in (node.value.body, node.value.orelse)
                      if isinstance(v, ast.Constant) and str(v.value)[:1].isupper()}
    return kinds


def test_every_workflow_refusal_is_a_kind_of_the_vocabulary() -> None:
    raised = _raised_kinds()
    assert {"AlreadyReceived", "NotReceived", "DecisionMade", "BadReturn", "ReturnLimit", "ObligationLimit",
            "AwaitingObligation", "AwaitingApplicant"} <= raised
    unknown = {kind for kind in raised if RefusalKind.of(kind) is RefusalKind.REFUSED}
    assert not unknown, f"kinds the workflow raises that refusals.py does not know: {sorted(unknown)}"


def test_every_kind_has_its_problem_type() -> None:
    missing = [kind for kind in RefusalKind if kind not in OPERATORS_ONLY and kind not in KINDS]
    assert not missing, f"refusal kinds without a problem type: {missing}"
    for kind, slug in KINDS.items():
        problem = TYPES[slug]
        assert problem.title and problem.description and 400 <= problem.status < 600, kind
    expected = {RefusalKind.ALREADY_RECEIVED: ("already-received", 409),
                RefusalKind.NOT_RECEIVED: ("not-received", 409),
                RefusalKind.DECISION_MADE: ("decision-made", 409), RefusalKind.BAD_RETURN: ("bad-return", 422),
                RefusalKind.RETURN_LIMIT: ("return-limit", 409),
                RefusalKind.OUT_OF_SCOPE: ("outside-receiving-scope", 403),
                RefusalKind.AWAITING_OBLIGATION: ("awaiting-obligation", 409)}
    for kind, (slug, status) in expected.items():
        problem = problem_of(Refusal(kind, "why", by_workflow=True))
        assert (problem.type.slug, problem.status, problem.kind) == (slug, status, kind.value)
