"""`lienthong definitions graph CODE[@VERSION] --format mermaid|svg [--out FILE]`: a
procedure of the definitions folder drawn on stdout or into a file; unknown codes and
versions refused with exit 2; nothing written when the picture cannot be drawn."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from definitions.loader import load_catalog, load_procedures
from tests.support.pictures import parse_mermaid, parse_svg
from tests.workers.conftest import DEFINITIONS, Cli, copy_definitions, lienthong

LAND = "1.012756"
LAND_FILE = "dang-ky-dat-dai-lan-dau.yaml"
SHIPPED = {s.procedure.code: s.procedure for s in load_procedures(load_catalog(DEFINITIONS))}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """The CLI in this process on a copy of the shipped definitions (graph reads no database)."""
    runner = Cli("sqlite://", copy_definitions(tmp_path / "definitions"), monkeypatch, capsys)
    yield runner
    runner.close()


def step_ids(mermaid: str) -> set[str]:
    picture = parse_mermaid(mermaid)
    return {lines[0] for key, lines in picture.lines.items() if picture.shapes[key] == "box"}


def test_mermaid_on_stdout_by_default(cli: Cli) -> None:
    out = cli.ok("definitions", "graph", LAND)
    assert step_ids(out) == {s.id for s in SHIPPED[LAND].iter_steps()}
    assert f"{LAND}@1" in parse_mermaid(out).title
    assert cli.ok("definitions", "graph", LAND, "--format", "mermaid") == out


def test_code_alone_is_the_newest_version_in_the_folder(cli: Cli) -> None:
    """Even one not yet in effect: the operator draws the version they are writing."""
    land = cli.definitions / "procedures" / LAND_FILE
    text = land.read_text(encoding="utf-8")
    assert "version: 1\n" in text and "effective_from: 2025-07-01\n" in text and "id: lay-y-kien-so" in text
    (land.parent / "v2.yaml").write_text(
        text.replace("version: 1\n", "version: 2\n").replace("effective_from: 2025-07-01\n", "effective_from: 2099-01-01\n")
        .replace("id: lay-y-kien-so", "id: lay-y-kien-so-v2"), encoding="utf-8")
    newest = step_ids(cli.ok("definitions", "graph", LAND))
    assert "lay-y-kien-so-v2" in newest and "lay-y-kien-so" not in newest
    first = step_ids(cli.ok("definitions", "graph", f"{LAND}@1"))
    assert "lay-y-kien-so" in first and "lay-y-kien-so-v2" not in first
    assert f"{LAND}@2" in parse_mermaid(cli.ok("definitions", "graph", f"{LAND}@2")).title


def test_out_writes_the_file_and_says_so(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "land.mmd"
    out = cli.ok("definitions", "graph", LAND, "--out", str(target))
    assert target.read_text(encoding="utf-8") == cli.ok("definitions", "graph", LAND)
    assert str(target) in out and "mermaid" in out and "flowchart" not in out


@pytest.mark.parametrize("how", [("--format", "svg"), ()], ids=["format", "suffix"])
def test_svg_into_a_file(cli: Cli, tmp_path: Path, how: tuple[str, ...]) -> None:
    target = tmp_path / "land.svg"
    cli.ok("definitions", "graph", LAND, *how, "--out", str(target))
    picture = parse_svg(target.read_text(encoding="utf-8"))  # valid XML, or this raises
    texts = {line for lines in picture.lines.values() for line in lines}
    assert {s.id for s in SHIPPED[LAND].iter_steps()} <= texts


def test_svg_on_stdout(cli: Cli) -> None:
    picture = parse_svg(cli.ok("definitions", "graph", "3.000722", "--format", "svg"))
    assert {s.id for s in SHIPPED["3.000722"].iter_steps()} <= {ls[0] for ls in picture.lines.values() if ls}


def test_an_unknown_code_exits_2_naming_the_known_ones(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "nothing.mmd"
    result = cli("definitions", "graph", "9.999999", "--out", str(target))
    assert result.code == 2 and result.out == ""
    line = result.line()
    assert "unknown procedure 9.999999" in line
    assert set(re.findall(r"\d\.\d{6}", line.partition("known codes are")[2])) == set(SHIPPED)
    assert not target.exists()


def test_an_unknown_version_exits_2_naming_the_known_ones(cli: Cli) -> None:
    result = cli("definitions", "graph", f"{LAND}@7")
    assert result.code == 2 and result.out == ""
    assert re.fullmatch(rf"procedure {LAND} has no version 7: known versions are 1", result.line())


def test_without_dot_nothing_is_written(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "land.svg"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = cli("definitions", "graph", LAND, "--format", "svg", "--out", str(target))
    assert result.code == 1 and result.out == ""
    assert "install Debian's graphviz" in result.line()
    assert not target.exists()


def test_a_broken_folder_lists_its_problems(cli: Cli) -> None:
    land = cli.definitions / "procedures" / LAND_FILE
    land.write_text(land.read_text(encoding="utf-8").replace("deadline: 17d", "deadline: 17 ngay"), encoding="utf-8")
    result = cli("definitions", "graph", LAND)
    assert result.code == 1
    assert any(line.startswith(f"{land}:") and "deadline" in line for line in result.out.splitlines())
    assert "nothing drawn" in result.line()


def test_the_console_script_prints_utf8() -> None:
    result = lienthong("definitions", "graph", "3.000722")
    assert result.returncode == 0, result.stderr
    assert SHIPPED["3.000722"].name in parse_mermaid(result.stdout).title
