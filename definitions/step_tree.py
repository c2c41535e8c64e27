"""A procedure's raw step tree: every step and every ``parallel:`` / ``sequence:``
block of the YAML document with its path, whatever else is malformed (the meaning
checks run even when the shape check fails)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from definitions.problems import Loc


def _raw_steps(nodes: Any, loc: Loc) -> Iterator[tuple[Loc, dict[Any, Any]]]:
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
