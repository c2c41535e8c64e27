"""A procedure as a picture: Mermaid text, or SVG drawn by Graphviz from DOT text.

Both are rendered from one :class:`Drawing` of the procedure, built here:

* one node per step: its id, name, agency (the code template, e.g. ``bpmc-xa-{commune}``),
  deadline and whom it escalates to; the step that hands the result to the applicant
  (``returns_result: true``, :attr:`Procedure.result_step`) is marked;
* ``parallel:`` blocks as a fork node with an edge to each branch and a join node every
  branch leads to (a branch that is a ``sequence:`` is a chain between them);
* a step with ``when:`` behind a decision node: an edge labelled with the condition
  leads to the step, one labelled ``otherwise`` goes past it (the workflow skips it);
* ``returns_to`` as dashed edges labelled ``return``, back to the earlier steps a step
  may send the dossier to.

Rendering is pure; :func:`svg` runs Graphviz's ``dot`` (Debian's ``graphviz``) on
bounded input with a timeout, and says to install it when it is missing.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import textwrap
from dataclasses import dataclass, field
from typing import Any, Literal

from definitions.schema import Condition, Parallel, Procedure, Sequence, Step

FORMATS = ("mermaid", "svg")
DOT_TIMEOUT_SECONDS = 30.0
MAX_DOT_BYTES = 1024 * 1024  # a procedure at MAX_STEPS makes a few dozen kilobytes
MAX_SVG_BYTES = 16 * 1024 * 1024
OTHERWISE = "otherwise"
RETURN = "return"
RESULT_NOTE = "hands the result to the applicant"
_NAME_WIDTH = 40  # Graphviz does not wrap labels; Mermaid does

NodeKind = Literal["start", "finish", "step", "fork", "join", "decision"]


class GraphError(Exception):
    """A picture that could not be drawn: Graphviz failed, took too long, or said too much."""


class GraphvizMissingError(GraphError):
    """`dot` is not installed."""


@dataclass(frozen=True)
class Node:
    key: str  # the node's id in the Mermaid and DOT texts (s1, f1, j1, d1, start, finish)
    kind: NodeKind
    lines: tuple[str, ...]  # the label; a step's first line is its id
    result: bool = False  # the step that hands the result to the applicant


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str | None = None
    back: bool = False  # a return edge (dashed)


@dataclass
class Drawing:
    """A procedure as nodes and edges, before it is written in either language."""

    title: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    steps: dict[str, str] = field(default_factory=dict)  # step id -> node key


Pending = list[tuple[str, str | None]]  # edges still to draw into the next node: (source key, label)


def drawing(procedure: Procedure) -> Drawing:
    """The procedure's steps, forks, joins, decisions and return edges."""
    return _Builder(procedure).build()


class _Builder:
    def __init__(self, procedure: Procedure) -> None:
        self.procedure = procedure
        self.out = Drawing(title=f"{procedure.ref} {procedure.name}")
        self.counts: dict[str, int] = {}

    def build(self) -> Drawing:
        p = self.procedure
        start = self._node("start", "start", ("received", f"whole procedure: {p.deadline}"))
        pending = self._flow(list(p.steps), [(start, None)])
        self._connect(pending, self._node("finish", "finish", ("done",)))
        for step in p.iter_steps():
            for target in step.returns_to:
                if target in self.out.steps:
                    self.out.edges.append(Edge(self.out.steps[step.id], self.out.steps[target], RETURN, back=True))
        return self.out

    def _node(self, prefix: str, kind: NodeKind, lines: tuple[str, ...], result: bool = False) -> str:
        if kind in ("start", "finish"):
            key = prefix
        else:
            self.counts[prefix] = self.counts.get(prefix, 0) + 1
            key = f"{prefix}{self.counts[prefix]}"
        self.out.nodes.append(Node(key, kind, lines, result))
        return key

    def _connect(self, pending: Pending, target: str) -> None:
        for source, label in pending:
            edge = Edge(source, target, label)
            if edge not in self.out.edges:
                self.out.edges.append(edge)

    def _flow(self, nodes: list[Any], pending: Pending) -> Pending:
        for node in nodes:
            if isinstance(node, Step):
                pending = self._step(node, pending)
            elif isinstance(node, Parallel):
                fork = self._node("f", "fork", ("parallel",))
                self._connect(pending, fork)
                ends: Pending = []
                for branch in node.parallel:
                    ends += self._flow([branch], [(fork, None)])
                join = self._node("j", "join", ("join",))
                self._connect(ends, join)
                pending = [(join, None)]
            elif isinstance(node, Sequence):
                pending = self._flow(list(node.sequence), pending)
        return pending

    def _step(self, step: Step, pending: Pending) -> Pending:
        decision = None
        if step.when is not None:
            decision = self._node("d", "decision", ("when",))
            self._connect(pending, decision)
            pending = [(decision, condition_text(step.when))]
        result = step.id == self.procedure.result_step
        lines = [step.id]
        if step.name:
            lines.append(step.name)
        lines.append(f"{step.agency} · {step.deadline}")
        if step.escalate_to:
            lines.append(f"escalates to {step.escalate_to}")
        if result:
            lines.append(RESULT_NOTE)
        key = self._node("s", "step", tuple(lines), result)
        self.out.steps[step.id] = key
        self._connect(pending, key)
        return [(key, None)] + ([(decision, OTHERWISE)] if decision else [])


_SYMBOLS = {"equals": "=", "in": "in", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}


