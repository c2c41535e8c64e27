"""Deploying definitions: validate a folder (or files), then store every procedure
immutably as code@version and sync the agency and sector registries, all in one
transaction or nothing. Used by `lienthong definitions deploy`, `lienthong dev` and
the benchmark."""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from definitions.folders import plan_paths
from definitions.loader import check_plan
from store import registry
from store.db import make_engine, make_session_factory
from store.migrate import upgrade


class DeployError(Exception):
    """Nothing was deployed; `details` are every `PATH:LINE: message` of a broken file."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = list(details or [])


def default_deployer() -> str:
    """Who deploys when `--by` is not given: the OS user (getpass reads $USER/$LOGNAME)."""
    try:
        return getpass.getuser() or "operator"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "operator"


@dataclass(frozen=True)
class DeployedFile:
    path: Path
    outcome: str  # "deployed" | "unchanged"
    ref: str
    content_hash: str

    def line(self) -> str:
        if self.outcome == "deployed":
            return f"deployed {self.ref} (sha256 {self.content_hash[:8]}…)"
        return f"unchanged {self.ref}"


@dataclass
class DeployReport:
    files: list[DeployedFile] = field(default_factory=list)
    agencies_changed: int = 0
    sectors_changed: int = 0
    retired: list[registry.Retired] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    def summary(self) -> str:
        return f"definitions: {self.count('deployed')} deployed, {self.count('unchanged')} unchanged"

    def retired_lines(self) -> list[str]:
        """One line per agency this deploy retired, with the open steps it still holds."""
        return [retired.line() for retired in self.retired]

    def registries_line(self) -> str | None:
        if not (self.agencies_changed or self.sectors_changed):
            return None
        return (f"registries: {self.agencies_changed} agenc{'y' if self.agencies_changed == 1 else 'ies'}, "
                f"{self.sectors_changed} sector{'' if self.sectors_changed == 1 else 's'} added or changed")


def deploy_paths(sessions: sessionmaker[Session], paths: Sequence[Path], default_root: Path,
                 deployed_by: str, now: datetime | None = None) -> DeployReport:
    """Validate, then deploy in one transaction; `CliError` (with every problem as
    details) when anything is wrong, and then nothing is written. `deploy PATH...`
    reads paths as `definitions validate` does (`definitions.folders.plan_paths`),
    one definitions folder at a time; each file is read and parsed once, and what was
    read is what is stored."""
    now = now or datetime.now(UTC)
    plan = plan_paths(paths, default_root)
    if len(plan.roots) > 1:
        raise DeployError(f"more than one definitions folder given ({', '.join(map(str, plan.roots))}); "
                       "deploy one folder at a time")
    checked = check_plan(plan)
    if checked.problems:
        raise DeployError(f"{len(checked.problems)} problem(s) in {checked.files} file(s); nothing deployed",
                       details=[str(p) for p in checked.problems])
    if checked.files == 0:
        raise DeployError(f"nothing to deploy: no definition files in {', '.join(map(str, paths))}")
    report = DeployReport()
    current_path = None
    try:
        with sessions.begin() as session:
            report.agencies_changed, report.sectors_changed = registry.sync_registries(session, checked.catalog, now)
            # The catalog is the whole agencies.yaml of the folder: who left it is retired
            # (an empty registry retires nobody: surely a mistake, not the province's wish).
            if checked.catalog.agencies:
                report.retired = registry.retire_missing(session, checked.catalog, now)
            for loaded in checked.procedures:
                current_path = loaded.path
                assert loaded.snapshot is not None  # check_plan keeps the files that passed
                result = registry.deploy(session, loaded.snapshot, loaded.body, deployed_by, now)
                report.files.append(DeployedFile(loaded.path, result.outcome, result.ref,
                                                 result.definition.content_hash))
    except registry.VersionConflictError as err:
        raise DeployError(f"{current_path}: {err}; nothing deployed") from err
    return report


def prepare_store(settings: Settings, deployed_by: str | None = None) -> tuple[str, DeployReport]:
    """Migrate the database to head and deploy the definitions folder (idempotent), as
    `lienthong dev` does at start. Returns the revision and what was deployed."""
    revision = upgrade(settings.database_url) or "none"
    engine = make_engine(settings.database_url)
    try:
        report = deploy_paths(make_session_factory(engine), [settings.definitions], settings.definitions,
                              deployed_by or default_deployer())
    finally:
        engine.dispose()
    return revision, report
