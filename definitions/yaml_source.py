"""Reading a YAML file so that every value keeps its file and line.

Before anything is read, the file must be a regular file (not a device, FIFO or
socket, nor a symlink to one) of at most MAX_YAML_FILE_BYTES; before it is parsed,
it may hold at most MAX_YAML_ALIASES aliases.

A :class:`Document` is one file read once: its bytes, their sha256, the text and the
round-trip tree (ruamel keeps each node's line and column), so a problem can be
reported on the line it comes from and the caller can keep what was read (deploy
stores exactly these bytes). Before the tree is built, the file is bounded: a file
nesting far deeper than a procedure can, or whose aliases (``*name``) expand to an
enormous tree, is refused from the parser's events, without building the tree.
Everything that cannot be read (not UTF-8, YAML syntax, impossible dates) becomes one
:class:`~definitions.problems.Problem`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

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

from definitions.limits import MAX_NESTING, MAX_STEPS, MAX_YAML_ALIASES, MAX_YAML_FILE_BYTES
from definitions.problems import Loc, Problem, _dotted, _one_line
from definitions.yaml_positions import line_of

# What the reader accepts before building a tree (the tree, pydantic and the checks
# recurse). Far above what MAX_NESTING and MAX_STEPS allow: a step at the deepest
# allowed nesting sits 2 * MAX_NESTING + 3 YAML levels down, its `when` one deeper.
YAML_MAX_DEPTH = 2 * MAX_NESTING + 24
YAML_MAX_VALUES = 1000 * MAX_STEPS  # every key, value and item, aliases expanded


@dataclass
class Document:
    """A parsed YAML file that remembers where each node came from."""

    path: Path
    content: bytes
    text: str  # ``content`` decoded (it is UTF-8: the reader refuses anything else)
    data: Any

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

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
        lines = self.text.splitlines()
        if line >= len(lines):
            return None
        return lines[line][column:].split(" #")[0].strip() or None

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(str(self.path), self.line_of(loc), message)


def read_bounded(path: Path) -> tuple[bytes, str] | Problem:
    """The bytes of a regular file of at most MAX_YAML_FILE_BYTES, and their UTF-8 text.
    A device, FIFO or socket (or a symlink to one) is refused before it is read, and so
    is a file over the bound (a FIFO is opened without waiting for a writer)."""
    try:
        found = path.stat()
    except OSError as exc:
        return Problem(str(path), 1, f"cannot read the file: {exc.strerror or exc}")
    if refused := _not_readable(path, found):
        return refused
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return Problem(str(path), 1, f"cannot read the file: {exc.strerror or exc}")
    with os.fdopen(descriptor, "rb") as file:
        if refused := _not_readable(path, os.fstat(file.fileno())):  # what was opened, not what was looked at
            return refused
        content = file.read(MAX_YAML_FILE_BYTES + 1)
    if len(content) > MAX_YAML_FILE_BYTES:  # it grew since
        return Problem(str(path), 1, _too_large(len(content)))
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"the file is not UTF-8 text (byte 0x{content[exc.start]:02x} cannot be decoded); save it as UTF-8"
        return Problem(str(path), _line_at_byte(content, exc.start), message)
    return content, text


def _not_readable(path: Path, found: os.stat_result) -> Problem | None:
    if not stat.S_ISREG(found.st_mode):
        kind = ("a folder" if stat.S_ISDIR(found.st_mode) else "a FIFO" if stat.S_ISFIFO(found.st_mode)
                else "a device" if stat.S_ISCHR(found.st_mode) or stat.S_ISBLK(found.st_mode)
                else "a socket" if stat.S_ISSOCK(found.st_mode) else "not a file")
        via = f" (a symlink to {os.path.realpath(path)})" if path.is_symlink() else ""
        return Problem(str(path), 1, f"this is {kind}{via}, not a regular file; definitions are read from "
                                     "regular files only")
    if found.st_size > MAX_YAML_FILE_BYTES:
        return Problem(str(path), 1, _too_large(found.st_size))
    return None


def _too_large(size: int) -> str:
    return (f"the file is {size} bytes, more than {MAX_YAML_FILE_BYTES} (MAX_YAML_FILE_BYTES); "
            "a definitions file is a few kilobytes: expected a smaller file")


def _read_yaml(path: Path) -> Document | Problem:
    source = read_bounded(path)
    if isinstance(source, Problem):
        return source
    content, text = source
    if too_big := yaml_too_big(path, text):
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
    return Document(path, content, text, data)


def yaml_too_big(path: Path, text: str) -> Problem | None:
    """A file with more than MAX_YAML_ALIASES aliases, nesting deeper than YAML_MAX_DEPTH
    or expanding to more than YAML_MAX_VALUES values, found from the parser's events
    (which neither recurse nor expand aliases). Syntax errors are left to the loader,
    which reports them with their reason."""
    open_sizes: list[int] = []  # values inside each open mapping / list so far
    anchored: dict[str, int] = {}  # what an alias to each anchor expands to
    anchors: list[str | None] = []
    total = 0
    aliases = 0
    try:
        for event in YAML(typ="rt").parse(text):
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            if isinstance(event, AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    return Problem(str(path), line, (
                        f"the file has more than {MAX_YAML_ALIASES} aliases (*name, repeating what &name marks) "
                        f"(MAX_YAML_ALIASES); write the values out instead"))
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
