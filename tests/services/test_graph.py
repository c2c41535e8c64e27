"""services/graph.py: every shipped procedure drawn as Mermaid and as SVG (by the real
Graphviz `dot`, which scripts/ensure-test-tools.sh installs), read back and compared
with the procedure's structure; names that need escaping; `dot` missing, slow or failing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from definitions.loader import load_catalog, load_procedures
from definitions.schema import Procedure
from services.graph import (
    MAX_DOT_BYTES,
    GraphError,
    GraphvizMissingError,
    svg,
    to_dot,
    to_mermaid,
    to_svg,
)
from tests.support.pictures import Picture, before, entries, parallels, parse_mermaid, parse_svg

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((s.procedure for s in load_procedures(load_catalog(REPO / "definitions"))), key=lambda p: p.ref)
SYMBOLS = {"equals": "=", "in": "in", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


def by_ref(procedure: Procedure) -> str:
    return procedure.ref


def drawn(procedure: Procedure, form: str) -> Picture:
    return parse_mermaid(to_mermaid(procedure)) if form == "mermaid" else parse_svg(to_svg(procedure))


def test_the_shipped_procedures_have_what_is_drawn() -> None:
    """Forks and conditions are there to be checked: not a vacuous pass."""
    assert len(SHIPPED) >= 8
    assert sum(len(parallels(list(p.steps))) for p in SHIPPED) >= 5
    assert sum(1 for p in SHIPPED for s in p.iter_steps() if s.when is not None) >= 5


# --------------------------------------------------------------------------- every shipped procedure


@pytest.fixture(scope="module", params=["mermaid", "svg"])
def form(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("procedure", SHIPPED, ids=by_ref)
def test_every_step_is_a_node_with_its_name_agency_and_deadline(procedure: Procedure, form: str) -> None:
    picture = drawn(procedure, form)
    assert procedure.ref in picture.title and procedure.name in picture.title
    nodes = picture.step_nodes(procedure)
    assert set(nodes) == {step.id for step in procedure.iter_steps()}
    for step in procedure.iter_steps():
        lines = picture.lines[nodes[step.id]]
        text = " ".join(lines)  # Graphviz's labels are wrapped
        assert step.name and step.name in text, lines
        assert any(step.agency in line and step.deadline in line for line in lines), lines
        if step.escalate_to:
            assert step.escalate_to in text


@pytest.mark.parametrize("procedure", SHIPPED, ids=by_ref)
def test_the_drawing_orders_steps_as_the_procedure_does(procedure: Procedure, form: str) -> None:
    """A path from step a to step b exactly when a comes before b: sequences are chains,
    parallel branches are not ordered among themselves; every step lies between the
    start and the end."""
    picture = drawn(procedure, form)
    nodes = picture.step_nodes(procedure)
    expected = before(procedure)
    for a, key in nodes.items():
        reached = picture.reachable(key)
        assert "finish" in reached, a
        for b, other in nodes.items():
            if a != b:
                assert (other in reached) == ((a, b) in expected), f"path {a} -> {b}: {other in reached}"
    steps = set(nodes.values())
    first = {s for s, key in nodes.items() if key in picture.reachable("start", through=steps)}
    assert first == entries(list(procedure.steps))[0]


@pytest.mark.parametrize("procedure", SHIPPED, ids=by_ref)
def test_parallel_blocks_are_forks_and_joins(procedure: Procedure) -> None:
    picture = parse_mermaid(to_mermaid(procedure))
    nodes = picture.step_nodes(procedure)
    steps = set(nodes.values())
    blocks = parallels(list(procedure.steps))
    forks = [k for k, shape in picture.shapes.items() if shape == "hexagon" and picture.lines[k] == ["parallel"]]
    joins = [k for k, shape in picture.shapes.items() if shape == "hexagon" and picture.lines[k] == ["join"]]
    assert len(forks) == len(joins) == len(blocks)
    for block in blocks:
        branch_firsts = {s for branch in block.parallel for s in entries([branch])[0]}
        # The steps a fork leads to first (not going past a step or a join): its branches' first steps.
        def firsts(fork: str) -> set[str]:
            return {s for s, k in nodes.items() if k in picture.reachable(fork, through=steps | set(joins))}

        matching = [f for f in forks if len(picture.successors(f)) == len(block.parallel) and firsts(f) == branch_firsts]
        assert len(matching) == 1, (block, forks)


@pytest.mark.parametrize("procedure", [p for p in SHIPPED if any(s.when for s in p.iter_steps())], ids=by_ref)
def test_conditions_label_the_edge_to_their_step_and_otherwise_goes_past(procedure: Procedure, form: str) -> None:
    picture = drawn(procedure, form)
    nodes = picture.step_nodes(procedure)
    for step in procedure.iter_steps():
        if step.when is None:
            continue
        into = [e for e in picture.edges if e.target == nodes[step.id] and not e.back]
        assert len(into) == 1, into
        label = into[0].label or ""
        op = step.when.operator
        values: list[Any] = step.when.in_ or [] if op == "in" else [getattr(step.when, op)]
        assert step.when.field in label and SYMBOLS[op] in label, label
        for value in values:
            shown = f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) \
                else str(value)
            assert shown in label, (label, value)
        decision = into[0].source
        out = picture.successors(decision)
        assert len(out) == 2
        past = next(e for e in out if e.target != nodes[step.id])
        assert past.label == "otherwise"
        assert nodes[step.id] not in picture.reachable(past.target) and past.target != nodes[step.id]
        assert "finish" in picture.reachable(past.target) | {past.target}


# --------------------------------------------------------------------------- text that needs escaping

ODD_NAME = 'Cấp "giấy" <tạm> | số #1 [a] {b} (c) & `d` \\ ôn'


def odd_procedure() -> Procedure:
    step: dict[str, Any] = {"agency": "bpmc-xa-{commune}", "deadline": "1d"}
    return Procedure.model_validate({
        "code": "9.000001", "name": f"Thủ tục {ODD_NAME}", "sector": "G99", "level": "xa", "version": 3,
        "deadline": "5d",
        "steps": [
            step | {"id": "nhan", "name": ODD_NAME},
            step | {"id": "tinh", "name": "Tính <nhỏ>", "when": {"field": "so_tien", "lt": 3}},
            {"parallel": [step | {"id": "mot"},
                          {"sequence": [step | {"id": "hai", "when": {"field": "loai", "equals": 'có "ngoặc"'}},
                                        {"parallel": [step | {"id": "ba"}, step | {"id": "bon"}]}]}]},
            step | {"id": "tra"},
        ],
    })


def test_mermaid_keeps_vietnamese_and_escapes_what_mermaid_reads() -> None:
    procedure = odd_procedure()
    text = to_mermaid(procedure)
    assert "Cấp" in text and "ôn" in text  # UTF-8, not entity codes
    picture = parse_mermaid(text)  # every label is one quoted string
    nodes = picture.step_nodes(procedure)
    assert picture.lines[nodes["nhan"]][1] == ODD_NAME
    assert picture.lines[nodes["tinh"]][1] == "Tính <nhỏ>"
    labels = {e.target: e.label for e in picture.edges}
    assert labels[nodes["tinh"]] == "so_tien < 3"
    field, _, value = (labels[nodes["hai"]] or "").partition(" = ")
    assert field == "loai" and json.loads(value) == 'có "ngoặc"'  # values are shown as JSON
    assert procedure.name in picture.title


def test_nested_parallel_is_ordered_and_svg_is_valid_xml() -> None:
    procedure = odd_procedure()
    for picture in (parse_mermaid(to_mermaid(procedure)), parse_svg(to_svg(procedure))):
        nodes = picture.step_nodes(procedure)
        assert set(nodes) == {"nhan", "tinh", "mot", "hai", "ba", "bon", "tra"}
        expected = before(procedure)
        assert ("hai", "ba") in expected and ("mot", "ba") not in expected  # the test's own model
        for a, key in nodes.items():
            for b, other in nodes.items():
                if a != b:
                    assert (other in picture.reachable(key)) == ((a, b) in expected), (a, b)
    svg_picture = parse_svg(to_svg(procedure))
    nodes = svg_picture.step_nodes(procedure)
    assert ODD_NAME == " ".join(svg_picture.lines[nodes["nhan"]][1:-1])


def returning_procedure() -> Procedure:
    step: dict[str, Any] = {"agency": "so-tu-phap", "deadline": "2d"}
    return Procedure.model_validate({
        "code": "9.000002", "name": "Thủ tục có trả lại", "sector": "G99", "level": "tinh", "version": 1,
        "deadline": "10d",
        "steps": [
            step | {"id": "tiep-nhan"},
            step | {"id": "tham-dinh", "returns_to": ["tiep-nhan"]},
            {"parallel": [step | {"id": "xac-minh"},
                          {"sequence": [step | {"id": "du-thao"},
                                        step | {"id": "ky", "returns_to": ["du-thao", "tham-dinh"]}]}]},
            step | {"id": "tra-ket-qua", "returns_result": True},
        ],
    })


@pytest.mark.parametrize("form", ["mermaid", "svg"])
def test_return_edges_are_dashed_back_edges_and_the_result_step_is_marked(form: str) -> None:
    procedure = returning_procedure()
    assert procedure.result_step == "tra-ket-qua"
    picture = drawn(procedure, form)
    nodes = picture.step_nodes(procedure)
    ids = {key: step_id for step_id, key in nodes.items()}
    back = {(ids[e.source], ids[e.target]) for e in picture.edges if e.back}
    assert back == {(s.id, target) for s in procedure.iter_steps() for target in s.returns_to}
    assert {e.label for e in picture.edges if e.back} == {"return"}
    # Return edges go back: forward, the order is the procedure's (checked without them).
    expected = before(procedure)
    assert all((target, source) in expected for source, target in back)
    for a, key in nodes.items():
        for b, other in nodes.items():
            if a != b:
                assert (other in picture.reachable(key)) == ((a, b) in expected), (a, b)
    marked = [step_id for step_id, key in nodes.items() if "hands the result to the applicant" in picture.lines[key]]
    assert marked == ["tra-ket-qua"]
    if form == "mermaid":
        assert f"class {nodes['tra-ket-qua']} result" in picture.classes


def test_without_returns_there_are_no_back_edges_and_no_result_mark() -> None:
    for procedure in SHIPPED:
        if procedure.result_step is None and not any(s.returns_to for s in procedure.iter_steps()):
            picture = parse_mermaid(to_mermaid(procedure))
            assert not any(e.back for e in picture.edges) and picture.classes == []


def test_the_dot_text_is_what_svg_draws() -> None:
    procedure = SHIPPED[0]
    assert parse_svg(svg(to_dot(procedure))).edges == parse_svg(to_svg(procedure)).edges


# --------------------------------------------------------------------------- dot missing, slow or failing


def fake_dot(folder: Path, script: str) -> Path:
    folder.mkdir(exist_ok=True)
    program = folder / "dot"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return folder


def test_without_dot_the_message_says_to_install_graphviz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizMissingError, match=r"install Debian's graphviz \(`apt-get install graphviz`\)"):
        to_svg(SHIPPED[0])
    assert to_mermaid(SHIPPED[0]).startswith("---\n")  # Mermaid needs nothing installed


def test_a_dot_that_hangs_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path / "bin", "exec sleep 30")) + os.pathsep + os.environ["PATH"])
    with pytest.raises(GraphError, match=r"did not finish within 0.5 s"):
        to_svg(SHIPPED[0], timeout=0.5)


def test_a_dot_that_fails_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path / "bin", "cat >/dev/null; echo 'Error: syntax error in line 3' >&2; "
                                                              "exit 3")) + os.pathsep + os.environ["PATH"])
    with pytest.raises(GraphError, match=r"failed \(exit 3\): Error: syntax error in line 3"):
        to_svg(SHIPPED[0])


def test_dot_input_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = tmp_path / "ran"
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path / "bin", f"touch {ran}")) + os.pathsep + os.environ["PATH"])
    with pytest.raises(GraphError, match="more than"):
        svg("digraph { " + "a -> b; " * (MAX_DOT_BYTES // 8) + "}")
    assert not ran.exists()
