"""`lienthong db …` and `lienthong definitions deploy|list|show|diff`: the database
schema and the definition registry.

Deploy is all or nothing: every given file is validated first (any problem: nothing
is written), then the agency/sector registries and every procedure go in ONE
transaction, so a version conflict on the third file leaves the registry as it was.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from definitions.folders import plan_paths
from definitions.loader import DefinitionError, check_plan, load_catalog, load_procedures
from store import registry
from store.migrate import current, head, upgrade
from store.models import DefinitionRow
from workers.commands_common import CliError, print_table, shown_url, store_sessions, when
from config.settings import Settings
from services.submission import SubmissionError, parse_ref

# ----------------------------------------------------------------------------- db


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    revision = upgrade(settings.database_url)
    print(f"database {shown_url(settings)} at revision {revision}")
    return 0


def db_current(args: argparse.Namespace, settings: Settings) -> int:
    at, wanted = current(settings.database_url), head()
    if at != wanted:
        raise CliError(f"database {shown_url(settings)} is at revision {at or 'none'}, not {wanted}: "
                       "run `lienthong db upgrade`")
    print(f"database {shown_url(settings)} at revision {at} (up to date)")
    return 0


# ----------------------------------------------------------------------------- deploy


def default_deployer() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser() or "operator"
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

    def count(self, outcome: str) -> int:
        return sum(1 for f in self.files if f.outcome == outcome)

    def summary(self) -> str:
        return f"definitions: {self.count('deployed')} deployed, {self.count('unchanged')} unchanged"

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
        raise CliError(f"more than one definitions folder given ({', '.join(map(str, plan.roots))}); "
                       "deploy one folder at a time")
    checked = check_plan(plan)
    if checked.problems:
        raise CliError(f"{len(checked.problems)} problem(s) in {checked.files} file(s); nothing deployed",
                       details=[str(p) for p in checked.problems])
    if checked.files == 0:
        raise CliError(f"nothing to deploy: no definition files in {', '.join(map(str, paths))}")
    report = DeployReport()
    current_path = None
    try:
        with sessions.begin() as session:
            report.agencies_changed, report.sectors_changed = registry.sync_registries(session, checked.catalog, now)
            for loaded in checked.procedures:
                current_path = loaded.path
                assert loaded.snapshot is not None  # check_plan keeps the files that passed
                result = registry.deploy(session, loaded.snapshot, loaded.body, deployed_by, now)
                report.files.append(DeployedFile(loaded.path, result.outcome, result.ref,
                                                 result.definition.content_hash))
    except registry.VersionConflictError as err:
        raise CliError(f"{current_path}: {err}; nothing deployed") from err
    return report


def deploy(args: argparse.Namespace, settings: Settings) -> int:
    paths = args.paths or [settings.definitions]
    with store_sessions(settings) as sessions:
        report = deploy_paths(sessions, paths, settings.definitions, args.by or default_deployer())
    for deployed in report.files:
        print(deployed.line())
    if line := report.registries_line():
        print(line)
    print(report.summary())
    return 0


# ----------------------------------------------------------------------------- list / show / diff


def list_deployed(args: argparse.Namespace, settings: Settings) -> int:
    if args.files:
        return list_files(settings)
    with store_sessions(settings) as sessions, sessions() as session:
        rows = list(registry.list_definitions(session))
    if not rows:
        print("no definitions deployed yet: run `lienthong definitions deploy`")
        return 0
    table = [("PROCEDURE", "EFFECTIVE", "SECTOR", "LEVEL", "DEPLOYED", "BY", "NAME")]
    for row in rows:
        table.append((row.ref, str(row.effective_from or "-"), row.sector, row.level, when(row.deployed_at),
                      row.deployed_by, row.name))
    print_table(table)
    return 0


def list_files(settings: Settings) -> int:
    try:
        snapshots = load_procedures(load_catalog(settings.definitions))
    except DefinitionError as err:
        raise CliError(f"{settings.definitions} has {len(err.problems)} problem(s); "
                       f"run `lienthong definitions validate {settings.definitions}`") from err
    rows = [("PROCEDURE", "SECTOR", "LEVEL", "DEADLINE", "NAME")]
    for snap in sorted(snapshots, key=lambda s: (s.procedure.code, s.procedure.version)):
        p = snap.procedure
        rows.append((p.ref, p.sector, p.level, p.deadline, p.name))
    print_table(rows)
    return 0


def show(args: argparse.Namespace, settings: Settings) -> int:
    try:
        code, version = parse_ref(args.ref)
    except SubmissionError as err:
        raise CliError(str(err)) from err
    with store_sessions(settings) as sessions, sessions() as session:
        row = _definition(session, code, version)
    print(f"procedure:      {row.ref} {row.name}")
    print(f"sector:         {row.sector}, level {row.level}, calendar {row.calendar}")
    print(f"effective from: {row.effective_from or '-'}")
    print(f"deployed:       {when(row.deployed_at)} by {row.deployed_by}")
    print(f"sha256:         {row.content_hash}")
    print("---")
    print(row.body, end="" if row.body.endswith("\n") else "\n")
    return 0


def diff(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions, sessions() as session:
        old = _definition(session, args.code, args.v1)
        new = _definition(session, args.code, args.v2)
    if old.body == new.body:
        print("identical")
        return 0
    lines = difflib.unified_diff(old.body.splitlines(keepends=True), new.body.splitlines(keepends=True),
                                 fromfile=old.ref, tofile=new.ref)
    for line in lines:
        print(line, end="" if line.endswith("\n") else "\n")
    return 0


def _definition(session: Session, code: str, version: int | None) -> DefinitionRow:
    row = registry.get_definition(session, code, version)
    if row is not None:
        return row
    versions = [str(r.version) for r in registry.list_definitions(session) if r.code == code]
    if not versions:
        raise CliError(f"procedure {code} is not deployed: run `lienthong definitions deploy`")
    raise CliError(f"procedure {code} has no deployed version {version}: deployed versions are {', '.join(versions)}")
