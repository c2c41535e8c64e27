"""Definitions files are bounded before they are read or parsed: a device, FIFO or
socket (or a symlink to one) and a file over MAX_YAML_FILE_BYTES are refused without
reading them, and a file with more than MAX_YAML_ALIASES aliases (an alias bomb) is
refused from the parser's first events, never expanded — for procedures, registries
and calendars alike, each as `PATH:LINE: message`, and deploy leaves the registry as
it was. (The corpus holds the alias bombs as procedure files: 90 and 98.)"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from definitions import calendar, yaml_source
from definitions.limits import MAX_YAML_ALIASES, MAX_YAML_FILE_BYTES
from definitions.problems import Problem
from store.migrate import upgrade
from tests.definitions.bad_corpus import generate
from tests.definitions.conftest import Result
from tests.definitions.test_bad_corpus import row_counts

CATALOG = generate.CATALOG
SHIPPED = Path(__file__).resolve().parents[2] / "definitions"
# The classic alias bomb of issue 13 (well under 1 KB): 9 lists of 9 aliases each.
BOMB = "lol: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"l{i}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
BOMB_ALIAS_LINE = 2 + MAX_YAML_ALIASES // 9  # the line holding alias MAX_YAML_ALIASES + 1


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the corpus's valid definitions folder."""
    return Path(shutil.copytree(CATALOG, tmp_path / "definitions"))


def symlink_to_device(path: Path) -> Path:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")  # endless: reading it would exhaust memory
    return path


def fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)  # no writer: opening it for reading would wait for ever
    return path


def unix_socket(path: Path) -> Iterator[Path]:
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        yield path


def oversized(path: Path) -> Path:
    path.write_bytes(b"# " + b"x" * MAX_YAML_FILE_BYTES + b"\n")
    return path


