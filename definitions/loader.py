"""Read a definitions folder: procedure files, agency and sector registries.

Everything an operator writes is checked before it can be used, and every problem
is reported as one ``PATH:LINE: field: what was wrong; expected what`` line, so a
broken file can be fixed in one pass. This module is the entry point; the work is
done along these seams:

* :mod:`definitions.folders` — what the given paths mean (the one planner);
* :mod:`definitions.yaml_source` — reading YAML once, with lines and size bounds;
* :mod:`definitions.shape` — pydantic's errors (:mod:`definitions.schema`) as lines;
* :mod:`definitions.registries` — ``agencies.yaml`` and ``sectors.yaml``, the :class:`Catalog`
  (and, when a whole folder is checked, its province-wide list against its procedures);
* :mod:`definitions.procedure_checks` — one procedure file (with
  :mod:`definitions.references`, :mod:`definitions.deadlines` and :mod:`definitions.returns`)
  and the checks across files;
* :mod:`definitions.versions` — which version a ``CODE`` or ``CODE@VERSION`` means;
* :mod:`definitions.problems` — :class:`Problem` and :class:`DefinitionError`.

Each file is read and parsed once: :func:`check_plan` returns the checked procedure
files with their text and snapshot, which is what ``definitions deploy`` stores.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from definitions.folders import AGENCIES_FILE, PROCEDURES_DIR, Plan, plan_paths, procedure_files
from definitions.problems import DefinitionError, Problem, _unique
from definitions.procedure_checks import ProcedureFile, _check_procedure, _duplicate_refs
from definitions.registries import (
    Catalog,
    Listed,
    _province_wide_at,
    _province_wide_without_procedure,
    _read_catalog,
    _read_registry,
    load_catalog,
)
from definitions.schema import ProcedureSnapshot
from definitions.versions import choose_version

__all__ = [
    "Catalog",
    "Checked",
    "DefinitionError",
    "Problem",
    "ProcedureFile",
    "check_plan",
    "find_procedure",
    "load_catalog",
    "load_procedure",
    "load_procedures",
    "validate_paths",
]


@dataclass
class Checked:
    """What :func:`check_plan` found: how many files it checked, every problem, the
    catalog, and the procedure files that passed (each read once, with its text)."""

    files: int
    problems: list[Problem]
    catalog: Catalog
    procedures: list[ProcedureFile]


def load_procedure(path: Path, catalog: Catalog) -> ProcedureSnapshot:
    result = _check_procedure(Path(path), catalog)
    if result.snapshot is None:
        raise DefinitionError(result.problems)
    return result.snapshot


def load_procedures(catalog: Catalog) -> list[ProcedureSnapshot]:
    results = [_check_procedure(p, catalog) for p in procedure_files(catalog.root / PROCEDURES_DIR)]
    problems = [p for r in results for p in r.problems] + _duplicate_refs(results)
    if problems:
        raise DefinitionError(problems)
    return [r.snapshot for r in results if r.snapshot is not None]


def find_procedure(ref: str, catalog: Catalog, today: date) -> ProcedureSnapshot:
    """A procedure by file path, ``CODE`` (the version in effect ``today``) or ``CODE@VERSION``."""
    if looks_like_path(ref):
        path = Path(ref)
        if not path.is_file():
            raise LookupError(f"no procedure file {ref}")
        return load_procedure(path, catalog)
    code, _, version_text = ref.partition("@")
    snapshots = load_procedures(catalog)
    by_version = {s.procedure.version: s for s in snapshots if s.procedure.code == code}
    if not by_version:
        known = ", ".join(sorted({s.procedure.code for s in snapshots})) or "(none)"
        raise LookupError(f"unknown procedure {code}: known codes are {known}")
    versions = [s.procedure for s in by_version.values()]
    return by_version[choose_version(code, versions, version_text or None, today).version]


def validate_paths(paths: Iterable[Path], root: Path | None = None) -> tuple[int, list[Problem]]:
    """Check procedure files, folders and registries against the catalog in ``root``
    (default: the first definitions folder given); returns (files checked, problems)."""
    plan = plan_paths(paths)
    checked = check_plan(plan if root is None else dataclasses.replace(plan, catalog_root=Path(root)))
    return checked.files, checked.problems


def check_plan(plan: Plan) -> Checked:
    """Read and check every file of ``plan`` once; never raises for a bad file."""
    catalog, problems = _read_catalog(plan.catalog_root)
    listed = {plan.catalog_root.resolve() / AGENCIES_FILE: catalog.province_wide_at}
    checked: set[Path] = set()
    for registry in plan.registries:
        checked.add(registry)
        if registry.parent.resolve() != plan.catalog_root.resolve():
            _, found, data = _read_registry(registry)  # the catalog's own were read above
            problems += found
            if registry.name == AGENCIES_FILE:
                listed[registry.parent.resolve() / AGENCIES_FILE] = _province_wide_at(data)
    results = []
    for path in plan.procedures:
        checked.add(path)
        results.append(_check_procedure(path, catalog))
    problems += [p for r in results for p in r.problems] + _duplicate_refs(results)
    for folder in plan.folders:
        problems += _unlisted_codes(folder, listed.get(folder / AGENCIES_FILE, []), results)
    passed = [r for r in results if r.snapshot is not None]
    return Checked(len(checked), plan.missing + _unique(problems), catalog, passed)


def _unlisted_codes(folder: Path, listed: list[Listed], results: list[ProcedureFile]) -> list[Problem]:
    """The folder's province-wide codes that none of its procedure files declares; not
    checked when one of its files could not be read (its code is unknown)."""
    procedures = (folder / PROCEDURES_DIR).resolve()
    mine = [r for r in results if r.path.resolve().parent == procedures]
    if not listed or any(r.doc is None or not isinstance(r.doc.data, dict) for r in mine):
        return []
    declared = {code for r in mine if r.doc is not None and isinstance(code := r.doc.data.get("code"), str)}
    return _province_wide_without_procedure(folder / AGENCIES_FILE, listed, declared, folder / PROCEDURES_DIR)


def looks_like_path(ref: str) -> bool:
    """A procedure reference that names a file (a draft), not CODE[@VERSION]."""
    return ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref
