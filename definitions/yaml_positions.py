"""Where a value came from in a YAML file, for `PATH:LINE: message` errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq


def line_of(node: Any, loc: Sequence[int | str]) -> int:
    """1-based line of the deepest node that `loc` (a pydantic error path) reaches:
    a key's line, or the line of the mapping that lacks the key."""
    line = node.lc.line if isinstance(node, (CommentedMap, CommentedSeq)) else 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0]
        else:
            break
        node = node[part]
    return line + 1
