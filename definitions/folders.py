"""The layout of a definitions folder, and what a list of paths given on the command
line means (the one planner behind ``definitions validate`` and ``definitions deploy``).

A definitions folder holds ``agencies.yaml``, ``sectors.yaml``, ``calendars/`` and
``procedures/*.yaml``. Given paths are read as: a definitions folder = its registries
and its procedures; another folder = its ``*.yaml`` procedure files; a registry file =
itself, and its folder is a definitions folder; any other file = a procedure file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from definitions.calendar import definitions_root
from definitions.problems import Problem

AGENCIES_FILE = "agencies.yaml"
SECTORS_FILE = "sectors.yaml"
REGISTRY_FILES = (AGENCIES_FILE, SECTORS_FILE)
PROCEDURES_DIR = "procedures"


@dataclass(frozen=True)
class Plan:
    """What to read: the folder whose registries procedures are checked against, the
    registry and procedure files (each once, in the order given), and the paths that
    do not exist."""

    catalog_root: Path
    roots: list[Path]  # every definitions folder given (resolved, each once)
    folders: list[Path]  # the definitions folders given whole (not by one registry file; resolved, each once)
    registries: list[Path]
    procedures: list[Path]
    missing: list[Problem]


def plan_paths(paths: Iterable[Path], default_root: Path | None = None) -> Plan:
    """Sort ``paths`` into registries and procedure files. The catalog is the first
    definitions folder given, else ``default_root``, else :func:`definitions_root`."""
    registries: list[Path] = []
    procedures: list[Path] = []
    missing: list[Problem] = []
    roots: list[Path] = []
    folders: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and is_definitions_folder(path):
            roots.append(path)
            folders.append(path)
            registries += [path / name for name in REGISTRY_FILES if (path / name).is_file()]
            procedures += procedure_files(path / PROCEDURES_DIR)
        elif path.is_dir():
            procedures += procedure_files(path)
        elif path.is_file() and path.name in REGISTRY_FILES:
            registries.append(path)
            roots.append(path.parent)
        elif path.is_file() or path.exists():  # a device or FIFO: the reader says it is no regular file
            procedures.append(path)
        else:
            missing.append(Problem(str(path), 1, "no such file or folder"))
    catalog_root = roots[0] if roots else default_root if default_root is not None else definitions_root()
    return Plan(
        catalog_root=catalog_root,
        roots=list(dict.fromkeys(root.resolve() for root in roots)),
        folders=list(dict.fromkeys(folder.resolve() for folder in folders)),
        registries=list(dict.fromkeys(registries)),
        procedures=list(dict.fromkeys(procedures)),
        missing=missing,
    )


def procedure_files(folder: Path) -> list[Path]:
    """The ``*.yaml`` files of ``folder``, sorted; none when it is no folder."""
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def is_definitions_folder(path: Path) -> bool:
    return (path / PROCEDURES_DIR).is_dir() or (path / AGENCIES_FILE).is_file()
