"""Reading `lienthong definitions graph` pictures back, to check what they draw rather
than how they are spelled: the Mermaid text and the SVG that Graphviz drew are parsed
into nodes (their label lines) and edges, and compared with the procedure's structure
computed here from the procedure model, independently of services/graph.py."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from definitions.schema import Parallel, Procedure, Sequence, Step

SVG = "{http://www.w3.org/2000/svg}"

_SHAPES = {'(["': "terminal", '["': "box", '{{"': "hexagon", '{"': "diamond"}
_NODE = re.compile(r'^ {4}(\w+)(\(\["|\["|\{\{"|\{")(.*)("\]\)|"\]|"\}\}|"\})$')
_EDGE = re.compile(r'^ {4}(\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)$')
_CLASS = re.compile(r"^ {4}(classDef \w+ [\w:;-]+|class [\w,]+ \w+)$")


@dataclass(frozen=True)
class Link:
    source: str
    target: str
    label: str | None
    back: bool  # dashed (a return edge)


@dataclass
class Picture:
    """Nodes by key with their label lines (and shape, for Mermaid), and the edges."""

    title: str
    lines: dict[str, list[str]] = field(default_factory=dict)
    shapes: dict[str, str] = field(default_factory=dict)
    edges: list[Link] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    def step_nodes(self, procedure: Procedure) -> dict[str, str]:
        """Step id -> node key: the node whose first label line is the id (exactly one)."""
        ids = {step.id for step in procedure.iter_steps()}
        found: dict[str, list[str]] = {}
        for key, lines in self.lines.items():
            if lines and lines[0] in ids:
                found.setdefault(lines[0], []).append(key)
        assert all(len(keys) == 1 for keys in found.values()), found
        return {step_id: keys[0] for step_id, keys in found.items()}

    def successors(self, key: str, *, back: bool = False) -> list[Link]:
        return [e for e in self.edges if e.source == key and e.back == back]

    def reachable(self, key: str, *, through: set[str] | None = None) -> set[str]:
        """Nodes reachable from `key` along forward edges; with `through`, not going on
        past those nodes (they are reached, not passed)."""
        seen: set[str] = set()
        todo = [key]
        while todo:
            here = todo.pop()
            for edge in self.successors(here):
                if edge.target not in seen:
                    seen.add(edge.target)
                    if through is None or edge.target not in through:
                        todo.append(edge.target)
        return seen


def decode_mermaid(text: str) -> str:
    """Mermaid's entity codes (#34; is ") back to characters."""
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text)


def parse_mermaid(text: str) -> Picture:
    lines = text.splitlines()
    assert lines[:1] == ["---"] and lines[2:4] == ["---", "flowchart TD"], lines[:4]
    assert lines[1].startswith("title: ")
    picture = Picture(title=json.loads(lines[1][len("title: "):]))  # a YAML double-quoted string, as JSON
    for line in lines[4:]:
        if node := _NODE.match(line):
            key, opening, label = node.group(1), node.group(2), node.group(3)
            assert '"' not in label, line
            parts = [decode_mermaid(part) for part in label.split("<br/>")]
            parts[0] = re.sub(r"^<b>(.*)</b>$", r"\1", parts[0])
            assert key not in picture.lines, f"node {key} twice"
            picture.lines[key], picture.shapes[key] = parts, _SHAPES[opening]
        elif edge := _EDGE.match(line):
            label = decode_mermaid(edge.group(3)) if edge.group(3) is not None else None
            picture.edges.append(Link(edge.group(1), edge.group(4), label, edge.group(2) == "-.->"))
        elif _CLASS.match(line):
            picture.classes.append(line.strip())
        else:
            raise AssertionError(f"not a node, an edge or a class: {line!r}")
    for link in picture.edges:
        assert link.source in picture.lines and link.target in picture.lines, link
    return picture


def parse_svg(text: str) -> Picture:
    """Graphviz's SVG: each node and edge is a <g class=...> with a <title> (its key,
    or SOURCE->TARGET) and <text> elements (label lines, edge labels)."""
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    graph = root.find(f"{SVG}g")
    assert graph is not None
    title = next((t.text or "" for t in graph.findall(f"{SVG}text")), "")
    picture = Picture(title=title)
    for group in graph.findall(f"{SVG}g"):
        name = group.findtext(f"{SVG}title") or ""
        texts = [t.text or "" for t in group.iter(f"{SVG}text")]
        if group.get("class") == "node":
            picture.lines[name] = texts
        elif group.get("class") == "edge":
            source, _, target = name.partition("->")
            dashed = any(p.get("stroke-dasharray") for p in group.iter(f"{SVG}path"))
            picture.edges.append(Link(source, target, " ".join(texts) or None, dashed))
    return picture


# ----------------------------------------------------------------------------- the procedure's structure


def before(procedure: Procedure) -> set[tuple[str, str]]:
    """(a, b): step a is finished before step b may start, by the procedure's structure
    (sequence: everything earlier; parallel: nothing across branches)."""
    pairs: set[tuple[str, str]] = set()

    def steps(node: Any) -> list[str]:
        if isinstance(node, Step):
            return [node.id]
        if isinstance(node, Parallel):
            return [s for branch in node.parallel for s in steps(branch)]
        assert isinstance(node, Sequence)
        return [s for child in node.sequence for s in steps(child)]

    def walk(nodes: list[Any]) -> None:
        for index, node in enumerate(nodes):
            for later in nodes[index + 1:]:
                pairs.update((a, b) for a in steps(node) for b in steps(later))
            if isinstance(node, Parallel):
                for branch in node.parallel:
                    walk([branch])
            elif isinstance(node, Sequence):
                walk(list(node.sequence))

    walk(list(procedure.steps))
    return pairs


def parallels(nodes: list[Any]) -> list[Parallel]:
    found: list[Parallel] = []
    for node in nodes:
        if isinstance(node, Parallel):
            found.append(node)
            for branch in node.parallel:
                found += parallels([branch])
        elif isinstance(node, Sequence):
            found += parallels(list(node.sequence))
    return found


def entries(nodes: list[Any]) -> tuple[set[str], bool]:
    """The steps that may come first in `nodes` (a `when` step may be skipped, letting
    the next one come first), and whether all of them may be skipped."""
    first: set[str] = set()
    for node in nodes:
        if isinstance(node, Step):
            found, skippable = {node.id}, node.when is not None
        elif isinstance(node, Sequence):
            found, skippable = entries(list(node.sequence))
        else:
            assert isinstance(node, Parallel)
            branches = [entries([branch]) for branch in node.parallel]
            found = {s for f, _ in branches for s in f}
            skippable = all(s for _, s in branches)
        first |= found
        if not skippable:
            return first, False
    return first, True