def condition_text(condition: Condition) -> str:
    """``area_m2 > 500``, ``che_do = "bhxh"``, ``khu_vuc in ["di-tich", "tuyen-pho-chinh"]``."""
    op = condition.operator
    value: Any = condition.in_ if op == "in" else getattr(condition, op)
    if op in ("gt", "gte", "lt", "lte"):
        shown = f"{value:g}"
    else:
        shown = json.dumps(value, ensure_ascii=False)
    return f"{condition.field} {_SYMBOLS[op]} {shown}"


# ----------------------------------------------------------------------------- Mermaid


# Characters with a meaning in Mermaid's syntax, written as its entity codes (#34; is ").
# Everything else, Vietnamese diacritics included, stays as UTF-8 text.
_MERMAID_ESCAPES = str.maketrans({c: f"#{ord(c)};" for c in '#"<>&|`'})
_MERMAID_SHAPES = {"start": ('(["', '"])'), "finish": ('(["', '"])'), "step": ('["', '"]'),
                   "fork": ('{{"', '"}}'), "join": ('{{"', '"}}'), "decision": ('{"', '"}')}


def mermaid_text(text: str) -> str:
    return " ".join(text.split()).translate(_MERMAID_ESCAPES)


def to_mermaid(procedure: Procedure) -> str:
    """A Mermaid ``flowchart TD`` of the procedure (paste it in a ```mermaid block)."""
    d = drawing(procedure)
    out = ["---", f"title: {json.dumps(d.title, ensure_ascii=False)}", "---", "flowchart TD"]
    for node in d.nodes:
        lines = [mermaid_text(line) for line in node.lines]
        if node.kind == "step":
            lines[0] = f"<b>{lines[0]}</b>"
        opening, closing = _MERMAID_SHAPES[node.kind]
        out.append(f"    {node.key}{opening}{'<br/>'.join(lines)}{closing}")
    for edge in d.edges:
        arrow = "-.->" if edge.back else "-->"
        label = f'|"{mermaid_text(edge.label)}"|' if edge.label else ""
        out.append(f"    {edge.source} {arrow}{label} {edge.target}")
    results = [node.key for node in d.nodes if node.result]
    if results:
        out.append("    classDef result stroke-width:3px")
        out.append(f"    class {','.join(results)} result")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- DOT / SVG


_DOT_SHAPES = {"start": 'shape=ellipse', "finish": 'shape=ellipse', "step": 'shape=box, style=rounded',
               "fork": 'shape=hexagon', "join": 'shape=hexagon', "decision": 'shape=diamond'}


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _dot_label(node: Node) -> str:
    """An HTML-like label: a step's id in bold; long lines (names) wrapped at spaces."""
    rows: list[str] = []
    for index, line in enumerate(node.lines):
        text = " ".join(line.split())
        if node.kind == "step" and index == 0:
            rows.append(f"<B>{html.escape(text, quote=False)}</B>")
        else:
            rows += [html.escape(part, quote=False) for part in
                     textwrap.wrap(text, _NAME_WIDTH, break_long_words=False, break_on_hyphens=False) or [""]]
    return "<" + "<BR/>".join(rows) + ">"


def to_dot(procedure: Procedure) -> str:
    """The same drawing in Graphviz's DOT language (what :func:`to_svg` draws)."""
    d = drawing(procedure)
    font = 'fontname="DejaVu Sans"'
    out = [f"digraph {_dot_string(procedure.ref)} {{",
           f"    graph [rankdir=TB, labelloc=t, {font}, label={_dot_string(d.title)}];",
           f"    node [{font}, fontsize=11];",
           f"    edge [{font}, fontsize=10];"]
    for node in d.nodes:
        extra = ", penwidth=3" if node.result else ""
        out.append(f"    {node.key} [{_DOT_SHAPES[node.kind]}{extra}, label={_dot_label(node)}];")
    for edge in d.edges:
        attrs = [f"label={_dot_string(edge.label)}"] if edge.label else []
        if edge.back:
            attrs += ["style=dashed", "constraint=false"]
        out.append(f"    {edge.source} -> {edge.target}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    out.append("}")
    return "\n".join(out) + "\n"


def to_svg(procedure: Procedure, timeout: float = DOT_TIMEOUT_SECONDS) -> str:
    return svg(to_dot(procedure), timeout=timeout)


def svg(dot: str, timeout: float = DOT_TIMEOUT_SECONDS) -> str:
    """SVG drawn by Graphviz's ``dot`` from DOT text: bounded input, a timeout, no shell."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizMissingError("Graphviz's `dot` is not installed, so there is no SVG: install Debian's "
                                   "graphviz (`apt-get install graphviz`), or use --format mermaid")
    source = dot.encode("utf-8")
    if len(source) > MAX_DOT_BYTES:
        raise GraphError(f"the drawing is {len(source)} bytes of DOT, more than {MAX_DOT_BYTES}")
    try:
        done = subprocess.run([program, "-Tsvg"], input=source, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise GraphError(f"`dot` did not finish within {timeout:g} s") from err
    except OSError as err:
        raise GraphError(f"`dot` could not run: {err.strerror or err}") from err
    if done.returncode != 0:
        said = " ".join(done.stderr.decode("utf-8", "replace").split())[:500]
        raise GraphError(f"`dot` failed (exit {done.returncode}): {said or 'no message'}")
    if len(done.stdout) > MAX_SVG_BYTES:
        raise GraphError(f"`dot` wrote more than {MAX_SVG_BYTES} bytes of SVG")
    return done.stdout.decode("utf-8")


def render(procedure: Procedure, form: str) -> str:
    """The procedure as ``mermaid`` text or an ``svg`` document."""
    if form == "mermaid":
        return to_mermaid(procedure)
    if form == "svg":
        return to_svg(procedure)
    raise ValueError(f"unknown format {form!r}: expected one of {', '.join(FORMATS)}")