def bomb(path: Path) -> Path:
    path.write_text(BOMB, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize(("make", "words"), [
    (symlink_to_device, "this is a device (a symlink to /dev/zero), not a regular file"),
    (fifo, "this is a FIFO, not a regular file"),
    (oversized, f"the file is {MAX_YAML_FILE_BYTES + 3} bytes, more than {MAX_YAML_FILE_BYTES} (MAX_YAML_FILE_BYTES)"),
], ids=["device", "fifo", "oversized"])
def test_the_reader_refuses_what_is_no_small_regular_file(tmp_path: Path, make: Callable[[Path], Path],
                                                           words: str) -> None:
    path = make(tmp_path / "p.yaml")
    found = yaml_source.read_bounded(path)
    assert found == Problem(str(path), 1, found.message if isinstance(found, Problem) else "")
    assert isinstance(found, Problem) and words in found.message, found


def test_the_reader_refuses_a_socket(tmp_path: Path) -> None:
    for path in unix_socket(tmp_path / "s.yaml"):
        found = yaml_source.read_bounded(path)
        assert isinstance(found, Problem) and "this is a socket, not a regular file" in found.message


def test_a_file_of_exactly_the_bound_is_read(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"#" * (MAX_YAML_FILE_BYTES - 1) + b"\n")
    found = yaml_source.read_bounded(path)
    assert isinstance(found, tuple) and len(found[0]) == MAX_YAML_FILE_BYTES


def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    """Mounted configuration (a Kubernetes ConfigMap) is symlinks to regular files."""
    target = tmp_path / "real.yaml"
    target.write_text("a: 1\n", encoding="utf-8")
    (tmp_path / "link.yaml").symlink_to(target)
    assert yaml_source.read_bounded(tmp_path / "link.yaml") == (b"a: 1\n", "a: 1\n")


class CountingYAML(YAML):
    """Counts the parser events the bound check consumes."""

    events = 0

    def parse(self, stream: Any) -> Any:
        for event in super().parse(stream):
            CountingYAML.events += 1
            yield event


def test_the_alias_bomb_is_refused_from_its_first_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """9^9 values if expanded; refused at alias MAX_YAML_ALIASES + 1, having seen a few dozen events."""
    path = bomb(tmp_path / "bomb.yaml")
    assert len(BOMB.encode()) < 1024
    monkeypatch.setattr(yaml_source, "YAML", CountingYAML)
    found = yaml_source._read_yaml(path)
    assert found == Problem(str(path), BOMB_ALIAS_LINE, (
        f"the file has more than {MAX_YAML_ALIASES} aliases (*name, repeating what &name marks) (MAX_YAML_ALIASES); "
        "write the values out instead"))
    assert CountingYAML.events < 4 * MAX_YAML_ALIASES  # no tree was built: only the bound check parsed


def test_aliases_up_to_the_bound_are_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b [x, y]\n" + "".join(f"k{i}: *b\n" for i in range(MAX_YAML_ALIASES)), encoding="utf-8")
    found = yaml_source._read_yaml(path)
    assert isinstance(found, yaml_source.Document) and found.data[f"k{MAX_YAML_ALIASES - 1}"] == ["x", "y"]


def test_the_shipped_definitions_use_no_alias_and_are_small() -> None:
    for path in sorted(SHIPPED.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert len(text.encode()) < MAX_YAML_FILE_BYTES // 10, path
        events = list(YAML(typ="rt").parse(text))
        assert not [e for e in events if type(e).__name__ == "AliasEvent"], path


# --------------------------------------------------------------------------- through the CLI


def _in(folder: Path, where: str) -> Path:
    return folder / where


# Each kind of file the reader refuses unread, and what it says.
BAD_FILES = pytest.mark.parametrize(("make", "words"), [
    (symlink_to_device, "this is a device (a symlink to /dev/zero), not a regular file"),
    (fifo, "this is a FIFO, not a regular file"),
    (oversized, f"the file is {MAX_YAML_FILE_BYTES + 3} bytes, more than {MAX_YAML_FILE_BYTES} (MAX_YAML_FILE_BYTES)"),
    (bomb, f"the file has more than {MAX_YAML_ALIASES} aliases"),
], ids=["device", "fifo", "oversized", "alias-bomb"])

PLACES = {
    "procedure": "procedures/p.yaml",  # beside the valid base.yaml
    "agencies": "agencies.yaml",
    "sectors": "sectors.yaml",
}


@pytest.mark.parametrize("place", list(PLACES))
@BAD_FILES
def test_validate_and_deploy_refuse_it_and_change_nothing(cli: Callable[..., Result], folder: Path, tmp_path: Path,
                                                          place: str, make: Callable[[Path], Path],
                                                          words: str) -> None:
    path = make(folder / PLACES[place])
    line = BOMB_ALIAS_LINE if make is bomb else 1
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    before = row_counts(url)
    for command in ("validate", "deploy"):
        result = cli("definitions", command, str(folder), database_url=url, definitions=folder)
        assert result.code == 1, result
        assert f"{path}:{line}: {words}" in result.out, result.out
    assert row_counts(url) == before


@BAD_FILES
def test_a_calendar_file_is_bounded_too(cli: Callable[..., Result], folder: Path, make: Callable[[Path], Path],
                                        words: str) -> None:
    """The base procedure's calendar (vn-gov) replaced: the procedure names the calendar's own PATH:LINE."""
    path = make(folder / "calendars" / "vn-gov.yaml")
    line = BOMB_ALIAS_LINE if make is bomb else 1
    calendar._LOADED.clear()
    result = cli("definitions", "validate", str(folder), definitions=folder)
    assert result.code == 1, result
    assert f"cannot be used: {path}:{line}: {words}" in result.out, result.out
    with pytest.raises(calendar.CalendarFileError, match=f"^{path}:{line}: "):
        calendar.load_calendar("vn-gov", folder)


def test_a_fifo_given_on_the_command_line_is_refused(cli: Callable[..., Result], tmp_path: Path) -> None:
    path = fifo(tmp_path / "p.yaml")
    result = cli("definitions", "validate", str(path))
    assert result.code == 1
    assert result.out.strip() == f"{path}:1: this is a FIFO, not a regular file; definitions are read from regular " \
                                 "files only"
