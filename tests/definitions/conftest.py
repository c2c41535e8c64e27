"""The CLI run in this process against a definitions folder (the bad-input corpus's
catalog by default), for the definitions tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from definitions.registries import Catalog, load_catalog
from tests.definitions.bad_corpus.generate import CATALOG
from workers.cli import run


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[object]:
    def invoke(*args: str, database_url: str = "sqlite://", definitions: Path = CATALOG) -> Result:
        monkeypatch.setenv("LIENTHONG_DEFINITIONS", str(definitions))
        monkeypatch.setenv("LIENTHONG_DATABASE_URL", database_url)
        monkeypatch.delenv("LIENTHONG_DEBUG", raising=False)
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield invoke


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small definitions folder of its own (tests/definitions/test_loader.py's)."""
    from tests.definitions.test_loader import small_folder

    return small_folder(tmp_path)


@pytest.fixture
def catalog(root: Path) -> Catalog:
    """The small folder's registries (test_catalogue and test_shipped have the shipped ones)."""
    return load_catalog(root)
